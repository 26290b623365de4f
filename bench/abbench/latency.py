"""Latency tests: cloud print start vs curl, pause, state change -> status."""
import os
import random
import time

from . import loads, procstats
from .printers import BenchPrinter


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))] if v else None


def spread(values, scale=1.):
    return {"n": len(values), "p50": _r(pct(values, .5), scale),
            "p95": _r(pct(values, .95), scale),
            "max": _r(max(values) if values else None, scale)}


def _r(v, scale):
    return None if v is None else round(v * scale, 4)


def print_start(ctx, tries):
    """100 MB cloud print: `print` sent -> SDCARD_PRINT_FILE (the SD file
    reset event), alternated with curl + fsync of the same URL into the same
    folder; Klippy's RSS across the cycles."""
    p = BenchPrinter("module", ctx.cloud, ctx.state_dir, python=ctx.python)
    cloud, curl, rss = [], [], []
    with p:
        time.sleep(ctx.settle)
        sampler = procstats.Sampler(p.pid, interval=.1).start()
        t_start = time.monotonic()
        rss.append(procstats.rss_kb(p.pid))
        for i in range(tries * 2):
            if (i + (i // 2)) % 2 == 0:     # curl, cloud, cloud, curl, ...
                curl.append(loads.curl_fsync(ctx.big_url, os.path.join(
                    p.h.gcodes, "curl-%d.gcode" % (i,))))
                continue
            since = p.events_next()
            mark = ctx.cloud.mark()
            job = "BENCH-P%d" % (i,)
            t0 = time.monotonic()
            ctx.cloud.emit("print", {"serialNumber": p.serial, "jobId": job,
                                     "jobName": "start", "gcodeFile":
                                     ctx.big_url}, serial=p.serial)
            ev, _ = p.wait_event(since, "sd_reset", timeout=120.)
            cloud.append(p.to_bench(ev[0]) - t0)
            p.h.wait_print_state(["printing"], timeout=30.)
            ctx.cloud.emit("cancel", {"serialNumber": p.serial},
                           serial=p.serial)
            ctx.cloud.wait_for("job", lambda d: d.get("jobId") == job,
                               start=mark, timeout=60.)
            time.sleep(1.)
            rss.append(procstats.rss_kb(p.pid))
        mem = sampler.stop(time.monotonic() - t_start)
    c50, k50 = pct(cloud, .5), pct(curl, .5)
    return {"cloud_s": spread(cloud), "curl_fsync_s": spread(curl),
            "ratio_p50": round(c50 / k50, 3) if c50 and k50 else None,
            "rss_mib": [round(v / 1024., 2) for v in rss],
            "rss_growth_mib": round((rss[-1] - rss[0]) / 1024., 2),
            "rss_max_mib": round(mem["rss_max_mib"], 2),
            "children_rss_max_mib": round(mem["children_rss_max_mib"], 2),
            "raw": {"cloud": cloud, "curl": curl}}


def pause_and_wire(ctx, kind, tries, wire_tries):
    """Module: cloud `pause` -> print_stats paused (and paused -> status 4
    on the wire), plus M140 -> a status with the new target on the wire.
    Bare: PAUSE over the API -> paused (Klipper's own part)."""
    p = BenchPrinter(kind, ctx.cloud, ctx.state_dir, python=ctx.python,
                     files=ctx.files)
    out = {}
    with p:
        time.sleep(ctx.settle)
        if p.has_module and wire_tries:
            out["m140_to_status_s"] = spread(_wire(ctx, p, wire_tries))
        loads.start_long_print(p)
        time.sleep(2.)
        p.probe_start()          # the probe's timer watches print_stats
        paused, wire = [], []
        for _ in range(tries):
            since = p.events_next()
            mark = ctx.cloud.mark()
            t0 = time.monotonic()
            if p.has_module:
                ctx.cloud.emit("pause", {"serialNumber": p.serial},
                               serial=p.serial)
            else:
                p.gcode("PAUSE")
            ev, since = p.wait_event(since, "state", ["paused"],
                                     timeout=30.)
            paused.append(p.to_bench(ev[0]) - t0)
            if p.has_module:
                rec = ctx.cloud.wait_for(
                    "status", lambda d: d.get("status") == 4, start=mark,
                    timeout=30.)
                wire.append(rec.t - p.to_bench(ev[0]))
                ctx.cloud.emit("resume", {"serialNumber": p.serial},
                               serial=p.serial)
            else:
                p.gcode("RESUME")
            p.wait_event(since, "state", ["printing"], timeout=30.)
            time.sleep(random.uniform(.3, .8))
        p.probe_report()
    out["pause_to_paused_s"] = spread(paused)
    out["raw_pause"] = paused
    if wire:
        out["paused_to_status_s"] = spread(wire)
    return out


def _wire(ctx, p, tries):
    took = []
    for i in range(tries):
        target = 40 + 5 * (i % 2)
        mark = ctx.cloud.mark()
        t0 = time.monotonic()
        p.gcode("M140 S%d" % (target,))
        rec = ctx.cloud.wait_for(
            "status", lambda d: d.get("targetBed") == float(target),
            start=mark, timeout=30.)
        took.append(rec.t - t0)
        time.sleep(random.uniform(.2, 1.5))
    p.gcode("M140 S0")
    return took
