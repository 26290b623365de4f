#!/usr/bin/env python3
"""What does a 100 MB download beside Klippy cost its reactor, by method?

A bare Klippy (no [polar_cloud]) with the probe at 1 ms, idle; in every
window the same file is fetched from the emulator into Klippy's SD folder
every `--period` s (then removed), by one of:

* none: nothing (the machine's floor);
* curl: `curl` + fsync, the bare windows' download in bench/ab_bench.py;
* worker: the module's download worker (polarcloud/workers/download.py),
  run by this driver, not by Klippy, so that only its I/O pattern differs;
* klippy: the same worker started and waited on by a thread in Klippy's
  process (the probe's `fetch`), as the module does.

Modes alternate, order rotated every round, fresh processes every window.
This isolates the transfer from everything the module does in Klippy
(docs/performance.md, run K).

    .venv/bin/python bench/download_io.py [--rounds 5] [--window 12]
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [BENCH, ROOT, os.path.join(ROOT, "tests")]
from polar_emulator import PolarEmulator  # noqa: E402
from abbench import loads, printers  # noqa: E402
from polarcloud.connector.runner import run as run_worker  # noqa: E402

MODES = ("none", "curl", "worker", "klippy")


def fetch(mode, url, p):
    request = {"url": url, "dest_dir": p.h.gcodes,
               "filename": loads.FETCHED_NAME, "max_bytes": 1 << 31,
               "min_free_bytes": 0, "read_timeout": 30.}
    if mode == "curl":
        loads.curl_fsync(url, os.path.join(p.h.gcodes, loads.FETCHED_NAME))
    elif mode == "worker":
        os.unlink(run_worker("download", request)["path"])
    elif mode == "klippy":
        os.unlink(p.call("polar_bench_probe/fetch",
                         {"request": request}, timeout=120.)["path"])


def window(cloud, workdir, mode, url, seconds, period):
    p = printers.BenchPrinter("bare", cloud, os.path.join(workdir, "state"))
    stop = threading.Event()
    took = []

    def cycles():
        while not stop.is_set():
            t0 = time.monotonic()
            fetch(mode, url, p)
            took.append(time.monotonic() - t0)
            stop.wait(max(0., period - (time.monotonic() - t0)))
    driver = threading.Thread(target=cycles, daemon=True)
    with p:
        time.sleep(3.)
        p.probe_start()
        if mode != "none":
            driver.start()
        time.sleep(seconds)
        report = p.probe_report()
        stop.set()
        if driver.is_alive():
            driver.join()
    report["fetch_s"] = statistics.median(took) if took else 0.
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--window", type=float, default=12.)
    ap.add_argument("--period", type=float, default=3.)
    ap.add_argument("--download-mb", type=int, default=100)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    modes = args.modes.split(",")
    workdir = tempfile.mkdtemp(prefix="download-io-")
    printers.install(workdir)
    big = loads.big_gcode(ROOT, args.download_mb)
    cloud = PolarEmulator().start()
    with open(big, "rb") as f:
        url = cloud.serve_file(loads.BIG_NAME, f.read())
    results = {m: [] for m in modes}
    try:
        for r in range(args.rounds):
            k = r % len(modes)
            for mode in modes[k:] + modes[:k]:
                w = window(cloud, workdir, mode, url, args.window,
                           args.period)
                results[mode].append(w)
                print("round %d %-6s p99 %.3f ms, max %.1f ms, > 5 ms %d,"
                      " > 0.5 ms %d, fetch %.2f s" % (
                          r, mode, w["p99_ms"], w["max_ms"],
                          w["stalls_5ms"], w["over_0_5ms"], w["fetch_s"]),
                      flush=True)
    finally:
        cloud.stop()
    for mode, ws in results.items():
        med = {k: statistics.median(w[k] for w in ws)
               for k in ("p99_ms", "max_ms", "stalls_5ms", "over_0_5ms",
                         "fetch_s")}
        print("%-6s median p99 %.3f ms, max %.1f ms, > 5 ms %g, > 0.5 ms %g,"
              " fetch %.2f s" % (mode, med["p99_ms"], med["max_ms"],
                                 med["stalls_5ms"], med["over_0_5ms"],
                                 med["fetch_s"]))


if __name__ == "__main__":
    main()
