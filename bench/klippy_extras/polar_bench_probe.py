# Benchmark-only Klippy extra: measures how late reactor timers fire.
#
# [polar_bench_probe] asks for a timer every 1 ms and records how late each
# firing is; the webhooks endpoint polar_bench_probe/report returns the
# percentiles since the last reset and the process RSS.
import os


class PolarBenchProbe:
    def __init__(self, config):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.period = .001
        self.samples = []
        self.next_wake = None
        self.timer = self.reactor.register_timer(self._tick)
        self.printer.register_event_handler("klippy:ready", self._ready)
        webhooks = self.printer.lookup_object("webhooks")
        webhooks.register_endpoint("polar_bench_probe/report", self._report)

    def _ready(self):
        self.next_wake = self.reactor.monotonic() + self.period
        self.reactor.update_timer(self.timer, self.next_wake)

    def _tick(self, eventtime):
        self.samples.append(eventtime - self.next_wake)
        self.next_wake = eventtime + self.period
        return self.next_wake

    def _report(self, web_request):
        samples, self.samples = sorted(self.samples), []
        n = len(samples)

        def pct(p):
            return samples[min(n - 1, int(p * n))] * 1000. if n else 0.
        with open("/proc/%d/status" % (os.getpid(),)) as f:
            rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS")][0]
        web_request.send({"n": n, "p50_ms": pct(.5), "p99_ms": pct(.99),
                          "max_ms": samples[-1] * 1000. if n else 0.,
                          "rss_kb": rss})


def load_config(config):
    return PolarBenchProbe(config)
