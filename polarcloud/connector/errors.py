"""What went wrong, for the owner: the last error, each logged once.

During an outage the same failure repeats every retry; klippy.log gets it
once, then a count when it ends, so the log stays small for months.
"""
import logging

from ..text import clean

log = logging.getLogger("polar_cloud")
MAX_KINDS = 100


class ErrorLog:
    def __init__(self):
        self.last = None
        self.repeats = {}     # (key, message) -> times seen since logged

    def report(self, key, message, exc_info=False):
        message = clean(message, 300)
        self.last = message
        seen = (key, message)
        if seen in self.repeats:
            self.repeats[seen] += 1
            log.debug("polar_cloud: %s", message)
            return
        if len(self.repeats) >= MAX_KINDS:
            self.repeats.clear()
        self.repeats[seen] = 0
        log.info("polar_cloud: %s", message, exc_info=exc_info)

    def resolved(self):
        """Things work again: clear the last error, say how often it
        repeated."""
        for (_key, message), count in self.repeats.items():
            if count:
                log.info("polar_cloud: (%s: %d more times)", message, count)
        self.repeats.clear()
        self.last = None
