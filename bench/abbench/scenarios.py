"""The scenarios and one measured window of one Klippy."""
import time
from dataclasses import dataclass
from typing import Tuple

from . import loads, procstats
from .printers import BenchPrinter

STATUS_1HZ = "status_interval: 1\n"
SNAPSHOTS = "snapshot_url: %(jpeg_url)s\nidle_snapshot_interval: 5\n"


@dataclass
class Scenario:
    name: str
    what: str
    options: str = ""                # [polar_cloud] options (module only)
    drivers: Tuple[type, ...] = ()
    printing: bool = False           # a real-time SD print runs throughout
    probe: bool = True               # False: CPU/RSS only (the probe costs CPU)
    long_window: bool = False        # uses --idle-window instead of --window


def _printing(s):
    return Scenario("printing-" + s.name, s.what + ", while an SD print runs",
                    s.options, tuple(d for d in s.drivers
                                     if d is not loads.DownloadCycles),
                    printing=True)


_BASE = [
    Scenario("idle", "connected and idle, default status cadence"),
    Scenario("status-1hz", "connected, status_interval: 1", STATUS_1HZ),
    Scenario("commands", "a storm of cloud `command` (M105) events (--command-rate; while "
             "printing --print-command-rate)",
             drivers=(loads.CommandStorm,)),
    Scenario("downloads", "100 MB cloud print -> download -> started -> "
             "cancel, one cycle every 6 s", drivers=(loads.DownloadCycles,)),
    Scenario("snapshots", "4000x3000 JPEG snapshot every 5 s (shrunk to "
             "150 kB, uploaded)", SNAPSHOTS),
    Scenario("all", "1 Hz status + snapshots + command storm (at "
             "--print-command-rate) + download cycles at once", STATUS_1HZ + SNAPSHOTS,
             (loads.CommandStorm, loads.DownloadCycles)),
]
SCENARIOS = [Scenario("idle-cpu", "connected and idle, default cadence, no "
                      "probe: CPU and RSS over a long window", probe=False,
                      long_window=True)] + _BASE + [
    _printing(s) for s in _BASE if s.name != "downloads"]
BY_NAME = {s.name: s for s in SCENARIOS}


def run_window(ctx, scn, kind, seconds, profile=None):
    """Start `kind`'s Klippy for scn, let it settle, measure one window.
    A window that fails (e.g. Klippy shut down) is returned with "failed"
    and the end of its klippy.log, so one bad window doesn't end the run."""
    p = BenchPrinter(kind, ctx.cloud, ctx.state_dir,
                     scn.options % ctx.subst if scn.options else "",
                     files=ctx.files, python=ctx.python)
    try:
        p.start()
        return _measure(ctx, scn, p, seconds, profile)
    except Exception as e:
        return {"kind": kind, "failed": "%s: %s" % (type(e).__name__, e),
                "klippy_log_tail": _log_tail(p.h.klippy_log)}
    finally:
        p.stop()


def _log_tail(path, lines=60):
    try:
        with open(path, errors="replace") as f:
            return f.readlines()[-lines:]
    except OSError:
        return []


def _measure(ctx, scn, p, seconds, profile):
    kind = p.kind
    if scn.printing:
        loads.start_long_print(p)
    time.sleep(ctx.settle)
    mark, uploads = ctx.cloud.mark(), len(ctx.cloud.uploads)
    if scn.probe:
        p.probe_start()
    sampler = procstats.Sampler(p.pid).start()
    drivers = [d(p, ctx.cloud, ctx.matched, **ctx.driver_args(d, scn))
               for d in scn.drivers]
    for d in drivers:
        d.start()
    try:
        spy = profile.start(p.pid) if profile else None
        t0 = time.monotonic()
        time.sleep(seconds)
        rep = p.probe_report() if scn.probe else {}
    except BaseException:
        for d in drivers:
            d.stopping.set()
        raise
    out = sampler.stop(time.monotonic() - t0)
    if spy:
        out["profile"] = profile.finish(spy)
    out.update({k: v for k, v in rep.items() if k != "worst"})
    out["worst"] = rep.get("worst", [])
    out["window_s"] = round(time.monotonic() - t0, 2)
    out["kind"] = kind
    out["loads"] = {type(d).__name__: d.stop() for d in drivers}
    if p.has_module:
        out["statuses_sent"] = len([
            r for r in ctx.cloud.events[mark:]
            if r.event == "status" and r.serial == p.serial])
        out["snapshots_uploaded"] = len(ctx.cloud.uploads) - uploads
    if scn.printing:
        out["still_printing"] = p.h.print_state() == "printing"
    state = p.call("info")["state"]
    if state != "ready":
        out["failed"] = "Klippy %s at the end of the window" % (state,)
        out["klippy_log_tail"] = _log_tail(p.h.klippy_log)
    return out
