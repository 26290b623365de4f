"""Cloud commands on their way to the printer, bounded as a careful server
bounds its clients.

One batch at a time runs on Klippy's reactor (one callback, not one per
command), and a routine batch waits there for the printer's next sample
(within 0.5 s) so a storm never wakes the reactor on its own.  `pause`,
`resume` and `cancel` go to the front, are never refused, and run at once:
an urgent batch may pass a routine one still waiting (the reactor runs the
waiting one first, so the order holds).  Everything else passes a token bucket (a burst of BURST, then
RATE a second); the excess is refused, counted, and told in one console
line when a burst starts and one when it is over (the bucket is full
again), never silently.
"""
import logging

from ..text import clean

log = logging.getLogger("polar_cloud")

BURST = 20
RATE = 2.             # commands per second once a burst is used up
MAX_QUEUED = BURST    # a queue longer than a burst waits on a busy printer
MAX_BATCH = 20
URGENT = ("pause", "resume", "cancel")


class CommandQueue:
    def __init__(self, run_batch, console):
        """run_batch(commands, urgent): hand [(event, data)] to the printer
        (at once when urgent, else with its next sample), then batch_done()
        when carried out; console(text): one line for the owner."""
        self.run_batch = run_batch
        self.console = console
        self.queue = []
        self.in_flight = []     # urgent or not, oldest first
        self.tokens = float(BURST)
        self.refilled_at = None
        self.refused = 0

    def add(self, event, data, now):
        self._refill(now)
        if event in URGENT:
            if not any(e == event for e, _d in self.queue):
                urgent = [c for c in self.queue if c[0] in URGENT]
                self.queue.insert(len(urgent), (event, data))
        elif self.tokens < 1. or len(self.queue) >= MAX_QUEUED:
            self._refuse(event)
        else:
            self.tokens -= 1.
            self.queue.append((event, data))
        self._pump()

    def batch_done(self):
        self.in_flight.pop(0)   # batches end in the order they were handed
        self._pump()

    def tick(self, now):
        self._refill(now)
        if self.tokens >= BURST:
            self._burst_over()

    def _refill(self, now):
        if self.refilled_at is not None:
            self.tokens = min(float(BURST), self.tokens
                              + (now - self.refilled_at) * RATE)
        self.refilled_at = now

    def _refuse(self, event):
        if not self.refused:
            self.console("Polar Cloud: more than %d commands at once from"
                         " the cloud; refusing the excess (%s, ...)"
                         % (BURST, clean(event, 40)))
        self.refused += 1

    def _burst_over(self):
        if self.refused:
            self.console("Polar Cloud: refused %d cloud commands in that"
                         " burst" % (self.refused,))
            self.refused = 0

    def _pump(self):
        if not self.queue:
            return
        urgent = self.queue[0][0] in URGENT
        if self.in_flight and not (urgent and self.in_flight == [False]):
            return
        batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
        self.in_flight.append(urgent)
        self.run_batch(batch, urgent)

    def next_wakeup(self):
        """When the end of a refused burst should be told (None: no need)."""
        if not self.refused or self.refilled_at is None:
            return None
        return self.refilled_at + (BURST - self.tokens) / RATE
