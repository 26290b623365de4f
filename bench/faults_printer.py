#!/usr/bin/env python3
"""The printer half of issue 10's fault campaign, in full.

Runs tests/test_faults_printer.py with POLAR_CAMPAIGN=full (every crash
case: SIGKILL, RESTART and FIRMWARE_RESTART while idle, downloading and
printing, each repeated; all four disk-full variants), collects what each
run measured into a JSON file and prints a table:

    .venv/bin/python bench/faults_printer.py [--repeats N] [--json FILE]

Storage cases that need root (read-only bind mount, tmpfs) are skipped
without it.  docs/reliability.md holds the figures of one run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST = os.path.join("tests", "test_faults_printer.py")


def table(runs):
    cases = {}
    for run in runs:
        cases.setdefault(run["case"], []).append(run)
    rows = [("case", "runs", "ok", "job events/run", "earlier resent",
             "online after (s) p50 / max")]
    for case, items in cases.items():
        online = [r["online_s"] for r in items if "online_s" in r]
        events = sorted({r["job_events"] for r in items
                         if "job_events" in r})
        rows.append((case, str(len(items)),
                     str(sum(1 for r in items if r.get("ok"))),
                     ",".join(map(str, events)) or "-",
                     str(sum(r.get("resent_earlier", 0) for r in items)),
                     "%.1f / %.1f" % (statistics.median(online), max(online))
                     if online else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths))
                     for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5,
                    help="runs of each crash case (default 5)")
    ap.add_argument("--json", default=os.path.join(
        ROOT, "bench", "results", "faults-printer-%s.json"
        % time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    env = dict(os.environ, POLAR_CAMPAIGN="full",
               POLAR_CAMPAIGN_REPEATS=str(args.repeats),
               POLAR_CAMPAIGN_REPORT=os.path.abspath(args.json))
    started = time.monotonic()
    proc = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "python"), "-m", "pytest", "-q",
         "-p", "no:cacheprovider", TEST], cwd=ROOT, env=env)
    took = time.monotonic() - started
    try:
        with open(args.json) as f:
            report = json.load(f)
    except (OSError, ValueError):
        print("no report written (%s)" % (args.json,))
        return 1
    print()
    print(table(report["runs"]))
    print()
    print("pytest exit status %d, %.0f s; figures in %s"
          % (proc.returncode, took, args.json))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
