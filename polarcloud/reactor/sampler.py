"""Printer samples: the plain dict of printer state the connector works
from, read from Klipper's objects on the reactor.

A sample is pushed to the connector when it changes (temperatures in
TEMP_STEP steps), so an idle printer costs the connector nothing.
"""
import logging
import time

from ..printer import ACTIVE_PRINT_STATES, HEATERS

TEMP_STEP = 0.5     # finer than the 1 C a status cares about


class PrinterSampler:
    def __init__(self, printer):
        self.printer = printer
        self.reactor = printer.get_reactor()
        self.print_stats = self.sdcard = None
        self.heaters = []
        self.file_loads = 0
        self.last = None
        printer.register_event_handler("virtual_sdcard:reset_file",
                                       self._handle_file_load)

    def handle_ready(self, on_reset=None):
        """on_reset(sample or None): called with a sample taken just
        before print_stats is reset (see _watch_resets)."""
        printer = self.printer
        self.print_stats = printer.lookup_object("print_stats", None)
        self._watch_resets(on_reset)
        self.sdcard = printer.lookup_object("virtual_sdcard", None)
        pheaters = printer.lookup_object("heaters", None)
        self.heaters = []
        if pheaters is not None:
            names = [n.split()[-1] for n in pheaters.get_status(
                self.reactor.monotonic())["available_heaters"]]
            for key, name, _target in HEATERS:
                if name in names:
                    self.heaters.append((key, pheaters.lookup_heater(name)))

    def _watch_resets(self, on_reset):
        # Every file load resets print_stats first, before any event we
        # could handle: a job that ends and the next that starts within
        # one sample interval (a queue, a macro) would show only as
        # "printing, another file", and the end would be lost.  A sample
        # taken just before the reset keeps how the previous job ended.
        ps = self.print_stats
        if ps is None or on_reset is None \
                or getattr(ps.reset, "polar_cloud_watched", False):
            return
        original = ps.reset

        def reset(*args, **kwargs):
            try:
                on_reset(self.changed())
            except Exception:
                logging.exception("polar_cloud: sample before a reset")
            return original(*args, **kwargs)
        reset.polar_cloud_watched = True
        ps.reset = reset

    def _handle_file_load(self):
        # counts file loads, so a job that starts and ends between two
        # samples is still seen (see jobs.py)
        self.file_loads += 1

    def sample(self):
        # The reactor's now, never a timer's eventtime: that is when the
        # pass over the timers began, and a long callback before ours makes
        # it stale (seen 3.3 s under CPU starvation), so print_stats would
        # report durations that go back and a start time that is late.
        eventtime = self.reactor.monotonic()
        msg, state = self.printer.get_state_message()
        sample = {"klippy": state, "file_loads": self.file_loads,
                  "message": msg.strip() if state != "ready" else None}
        if state == "ready" and self.print_stats is not None:
            ps = self.print_stats.get_status(eventtime)
            sample.update(state=ps["state"], filename=ps["filename"],
                          print_duration=ps["print_duration"],
                          total_duration=ps["total_duration"],
                          filament_used=ps["filament_used"],
                          message=ps.get("message") or None)
            if ps["state"] in ACTIVE_PRINT_STATES:
                # wall clock and print_stats at one instant: the connector
                # may build a status from this sample much later
                sample["start_epoch"] = time.time() - ps["total_duration"]
            if self.sdcard is not None:
                sd = self.sdcard.get_status(eventtime)
                sample.update(file_position=sd["file_position"],
                              file_size=sd["file_size"])
        sample["temps"] = {key: heater.get_temp(eventtime)
                           for key, heater in self.heaters}
        return sample

    def changed(self):
        """A new sample if it differs from the last one taken, else None."""
        sample = self.sample()
        if self.last is not None and _same(sample, self.last):
            return None
        self.last = sample
        return sample

    def fresh(self):
        self.last = self.sample()
        return self.last


def _same(a, b):
    if a.keys() != b.keys():
        return False
    for key in a:
        if key == "temps":
            ta, tb = a["temps"], b["temps"]
            if ta.keys() != tb.keys() or any(
                    ta[k][1] != tb[k][1]
                    or abs(ta[k][0] - tb[k][0]) >= TEMP_STEP for k in ta):
                return False
        elif a[key] != b[key]:
            return False
    return True
