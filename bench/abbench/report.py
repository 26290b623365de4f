"""Medians over rounds, ratios, targets; tables as text and Markdown."""
import math
import statistics

METRICS = [  # (key, label, format)
    ("p50_ms", "p50 lateness ms", "%.3f"),
    ("p99_ms", "p99 lateness ms", "%.3f"),
    ("p999_ms", "p99.9 lateness ms", "%.2f"),
    ("max_ms", "max lateness ms", "%.1f"),
    ("stalls_5ms", "firings > 5 ms", "%d"),
    ("over_0_5ms", "firings > 0.5 ms", "%d"),
    ("firings_per_s", "firings/s", "%.0f"),
    ("cpu_pct", "Klippy CPU %", "%.2f"),
    ("children_cpu_pct", "children CPU %", "%.2f"),
    ("rss_mib", "Klippy RSS MiB", "%.1f"),
    ("children_rss_max_mib", "children RSS max MiB", "%.1f"),
]
PROBE_ONLY = {"p50_ms", "p99_ms", "p999_ms", "max_ms", "stalls_5ms",
              "over_0_5ms", "firings_per_s"}
RATIO_TARGET = 1.2           # p99, max, stalls: module / bare
TARGETED = ("p99_ms", "max_ms", "stalls_5ms")
IDLE_CPU_TARGET = .08        # % of a core added while connected and idle
RSS_TARGET = 15.             # MiB added while connected


def ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return 1. if a == 0 else math.inf
    return a / b


def summarise(windows, probe=True):
    """{metric: {kind: median}} plus ratios, from this scenario's windows."""
    by_kind, failed = {}, {}
    for w in windows:
        if "failed" in w:
            failed[w["kind"]] = failed.get(w["kind"], 0) + 1
        else:
            by_kind.setdefault(w["kind"], []).append(w)
    out = {"failed": failed}
    for key, _label, _fmt in METRICS:
        if key in PROBE_ONLY and not probe:
            continue
        med = {k: statistics.median(w[key] for w in ws)
               for k, ws in by_kind.items() if ws and all(key in w for w in ws)}
        out[key] = dict(med, ab=ratio(med.get("module"), med.get("bare")),
                        aa=ratio(med.get("bare2"), med.get("bare")))
    verdict = {}
    if probe:
        for key in TARGETED:
            r = out[key]["ab"]
            verdict[key] = r is not None and r <= RATIO_TARGET \
                and not failed.get("module")
    out["verdict"] = verdict
    return out


def idle_cpu_verdict(summary):
    cpu = summary["cpu_pct"]
    rss = summary["rss_mib"]
    added_cpu = cpu.get("module", 0) - cpu.get("bare", 0)
    added_rss = rss.get("module", 0) - rss.get("bare", 0)
    return {"cpu_added_pct": round(added_cpu, 3),
            "cpu_added_aa_pct": round(cpu.get("bare2", 0) - cpu.get("bare", 0),
                                      3),
            "cpu_ok": added_cpu <= IDLE_CPU_TARGET,
            "rss_added_mib": round(added_rss, 2),
            "rss_added_aa_mib": round(rss.get("bare2", 0) - rss.get("bare", 0),
                                      2),
            "rss_ok": added_rss <= RSS_TARGET}


def idle_line(t):
    return ("Connected and idle: CPU added %+.3f %% of a core (target <= "
            "%.2f: %s; A/A %+.3f), RSS added %+.1f MiB (target <= %.0f: %s;"
            " A/A %+.1f)" % (
                t["cpu_added_pct"], IDLE_CPU_TARGET,
                "ok" if t["cpu_ok"] else "MISSED", t["cpu_added_aa_pct"],
                t["rss_added_mib"], RSS_TARGET,
                "ok" if t["rss_ok"] else "MISSED", t["rss_added_aa_mib"]))


def _fmt_ratio(r):
    if r is None:
        return "-"
    return "inf" if r == math.inf else "x%.2f" % (r,)


def table(name, what, summary, markdown=False):
    rows = [("metric", "B bare", "A module", "A/B", "A/A (bare2/bare)",
             "target")]
    for key, label, fmt in METRICS:
        if key not in summary:
            continue
        s = summary[key]
        if not any(k in s for k in ("bare", "module")):
            continue
        cell = lambda k: (fmt % s[k]) if k in s else "-"  # noqa: E731
        mark = ""
        if key in summary["verdict"]:
            mark = "ok" if summary["verdict"][key] else "MISSED"
        rows.append((label, cell("bare"), cell("module"), _fmt_ratio(s["ab"]),
                     _fmt_ratio(s["aa"]), mark))
    head = "%s: %s" % (name, what)
    if summary.get("failed"):
        head += " -- FAILED windows (not in the medians): " + ", ".join(
            "%s %d" % kv for kv in sorted(summary["failed"].items()))
    if markdown:
        lines = ["#### " + head, "",
                 "| " + " | ".join(rows[0]) + " |",
                 "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                      for i, (c, w) in enumerate(
                                          zip(r, widths))).rstrip())
    return "\n".join(lines) + "\n"


def latency_lines(lat):
    """Human lines for the latency tests (same text for stdout and .md)."""
    out = []
    ps = lat.get("print_start")
    if ps:
        out.append(
            "100 MB cloud print, `print` -> SDCARD_PRINT_FILE: p50 %.2f s "
            "(max %.2f) vs curl + fsync p50 %.2f s: ratio x%.2f (target "
            "<= x1.25); Klippy RSS growth over the cycles %+.1f MiB (target "
            "<= 2), max %.1f MiB; download child RSS max %.1f MiB"
            % (ps["cloud_s"]["p50"], ps["cloud_s"]["max"],
               ps["curl_fsync_s"]["p50"], ps["ratio_p50"] or 0,
               ps["rss_growth_mib"], ps["rss_max_mib"],
               ps["children_rss_max_mib"]))
    mod, bare = lat.get("module"), lat.get("bare")
    if mod and "pause_to_paused_s" in mod:
        m = mod["pause_to_paused_s"]
        line = ("cloud `pause` -> print_stats paused (module): p50 %.0f ms, "
                "p95 %.0f ms, max %.0f ms over %d (target p95 <= 50 ms)"
                % (m["p50"] * 1e3, m["p95"] * 1e3, m["max"] * 1e3, m["n"]))
        if bare and "pause_to_paused_s" in bare:
            b = bare["pause_to_paused_s"]
            line += ("; PAUSE over the API -> paused (bare Klippy, Klipper's"
                     " own part): p50 %.0f ms, p95 %.0f ms, max %.0f ms"
                     % (b["p50"] * 1e3, b["p95"] * 1e3, b["max"] * 1e3))
        out.append(line)
    if mod and "paused_to_status_s" in mod:
        w = mod["paused_to_status_s"]
        out.append("print_stats paused -> status 4 received by the cloud: "
                   "p50 %.2f s, p95 %.2f s, max %.2f s (target <= 1 s)"
                   % (w["p50"], w["p95"], w["max"]))
    if mod and "m140_to_status_s" in mod:
        w = mod["m140_to_status_s"]
        out.append("M140 (heater target) -> status with the new target "
                   "received by the cloud: p50 %.2f s, p95 %.2f s, max %.2f s"
                   " over %d (target <= 1 s)"
                   % (w["p50"], w["p95"], w["max"], w["n"]))
    return out
