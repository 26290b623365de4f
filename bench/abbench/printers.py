"""The Klippys under test: the test printer with the module ("module") and
the same printer without its [polar_cloud] section ("bare", "bare2").

Each window gets freshly started processes (Klippy + Moonraker) so that
nothing a module Klippy does in the background lands in a bare window; the
module's state directory is kept for the whole run, so it is registered once.
"""
import os
import re
import time

from harness import PrinterHarness, SITE, install_into_venv

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
PROBE = os.path.join(BENCH, "klippy_extras", "polar_bench_probe.py")
KINDS = ("module", "bare", "bare2")
SECTION = re.compile(r"^\[polar_cloud\][^\n]*\n(?:(?!\[)[^\n]*\n?)*", re.M)


def install(workdir, klippy_venv=None):
    """install.sh into this venv (as the tests do) plus the probe."""
    install_into_venv(os.path.join(workdir, "install-data"), klippy_venv)
    site = SITE if klippy_venv is None else _site(klippy_venv)
    dest = os.path.join(site, "klippy", "extras", "polar_bench_probe.py")
    if os.path.realpath(dest) != PROBE:
        if os.path.lexists(dest):
            os.unlink(dest)
        os.symlink(PROBE, dest)


def _site(venv):
    from harness import site_packages
    return site_packages(venv)


def strip_polar_cloud(cfg):
    return SECTION.sub("", cfg)


class BenchPrinter:
    """One window's Klippy + Moonraker; kind is "module", "bare" or "bare2"."""

    def __init__(self, kind, cloud, state_dir, polar_options="",
                 files=(), python=None):
        self.kind = kind
        self.cloud = cloud
        extra = "state_dir: %s\n%s" % (state_dir, polar_options)
        kwargs = {} if python is None else {"python": python}
        self.h = PrinterHarness(cloud.url, polar_extra=extra, **kwargs)
        with open(self.h.printer_cfg) as f:
            cfg = f.read()
        if kind != "module":
            cfg = strip_polar_cloud(cfg)
            assert "[polar_cloud]" not in cfg
        with open(self.h.printer_cfg, "w") as f:
            f.write(cfg.rstrip("\n") + "\n\n[polar_bench_probe]\n")
        for path in files:
            _link(path, os.path.join(self.h.gcodes, os.path.basename(path)))
        self.pid = None
        self.serial = None
        self.offset = 0.

    @property
    def has_module(self):
        return self.kind == "module"

    def start(self, connect_timeout=90.):
        self.h.start()
        self.pid = klippy_pid(self.h)
        self.offset = self._clock_offset()
        if self.has_module:
            st = self.h.wait_polar(lambda s: s["connected"],
                                   timeout=connect_timeout,
                                   what="module connected")
            self.serial = st["serial"]
        return self

    def stop(self):
        self.h.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # --- Klippy API -------------------------------------------------------

    def call(self, method, params=None, timeout=None):
        return self.h.klippy.call(method, params, timeout=timeout)

    def gcode(self, script, timeout=None):
        return self.h.klippy.gcode(script, timeout=timeout)

    def probe_start(self, period=.001):
        return self.call("polar_bench_probe/start", {"period": period})["t"]

    def probe_report(self):
        return self.call("polar_bench_probe/report", timeout=30.)

    def _clock_offset(self, tries=7):
        """Reactor clock (CLOCK_MONOTONIC_RAW) minus time.monotonic(), from
        the quickest of a few round trips."""
        best = None
        for _ in range(tries):
            a = time.monotonic()
            now = self.call("polar_bench_probe/events", {"since": 1 << 30})
            b = time.monotonic()
            if best is None or b - a < best[0]:
                best = (b - a, now["now"] - (a + b) / 2.)
        return best[1]

    def to_bench(self, reactor_time):
        """A probe event time as time.monotonic() of this process."""
        return reactor_time - self.offset

    def events_since(self, since):
        r = self.call("polar_bench_probe/events", {"since": since})
        return r["events"], r["next"]

    def wait_event(self, since, kind, values=None, timeout=60.):
        """First probe event at index >= since of this kind (and one of
        these values); returns (event, next index).  Klippy waits for it,
        so watching costs one request in every window."""
        try:
            r = self.call("polar_bench_probe/wait",
                          {"since": since, "kind": kind, "values": values,
                           "timeout": timeout}, timeout=timeout + 10.)
        except Exception as e:
            raise TimeoutError("probe event not seen on %s: %s"
                               % (self.kind, e))
        return r["event"], r["next"]

    def events_next(self):
        return self.events_since(0)[1]


def klippy_pid(h):
    proc = getattr(h, "procs", {}).get("klippy")
    if proc is not None:
        return proc.pid
    for name in os.listdir("/proc"):       # harness without procs{}
        try:
            with open("/proc/%s/cmdline" % (name,), "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if h.printer_cfg.encode() in argv and b"klippy.klippy" in argv:
            return int(name)
    raise RuntimeError("Klippy process not found")


def _link(src, dest):
    try:
        os.link(src, dest)
    except OSError:
        import shutil
        shutil.copyfile(src, dest)
