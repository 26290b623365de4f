"""Capped exponential backoff (delays in seconds)."""
import random


class Backoff:
    """Delays double from `first` up to `cap`.

    With jitter ("equal jitter") each delay is between half and all of its
    ceiling, so many printers that lost the cloud together do not retry in
    step, and a retry is never tiny."""

    def __init__(self, first, cap, jitter=True, rand=random.random):
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self.rand = rand
        self.failures = 0

    def next_delay(self):
        ceiling = min(self.cap, self.first * (2 ** self.failures))
        self.failures = min(self.failures + 1, 30)
        if not self.jitter:
            return ceiling
        return ceiling / 2. + self.rand() * ceiling / 2.

    def reset(self):
        self.failures = 0
