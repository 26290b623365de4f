"""Demo without a printer: real Klippy (simulated MCU), real Moonraker, a
local Polar Cloud emulator and this project, wired together on loopback.

It registers the printer the way an owner would (the curl call), then shows
every message the "cloud" receives, and sends it a print job, until Ctrl-C
or SIGTERM; then it stops Klippy, Moonraker and the emulator and deletes its
temporary folder.  Try, in another terminal, the Moonraker commands it
prints.
"""
import faulthandler
import json
import os
import signal
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import PrinterHarness, install_into_venv  # noqa: E402
from polar_emulator import PolarEmulator  # noqa: E402

EMAIL, PIN = "demo@example.com", "1234"
JOB_DELAY = 5.


class Stop(Exception):
    """SIGINT or SIGTERM: leave the main loop and clean up."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def say(text):
    print("demo: " + text, flush=True)


def show(record):
    d = record.data
    if record.event == "status":
        temps = " ".join("%s %.0f/%.0f" % (k, d[k], d["target" + k[0].upper()
                                                     + k[1:]])
                         for k in ("tool0", "bed") if k in d)
        print("cloud <- status %-2s %-10s job %-8s %s  %s" % (
            d["status"], d.get("progress"), d.get("jobId"), temps,
            d.get("progressDetail", "")), flush=True)
    elif record.event not in ("connect", "disconnect"):
        shown = {k: v for k, v in d.items() if k not in ("signature",
                                                         "publicKey", "pin")}
        print("cloud <- %s %s" % (record.event, json.dumps(shown)[:160]),
              flush=True)


def register_in_background(printer):
    """POST /server/polar/register on a thread; returns its result slot."""
    result = {}

    def post():
        try:
            result["reply"] = printer.http(
                "POST", "/server/polar/register",
                {"email": EMAIL, "pin": PIN}, timeout=120)
        except Exception as e:   # Moonraker gone: the demo is stopping
            result["reply"] = (None, {"error": str(e)})
    threading.Thread(target=post, daemon=True).start()
    return result


def run(printer, cloud):
    url = printer.base_url
    say("registering, as an owner would:\n  curl -X POST -H 'Content-Type:"
        " application/json' -d '{\"email\":\"%s\",\"pin\":\"%s\"}'"
        " %s/server/polar/register\n  (the printer first makes its RSA key:"
        " 5-20 s)" % (EMAIL, PIN, url))
    registration = register_in_background(printer)
    job_at = serial = None
    seen = 0
    while True:
        records = cloud.events
        for record in records[seen:]:
            show(record)
        seen = len(records)
        if registration and "reply" in registration:
            status, body = registration.pop("reply")
            registration = None
            print("-> HTTP %s %s" % (status, json.dumps(body)), flush=True)
            serial = (body.get("result") or {}).get("serial")
            say("try:  curl %s/server/polar/status\n"
                "      curl -X POST -H 'Content-Type: application/json' -d"
                " '{\"script\":\"M140 S60\"}' %s/printer/gcode/script"
                % (url, url))
            if serial:
                job_at = time.monotonic() + JOB_DELAY
                say("in %d s the emulated cloud sends a print job;"
                    " Ctrl-C to stop" % (JOB_DELAY,))
        if job_at is not None and time.monotonic() > job_at:
            job_at = None
            job = b"G28\nG90\nM83\n" + b"".join(
                b"G1 X%d Y%d E0.05 F3000\n" % (50 + i % 100, 50 + i % 80)
                for i in range(300))
            job_url = cloud.serve_file("demo_cube.gcode", job)
            print("cloud -> print job DEMO-1 (%s)" % (job_url,), flush=True)
            cloud.emit("print", {"serialNumber": serial, "jobId": "DEMO-1",
                                 "jobName": "Demo cube",
                                 "gcodeFile": job_url}, serial=serial)
        time.sleep(0.2)


def main():
    # `kill -USR1` prints every thread's stack: how to see where a stop hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cloud = printer = None
    try:
        say("starting the Polar Cloud emulator (loopback only)")
        cloud = PolarEmulator()
        cloud.start()
        cloud.add_account(EMAIL, PIN)
        say("installing the module and the Moonraker component with"
            " install.sh (into .venv)")
        install_into_venv(os.path.join(ROOT, ".venv", "demo-install"))
        printer = PrinterHarness(cloud.url)
        say("starting Klippy (simulated MCU) and Moonraker in %s"
            " (deleted when the demo stops)" % (printer.tmp,))
        printer.start()
        say("Klippy + Moonraker ready: %s (data in %s)"
            % (printer.base_url, printer.data))
        run(printer, cloud)
    except Stop as e:
        print(flush=True)
        say("%s: stopping" % (e,))
    finally:
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        began = time.monotonic()
        if printer is not None:
            printer.stop()
        stopped_printer = time.monotonic()
        if cloud is not None:
            cloud.close()
    say("stopped: Klippy, Moonraker and the emulator are gone"
        " (%.1f s + %.1f s)" % (stopped_printer - began,
                                time.monotonic() - stopped_printer))


if __name__ == "__main__":
    main()
