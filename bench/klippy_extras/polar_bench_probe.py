# Benchmark-only Klippy extra: how late do reactor timers fire?
#
# [polar_bench_probe] adds webhooks endpoints (never installed on a printer):
#   polar_bench_probe/start  {period}  start a timer that asks to fire every
#                            `period` s (default 1 ms); resets the counts
#   polar_bench_probe/report           end the counts: lateness percentiles,
#                            stalls, firings per second, the worst firings
#                            with their reactor (monotonic) and wall-clock
#                            times; the timer goes on watching print_stats
#                            (at 10 ms) until Klippy stops
#   polar_bench_probe/events {since}   print_stats state changes (seen by the
#                            timer) and SD file loads, with reactor times
#   polar_bench_probe/wait {since, kind, values, timeout}
#                            the first such event at index >= since, waited
#                            for in Klippy: one request per wait, the same in
#                            every window (a client polling /events wakes the
#                            reactor 20 times a second, and only where it
#                            waits rather than blocks in a G-code call)
#   polar_bench_probe/fetch {request}  run the module's download worker from
#                            a thread of Klippy's process, as the module
#                            does, and answer with its result
#                            (bench/download_io.py)
# The reactor's clock is CLOCK_MONOTONIC_RAW, not Python's time.monotonic():
# the benchmark converts with the offset it measures through "now".
import bisect
import gc
import heapq
import os
import sys
import threading
import time

STALL = .005


class PolarBenchProbe:
    def __init__(self, config):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.keep_worst = config.getint("worst", 25, minval=1)
        self.period = .001
        self.running = False     # counting lateness (else only watching)
        self.samples = []
        self.worst = []          # min-heap of (lateness, scheduled time)
        self.started = self.last = 0.
        self.wake = self.reactor.NEVER
        self.events = []         # [reactor time, kind, value]
        self.waiters = []        # [since, kind, values, completion]
        self.print_stats = None
        self.state = None
        self.timer = self.reactor.register_timer(self._tick)
        # Python's cyclic GC pauses whichever thread allocates, the reactor
        # included: count them per generation (count, total s, max s)
        self.gc_pauses = {}
        self.gc_began = None
        self.wakeups = {}
        gc.callbacks.append(self._gc_phase)
        # every callback handed over from another thread wakes the reactor
        # (its pipe), and after any wake-up it sleeps at least 1 ms: count
        self.async_callbacks = 0
        original = self.reactor.register_async_callback

        def counted(*args, **kwargs):
            self.async_callbacks += 1
            return original(*args, **kwargs)
        self.reactor.register_async_callback = counted
        self.printer.register_event_handler("klippy:ready", self._ready)
        self.printer.register_event_handler("virtual_sdcard:reset_file",
                                            self._file_reset)
        webhooks = self.printer.lookup_object("webhooks")
        webhooks.register_endpoint("polar_bench_probe/start", self._start)
        webhooks.register_endpoint("polar_bench_probe/report", self._report)
        webhooks.register_endpoint("polar_bench_probe/events", self._events)
        webhooks.register_endpoint("polar_bench_probe/wait", self._wait)
        webhooks.register_endpoint("polar_bench_probe/fetch", self._fetch)

    def _gc_phase(self, phase, info):
        if phase == "start":
            self.gc_began = time.perf_counter()
        elif self.gc_began is not None and self.running:
            took = time.perf_counter() - self.gc_began
            c = self.gc_pauses.setdefault(info["generation"], [0, 0., 0.])
            c[0] += 1
            c[1] += took
            c[2] = max(c[2], took)

    def _ready(self):
        self.print_stats = self.printer.lookup_object("print_stats", None)

    def _file_reset(self):
        self._event(self.reactor.monotonic(), "sd_reset", None)

    def _event(self, now, kind, value):
        self.events.append([now, kind, value])
        for waiter in self.waiters:
            found = self._find(*waiter[:3])
            if found is not None:
                waiter[3].complete(found)

    def _find(self, since, kind, values):
        for i in range(since, len(self.events)):
            ev = self.events[i]
            if ev[1] == kind and (values is None or ev[2] in values):
                return i
        return None

    def _tick(self, eventtime):
        # the reactor's eventtime is taken before earlier timers in the same
        # pass ran: read the clock again for the true lateness
        now = self.reactor.monotonic()
        if self.running:
            late = now - self.wake
            self.samples.append(late)
            if len(self.worst) < self.keep_worst:
                heapq.heappush(self.worst, (late, self.wake))
            elif late > self.worst[0][0]:
                heapq.heappushpop(self.worst, (late, self.wake))
            self.last = now
        if self.print_stats is not None:
            state = self.print_stats.get_status(now)["state"]
            if state != self.state:
                self.state = state
                self._event(now, "state", state)
        self.wake = now + (self.period if self.running else .01)
        return self.wake

    def _count_wakeups(self):
        """Count, by name, the fd handlers and timers run from now on
        (timers registered later, such as hand-overs, are not wrapped:
        async_callbacks counts those)."""
        self.wakeups = counts = {}

        def counted(kind, callback):
            callback = _unwrapped(callback)     # counted by an earlier start
            name = "%s %s" % (kind, getattr(callback, "__qualname__",
                                            type(callback).__name__))

            def run(eventtime):
                counts[name] = counts.get(name, 0) + 1
                return callback(eventtime)
            run.polar_bench_inner = callback
            return run
        for handler in list(getattr(self.reactor, "_fds", {}).values()):
            if getattr(handler, "read_callback", None) is not None:
                handler.read_callback = counted("fd", handler.read_callback)
        for timer in list(self.reactor._timers):
            if timer is not self.timer:
                timer.callback = counted("timer", timer.callback)

    def _start(self, web_request):
        self.period = float(web_request.get("period", .001))
        self._count_wakeups()
        self.samples = []
        self.worst = []
        self.gc_pauses = {}
        self.async_callbacks = 0
        self.running = True
        self.started = self.last = now = self.reactor.monotonic()
        self.wake = now + self.period
        self.reactor.update_timer(self.timer, self.wake)
        web_request.send({"t": now})

    def _report(self, web_request):
        running, self.running = self.running, False
        samples, self.samples = sorted(self.samples), []
        n = len(samples)
        seconds = self.last - self.started if running else 0.

        def pct(p):
            return samples[min(n - 1, int(p * n))] * 1000. if n else 0.
        now = self.reactor.monotonic()
        wall = time.time() - now
        worst = [{"late_ms": round(late * 1000., 3), "t": at,
                  "wall": at + wall}
                 for late, at in sorted(self.worst, reverse=True)]
        web_request.send({
            "n": n, "seconds": seconds, "t0": self.started,
            "firings_per_s": n / seconds if seconds > 0. else 0.,
            "p50_ms": pct(.5), "p99_ms": pct(.99), "p999_ms": pct(.999),
            "max_ms": samples[-1] * 1000. if n else 0.,
            "stalls_5ms": n - bisect.bisect_right(samples, STALL),
            # one wake-up of the reactor (a request, a hand-over) makes the
            # next firing late by up to its period: these count them
            "over_0_5ms": n - bisect.bisect_right(samples, .0005),
            "gc": {str(g): {"count": c, "total_ms": round(t * 1000., 2),
                            "max_ms": round(m * 1000., 2)}
                   for g, (c, t, m) in sorted(self.gc_pauses.items())},
            "async_callbacks": self.async_callbacks,
            "wakeups": dict(sorted(self.wakeups.items())),
            "worst": worst, "rss_kb": _vm("VmRSS"), "hwm_kb": _vm("VmHWM")})

    def _events(self, web_request):
        since = int(web_request.get("since", 0))
        web_request.send({"events": self.events[since:],
                          "next": len(self.events),
                          "now": self.reactor.monotonic()})

    def _wait(self, web_request):
        since = int(web_request.get("since", 0))
        kind = web_request.get_str("kind")
        values = web_request.get("values", None)
        timeout = float(web_request.get("timeout", 60.))
        found = self._find(since, kind, values)
        if found is None:
            waiter = [since, kind, values, self.reactor.completion()]
            self.waiters.append(waiter)
            try:
                found = waiter[3].wait(self.reactor.monotonic() + timeout)
            finally:
                self.waiters.remove(waiter)
        if found is None:
            raise web_request.error("no %s event %r in %.0f s"
                                    % (kind, values, timeout))
        web_request.send({"event": self.events[found], "next": found + 1})

    def _fetch(self, web_request):
        request = web_request.get_dict("request")
        completion = self.reactor.completion()

        def run():
            # imported here: bare windows of ab_bench never load it
            if ROOT not in sys.path:
                sys.path.append(ROOT)
            from polarcloud.connector.runner import ChildError, ChildProcess
            child = ChildProcess("download", request, silence=40.,
                                 on_message=lambda message: None)
            try:
                result = child.run()
            except ChildError as e:
                result = {"error": str(e)}
            self.reactor.async_complete(completion, result)
        threading.Thread(target=run, daemon=True).start()
        result = completion.wait(self.reactor.monotonic() + 120.)
        if not result or "error" in result:
            raise web_request.error("fetch failed: %r" % (result,))
        web_request.send(result)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__))))


def _unwrapped(callback):
    return getattr(callback, "polar_bench_inner", callback)


def _vm(key):
    with open("/proc/%d/status" % (os.getpid(),)) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def load_config(config):
    return PolarBenchProbe(config)
