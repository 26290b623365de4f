"""The link half of the fault campaign at full size, with a table of figures.

Runs tests/test_faults_link.py with POLAR_CAMPAIGN=full (>= 40 outages,
>= 10 000 hostile packets, the handshake faults with real Klippy and its
real timeouts, a 4-minute refused outage for the log), collects the figures
the tests write and prints them; the JSON goes to
bench/results/faults-link-<date>-<time>.json.

usage: .venv/bin/python bench/faults_link.py [--seed N] [pytest args...]
"""
import json
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)


def rows(data):
    out = data.get("outages")
    if out:
        yield ("outage end -> verified hello (%d outages, %g-%g s)"
               % (out["n"], *out["outage_seconds"]),
               "p50 %.2f s, p95 %.2f s, max %.2f s"
               % (out["p50"], out["p95"], out["max"]))
        for kind, d in out["by_kind"].items():
            yield ("  %s (%d)" % (kind, d["n"]),
                   "p50 %.2f s, max %.2f s" % (d["p50"], d["max"]))
    hostile = data.get("hostile")
    if hostile:
        yield ("hostile packets (seed %d)" % hostile["seed"],
               "%d (%d events, %d raw, %d before hello, %d canaries)"
               % (hostile["total"], hostile["events"], hostile["raw"],
                  hostile["before_hello"], hostile["canaries"]))
        yield ("  statuses sent during the storm",
               "%d in %.1f s" % (hostile["statuses_during_storm"],
                                 hostile["storm_seconds"]))
        yield ("  Klippy RSS before -> after", "%.1f -> %.1f MiB (%+.2f)"
               % (hostile["rss_before_mib"], hostile["rss_after_mib"],
                  hostile["rss_growth_mib"]))
    for section in ("handshake_klippy", "handshake_connector"):
        hs = data.get(section)
        if hs:
            yield ("%s (watchdog %g s): cloud behaves -> status"
                   % (section, hs["handshake_timeout"]), "")
            for name, seconds in hs.items():
                if isinstance(seconds, float) and name != "handshake_timeout":
                    yield ("  " + name, "%.1f s" % seconds)
    logs = data.get("logs")
    if logs:
        yield ("klippy.log during a refused outage (%.0f s)"
               % logs["window_seconds"], "%d bytes -> %d bytes/hour"
               % (logs["bytes"], logs["bytes_per_hour"]))


def main(argv):
    seed = "10"
    if argv[:1] == ["--seed"]:
        seed, argv = argv[1], argv[2:]
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    path = os.path.join(BENCH, "results", time.strftime(
        "faults-link-%Y%m%d-%H%M%S.json"))
    env = dict(os.environ, POLAR_CAMPAIGN="full", POLAR_CAMPAIGN_SEED=seed,
               POLAR_CAMPAIGN_REPORT=path)
    started = time.monotonic()
    rc = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-s", "tests/test_faults_link.py"] + argv, cwd=ROOT, env=env)
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    print("\nlink fault campaign, seed %s, %.0f s, pytest exit %d"
          % (seed, time.monotonic() - started, rc))
    for name, value in rows(data):
        print("%-62s %s" % (name, value))
    print("figures: %s" % (path,))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
