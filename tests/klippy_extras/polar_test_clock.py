# Test-only Klippy extra (never installed on a printer).
#
# In file-output mode Klippy's fake MCU clock stands still, so prints finish
# instantly.  [polar_test_clock] makes the fake clock follow the host's
# monotonic clock so prints take real time and can be paused mid-way, and
# gives heaters a toy thermal model so temperatures move toward targets.
import logging


class PolarTestClock:
    def __init__(self, config):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.realtime = config.getboolean("realtime", True)
        self.fake_temps = config.getboolean("fake_temps", True)
        self.toolhead = None
        self.offset = 0.
        self.temps = {}
        self.printer.register_event_handler("klippy:mcu_identify",
                                            self._identify)
        self.printer.register_event_handler("klippy:ready", self._ready)
        self.printer.register_event_handler("homing:homing_move_begin",
                                            self._homing_begin)
        self.printer.register_event_handler("homing:homing_move_end",
                                            self._homing_end)

    def _file_mode(self):
        return self.printer.get_start_args().get("debugoutput") is not None

    def _identify(self):
        self.offset = self.reactor.monotonic()
        if not (self.realtime and self._file_mode()):
            return
        for _name, mcu in self.printer.lookup_objects(module="mcu"):
            mcu.estimated_print_time = self._print_time
        self.toolhead = self.printer.lookup_object("toolhead")
        self.toolhead.can_pause = True
        logging.info("polar_test_clock: real-time fake MCU clock")

    def _print_time(self, eventtime):
        return eventtime - self.offset

    def _homing_begin(self, hmove):
        if self.toolhead is not None:
            self.toolhead.can_pause = False

    def _homing_end(self, hmove):
        if self.toolhead is None:
            return
        self.toolhead.can_pause = True
        # fake endstops "trigger" only at the end of the full homing move:
        # jump the clock forward instead of waiting for it
        behind = self.toolhead.print_time - self._print_time(
            self.reactor.monotonic())
        if behind > 0.:
            self.offset -= behind

    def _ready(self):
        if self.fake_temps and self._file_mode():
            self.heaters = self.printer.lookup_object("heaters")
            self.reactor.register_timer(self._heat, self.reactor.NOW)

    def _heat(self, eventtime):
        names = self.heaters.get_status(eventtime)["available_heaters"]
        for name in names:
            heater = self.heaters.lookup_heater(name.split()[-1])
            goal = max(25., heater.get_temp(eventtime)[1])
            temp = self.temps.get(name, 25.)
            temp += (goal - temp) * 0.5
            if abs(goal - temp) < 0.5:
                temp = goal
            self.temps[name] = temp
            heater.temperature_callback(eventtime - self.offset, temp)
        return eventtime + 0.3


def load_config(config):
    return PolarTestClock(config)
