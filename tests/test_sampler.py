"""PrinterSampler against stand-ins for Klipper's objects."""
from polarcloud.jobs import JobTracker
from polarcloud.reactor.sampler import PrinterSampler


class FakePrintStats:
    def __init__(self):
        self.state, self.filename = "standby", ""
        self.resets = 0

    def get_status(self, eventtime):
        return {"state": self.state, "filename": self.filename,
                "print_duration": 5., "total_duration": 6.,
                "filament_used": 10., "message": ""}

    def reset(self):
        self.resets += 1
        self.state, self.filename = "standby", ""


class FakeReactor:
    def monotonic(self):
        return 1.


class FakePrinter:
    def __init__(self):
        self.objects = {"print_stats": FakePrintStats()}
        self.handlers = {}

    def lookup_object(self, name, default=None):
        return self.objects.get(name, default)

    def register_event_handler(self, event, handler):
        self.handlers[event] = handler

    def get_reactor(self):
        return FakeReactor()

    def get_state_message(self):
        return "Printer is ready", "ready"


def test_a_job_ending_right_before_the_next_load_is_still_seen():
    """A print completes and the next file loads within one sample: the
    sample taken before print_stats' reset says how the first ended."""
    printer = FakePrinter()
    pushed = []
    sampler = PrinterSampler(printer)
    sampler.handle_ready(on_reset=pushed.append)
    sampler.handle_ready(on_reset=pushed.append)   # wrapped once only
    ps = printer.objects["print_stats"]
    tracker = JobTracker()
    tracker.update(sampler.changed(), 0.)
    ps.state, ps.filename = "printing", "a.gcode"
    tracker.update(sampler.changed(), 0.5)
    ps.state = "complete"
    ps.reset()                           # SDCARD_PRINT_FILE b.gcode
    printer.handlers["virtual_sdcard:reset_file"]()
    ps.state, ps.filename = "printing", "b.gcode"
    assert ps.resets == 1 and len(pushed) == 1
    for sample in pushed:
        tracker.update(sample, 0.7)
    tracker.update(sampler.changed(), 1.)
    assert [(e["jobId"], e["state"]) for e in tracker.events] == [
        ("123", "completed")]
    assert tracker.job["filename"] == "b.gcode"


def test_no_callback_leaves_print_stats_alone():
    printer = FakePrinter()
    ps = printer.objects["print_stats"]
    original = ps.reset
    PrinterSampler(printer).handle_ready()
    assert ps.reset == original
