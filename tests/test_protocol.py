"""Pure protocol logic: status mapping, cadence, serial filter, backoff."""
import pytest

from polarcloud import protocol as P
from polarcloud.connection import Backoff
from polarcloud.jobs import JobTracker


def snap(klippy="ready", state="standby", **kw):
    s = {"klippy": klippy, "state": state, "filename": "a.gcode",
         "print_duration": 10., "total_duration": 12., "filament_used": 50.,
         "file_position": 500, "file_size": 1000, "file_loads": 1,
         "temps": {"tool0": (200.04, 200.), "bed": (60., 60.)}}
    s.update(kw)
    return s


CLOUD = {"id": "KL1-77", "cloud": True, "name": "a"}
LOCAL = {"id": "123", "cloud": False, "name": "a.gcode"}

MAPPING = [
    # (snapshot, job, expected code)
    (snap(klippy="startup", state=None), None, P.OFFLINE),
    (snap(klippy="shutdown", state=None), None, P.ERROR),
    (snap(klippy="error", state=None), None, P.ERROR),
    (snap(state="standby"), None, P.IDLE),
    (snap(state="complete"), None, P.IDLE),
    (snap(state="cancelled"), None, P.IDLE),
    (snap(state="error"), None, P.ERROR),
    (snap(state="printing"), LOCAL, P.SERIAL),
    (snap(state="printing"), CLOUD, P.PRINTING),
    (snap(state="printing", print_duration=0.), CLOUD, P.PREPARING),
    (snap(state="printing", print_duration=0.), LOCAL, P.PREPARING),
    (snap(state="paused"), CLOUD, P.PAUSED),
    (snap(state="paused"), LOCAL, P.PAUSED),
    (snap(state="standby"), dict(CLOUD, downloading=True), P.PREPARING),
    (snap(state="printing"), dict(CLOUD, cancelling=True), P.CANCELLING),
]


@pytest.mark.parametrize("s,job,code", MAPPING)
def test_status_mapping(s, job, code):
    assert P.base_code(s, job) == code


def test_status_fields_printing_cloud_job():
    st = P.build_status("KL000123", P.PRINTING, snap(state="printing"),
                        CLOUD, 1_700_000_000)
    assert st["status"] == 3 and st["jobId"] == "KL1-77"
    assert st["progressDetail"] == "Printing Job: a Percent Complete: 50.0%"
    assert st["printSeconds"] == 10 and st["bytesRead"] == 500
    assert st["fileSize"] == 1000 and st["filamentUsed"] == "50"
    assert st["estimatedTime"] == "20" and st["startTime"].endswith("Z")
    assert st["tool0"] == 200.0 and st["targetBed"] == 60.0
    assert "tool1" not in st     # absent heaters are not invented


def test_status_fields_idle():
    st = P.build_status("KL000123", P.IDLE, snap(), None, 0)
    assert st["jobId"] == "0" and st["progress"] == "Idle"
    assert st["printSeconds"] == 0 and st["estimatedTime"] == "0"


def test_cadence():
    c = P.StatusCadence()
    idle = P.build_status("S", 0, snap(temps={"bed": (20., 0.)}), None, 0)
    assert c.due(idle, 0.)
    c.sent(idle, 0.)
    assert not c.due(idle, 59.)
    assert c.due(idle, 60.)
    hot = dict(idle, targetBed=60.)
    assert c.due(hot, 1.)          # target change: at once
    c.sent(hot, 1.)
    assert not c.due(hot, 10.9) and c.due(hot, 11.)   # 10 s while hot
    warmer = dict(hot, bed=25.)
    assert not c.due(warmer, 3.) and c.due(warmer, 6.1)
    c.force()
    assert c.due(hot, 1.5)


SERIAL_CASES = [
    ("pause", {"serialNumber": "S1"}, True),
    ("pause", {"serialNumber": "S2"}, False),
    ("pause", {}, False),
    ("pause", "S1", False),
    ("print", {"serialNumber": None}, False),
    ("helloResponse", {"status": "SUCCESS"}, True),
    ("helloResponse", {"status": "SUCCESS", "serialNumber": "S2"}, False),
    ("delete", {}, True),
    ("delete", {"serialNumber": "S2"}, False),
    ("welcome", {"challenge": "x"}, True),
    ("registerResponse", {"status": "FAILED"}, True),
]


@pytest.mark.parametrize("event,data,ok", SERIAL_CASES)
def test_serial_filter(event, data, ok):
    assert P.accepts(event, data, "S1") is ok


def test_register_answers():
    assert P.register_serial({"status": "SUCCESS", "reason": "SUCCESS",
                              "serialNumber": " KL1 "}) == "KL1"
    assert P.register_serial("SUCCESS") is None
    assert P.register_serial({"status": "SUCCESS", "serialNumber": ""}) is None
    assert P.register_serial({"status": "FAILED", "serialNumber": "X"}) is None
    for reason in P.REGISTER_REASONS:
        msg = P.register_failure_message({"status": "FAILED",
                                          "reason": reason})
        assert msg and reason not in ("",)
    assert "WEIRD" in P.register_failure_message({"reason": "WEIRD"})


def test_backoff_bounds():
    for rand in (lambda: 0., lambda: 0.999999):
        b = Backoff(base=2., cap=60., rand=rand)
        delays = [b.next_delay() for _ in range(40)]
        assert all(1. <= d <= 60. for d in delays)
        assert delays[-1] >= 30.       # capped, never runaway, never tiny
        b.reset()
        assert b.next_delay() <= 2.


# --- job tracking -----------------------------------------------------

def run(tracker, states, t0=0.):
    for i, s in enumerate(states):
        tracker.update(s, t0 + i)


def codes_until_idle(tracker, s):
    out = []
    for _ in range(10):
        out.append(tracker.status_code(s))
        tracker.status_sent()
    return out


def test_local_job_completes_once():
    t = JobTracker()
    run(t, [snap(), snap(state="printing"), snap(state="printing"),
            snap(state="complete"), snap(state="complete")])
    events = t.take_events()
    assert [(e["jobId"], e["state"]) for e in events] == [("123", "completed")]
    assert events[0]["printSeconds"] == 10 and events[0]["bytesRead"] == 500
    assert codes_until_idle(t, snap(state="complete"))[0] == P.IDLE


def test_cloud_job_sequence_and_one_event():
    t = JobTracker()
    t.update(snap(), 0.)
    t.begin_download("KL1-9", "part", 0., 0.)
    assert t.status_code(snap()) == P.PREPARING
    t.download_done("polar_cloud/part.gcode", 1.)
    run(t, [snap(), snap(state="printing", filename="polar_cloud/part.gcode"),
            snap(state="complete", filename="polar_cloud/part.gcode")], 2.)
    assert [e["state"] for e in t.take_events()] == ["completed"]
    assert codes_until_idle(t, snap(state="complete")) == \
        [5, 5, 5, 7, 7, 7, 0, 0, 0, 0]


def test_fast_job_never_seen_printing():
    t = JobTracker()
    t.update(snap(file_loads=1), 0.)
    t.update(snap(state="complete", file_loads=2), 1.)
    assert [e["state"] for e in t.take_events()] == ["completed"]


def test_cancel_macro_to_standby_and_shutdown():
    t = JobTracker()
    run(t, [snap(), snap(state="printing"), snap(state="standby")])
    assert [e["state"] for e in t.take_events()] == ["canceled"]
    run(t, [snap(state="printing"), snap(klippy="shutdown", state=None)])
    assert [e["state"] for e in t.take_events()] == ["canceled"]


def test_restored_job_after_restart_is_cancelled_once():
    t = JobTracker(restored_job={"id": "KL1-5", "cloud": True,
                                 "filename": "polar_cloud/x.gcode"})
    t.update(snap(klippy="startup", state=None), 0.)
    assert t.take_events() == []
    t.update(snap(), 1.)
    t.update(snap(), 2.)
    events = t.take_events()
    assert [(e["jobId"], e["state"]) for e in events] == [("KL1-5",
                                                           "canceled")]
    assert codes_until_idle(t, snap())[:4] == [6, 6, 6, 0]


def test_failed_download_reports_error_once_then_idle():
    t = JobTracker()
    t.begin_download("KL1-3", "x", 0., 0.)
    t.cloud_job_failed()
    assert [(e["jobId"], e["state"]) for e in t.take_events()] == [
        ("KL1-3", "canceled")]
    assert codes_until_idle(t, snap())[:2] == [P.ERROR, P.IDLE]
