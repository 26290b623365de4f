#!/usr/bin/env python3
"""What does a client polling Klippy's API cost the reactor?

A bare Klippy (no [polar_cloud]) with the probe at 1 ms, idle; windows
alternate "quiet" and "poll" (a request to the probe's `events` endpoint
`--rate` times a second), order flipped every round, fresh processes for
every window.  Every request wakes the reactor, and Klipper's reactor then
sleeps at least 1 ms, so the next firing is late by the time since the
last one: this is why the A/B drivers wait in Klippy instead of polling
(docs/performance.md, run D).

    .venv/bin/python bench/poll_wakeups.py [--rounds 4] [--window 10]
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]
from polar_emulator import PolarEmulator  # noqa: E402
from abbench import printers  # noqa: E402


def window(cloud, workdir, rate, seconds):
    p = printers.BenchPrinter("bare", cloud, os.path.join(workdir, "state"))
    stop = threading.Event()

    def poll():
        while not stop.wait(1. / rate):
            p.events_since(0)
    poller = threading.Thread(target=poll, daemon=True)
    with p:
        time.sleep(3.)
        p.probe_start()
        if rate:
            poller.start()
        time.sleep(seconds)
        report = p.probe_report()
        stop.set()
    return {"p99_ms": report["p99_ms"],
            "over_0_5ms_per_s": report["over_0_5ms"] / report["seconds"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window", type=float, default=10.)
    ap.add_argument("--rate", type=float, default=20.)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="poll-wakeups-")
    printers.install(workdir)
    cloud = PolarEmulator().start()
    results = {"quiet": [], "poll": []}
    try:
        for r in range(args.rounds):
            order = ("quiet", "poll") if r % 2 == 0 else ("poll", "quiet")
            for mode in order:
                rate = args.rate if mode == "poll" else 0.
                w = window(cloud, workdir, rate, args.window)
                results[mode].append(w)
                print("round %d %-5s p99 %.3f ms, firings > 0.5 ms %.1f/s"
                      % (r, mode, w["p99_ms"], w["over_0_5ms_per_s"]),
                      flush=True)
    finally:
        cloud.stop()
    for mode, ws in results.items():
        print("%-5s median p99 %.3f ms, firings > 0.5 ms %.1f/s" % (
            mode, statistics.median(w["p99_ms"] for w in ws),
            statistics.median(w["over_0_5ms_per_s"] for w in ws)))


if __name__ == "__main__":
    main()
