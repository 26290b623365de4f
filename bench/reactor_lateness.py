"""Benchmark: does the Polar Cloud module delay Klippy's reactor?

Runs a real Klippy (file-output mode) + Moonraker + the Polar Cloud
emulator, with a probe timer asking to fire every 1 ms, and reports timer
lateness (p50/p99/max) and Klippy's RSS for each scenario:

  idle-unregistered   module loaded, not registered (baseline)
  register            registration: key generation + signing (child process)
  online-idle         registered, statuses flowing
  download-50MB       a 50 MB cloud print download at loopback speed
  snapshots           a 4000x3000 camera image fetched, shrunk to 150 kB
                      and uploaded every 5 s

usage: .venv/bin/python bench/reactor_lateness.py [--seconds 10]
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import PrinterHarness, SITE, install_into_venv  # noqa: E402
from polar_emulator import PolarEmulator  # noqa: E402
from imagetools import pattern_jpeg  # noqa: E402

EMAIL, PIN = "bench@example.com", "1234"


def link_probe():
    src = os.path.join(ROOT, "bench", "klippy_extras", "polar_bench_probe.py")
    dest = os.path.join(SITE, "klippy", "extras", "polar_bench_probe.py")
    if not os.path.islink(dest):
        os.symlink(src, dest)


def report(h):
    return h.klippy.call("polar_bench_probe/report")


def measure(h, name, seconds, action=None):
    report(h)                      # reset
    t0 = time.monotonic()
    if action is not None:
        action()
    left = seconds - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)
    r = report(h)
    r["scenario"] = name
    r["seconds"] = round(time.monotonic() - t0, 1)
    print("%-20s n=%-6d p50 %6.3f ms  p99 %7.3f ms  max %7.2f ms  RSS %5.1f MiB"
          % (name, r["n"], r["p50_ms"], r["p99_ms"], r["max_ms"],
             r["rss_kb"] / 1024.))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.)
    args = ap.parse_args()
    install_into_venv(os.path.join(ROOT, ".venv", "bench-install"))
    link_probe()
    cloud = PolarEmulator().start()
    cloud.add_account(EMAIL, PIN)
    results = []
    snapshot_url = cloud.serve_file("bench.jpg", pattern_jpeg())
    options = "idle_snapshot_interval: 5\n[polar_bench_probe]"
    with PrinterHarness(cloud.url, polar_extra=options) as h:
        time.sleep(1.)
        results.append(measure(h, "idle-unregistered", args.seconds))

        def register():
            status, body = h.http("POST", "/server/polar/register",
                                  {"email": EMAIL, "pin": PIN}, timeout=300)
            assert status == 200, body
            h.serial = body["result"]["serial"]
        results.append(measure(h, "register", args.seconds, register))
        h.wait_polar(lambda s: s["connected"])
        results.append(measure(h, "online-idle", args.seconds))
        blob = (b"G1 X10 Y10 E0.1 F600\n" * (50 * 1024 * 1024 // 21 + 1))
        url = cloud.serve_file("big.gcode", blob[:50 * 1024 * 1024])

        def download():
            cloud.emit("print", {"serialNumber": h.serial, "jobId": "B-1",
                                 "jobName": "big", "gcodeFile": url},
                       serial=h.serial)
        results.append(measure(h, "download-50MB", args.seconds, download))
        try:
            h.klippy.gcode("CANCEL_PRINT")
        except Exception:
            pass

        def camera_on():
            # what the Moonraker shim does when a webcam is configured
            h.klippy.call("polar_cloud/webcam", {"webcam": {
                "snapshot_url": snapshot_url, "rotation": 90}})
        uploads = len(cloud.uploads)
        results.append(measure(h, "snapshots", max(args.seconds, 20.),
                               camera_on))
        print("  (%d snapshots uploaded)" % (len(cloud.uploads) - uploads,))
    cloud.close()
    out = os.path.join(ROOT, "bench", "results")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "reactor_lateness-%d.json" % (time.time(),))
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print("results: %s" % (path,))


if __name__ == "__main__":
    main()
