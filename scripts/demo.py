"""Demo without a printer: real Klippy (simulated MCU), real Moonraker, a
local Polar Cloud emulator and this project, wired together on loopback.

It registers the printer the way an owner would (the curl call), then shows
every status the "cloud" receives until Ctrl-C.  Try, in another terminal,
the Moonraker commands it prints.
"""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import PrinterHarness, install_into_venv  # noqa: E402
from polar_emulator import PolarEmulator  # noqa: E402

EMAIL, PIN = "demo@example.com", "1234"


def show(record):
    d = record.data
    if record.event == "status":
        temps = " ".join("%s %.0f/%.0f" % (k, d[k], d["target" + k[0].upper()
                                                     + k[1:]])
                         for k in ("tool0", "bed") if k in d)
        print("cloud <- status %-2s %-10s job %-8s %s  %s" % (
            d["status"], d.get("progress"), d.get("jobId"), temps,
            d.get("progressDetail", "")))
    elif record.event not in ("connect", "disconnect"):
        shown = {k: v for k, v in d.items() if k not in ("signature",
                                                         "publicKey", "pin")}
        print("cloud <- %s %s" % (record.event, json.dumps(shown)[:160]))


def main():
    cloud = PolarEmulator()
    cloud.start()
    cloud.add_account(EMAIL, PIN)
    install_into_venv(os.path.join(ROOT, ".venv", "demo-install"))
    with PrinterHarness(cloud.url) as printer:
        print("Klippy + Moonraker ready: %s (data in %s)"
              % (printer.base_url, printer.data))
        print("registering: curl -X POST -H 'Content-Type: application/json'"
              " -d '{\"email\":\"%s\",\"pin\":\"%s\"}' %s/server/polar/register"
              % (EMAIL, PIN, printer.base_url))
        status, body = printer.http("POST", "/server/polar/register",
                                    {"email": EMAIL, "pin": PIN}, timeout=120)
        print("-> HTTP %s %s" % (status, json.dumps(body)))
        print("try: curl %s/server/polar/status" % (printer.base_url,))
        print("     curl -X POST -H 'Content-Type: application/json' -d"
              " '{\"script\":\"M140 S60\"}' %s/printer/gcode/script"
              % (printer.base_url,))
        print("In 5 s the emulated cloud sends a print job; Ctrl-C to stop.\n")
        job = b"G28\nG90\nM83\n" + b"".join(
            b"G1 X%d Y%d E0.05 F3000\n" % (50 + i % 100, 50 + i % 80)
            for i in range(300))
        job_url = cloud.serve_file("demo_cube.gcode", job)
        job_at = time.monotonic() + 5.
        serial = body.get("result", {}).get("serial")
        seen = 0
        try:
            while True:
                records = cloud.events
                for record in records[seen:]:
                    show(record)
                seen = len(records)
                if job_at and time.monotonic() > job_at and serial:
                    job_at = None
                    print("cloud -> print job DEMO-1 (%s)" % (job_url,))
                    cloud.emit("print", {"serialNumber": serial,
                                         "jobId": "DEMO-1",
                                         "jobName": "Demo cube",
                                         "gcodeFile": job_url},
                               serial=serial)
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping")
    cloud.close()


if __name__ == "__main__":
    main()
