"""Cloud commands on their way to the printer, bounded as a careful server
bounds its clients.

One batch at a time runs on Klippy's reactor (one callback, not one per
command); `pause`, `resume` and `cancel` go to the front and are never
refused.  Everything else passes a token bucket (a burst of BURST, then
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
        """run_batch(commands, done): hand [(event, data)] to the printer,
        done() when carried out; console(text): one line for the owner."""
        self.run_batch = run_batch
        self.console = console
        self.queue = []
        self.in_flight = False
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
        self.in_flight = False
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
        if self.in_flight or not self.queue:
            return
        batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
        self.in_flight = True
        self.run_batch(batch)

    def next_wakeup(self):
        """When the end of a refused burst should be told (None: no need)."""
        if not self.refused or self.refilled_at is None:
            return None
        return self.refilled_at + (BURST - self.tokens) / RATE
