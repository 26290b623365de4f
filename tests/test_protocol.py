"""Pure protocol logic: status mapping, cadence, serial filter, backoff."""
import pytest

from polarcloud import protocol as P
from polarcloud import status as S
from polarcloud.backoff import Backoff


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
    assert S.base_code(s, job) == code


def test_status_fields_printing_cloud_job():
    st = S.build_status("KL000123", P.PRINTING, snap(state="printing"),
                        dict(CLOUD, print_start_epoch=1_700_000_000.4),
                        1_700_000_012)
    assert st["status"] == 3 and st["jobId"] == "KL1-77"
    assert st["progressDetail"] == "Printing Job: a Percent Complete: 50.0%"
    assert st["printSeconds"] == 10 and st["bytesRead"] == 500
    assert st["fileSize"] == 1000 and st["filamentUsed"] == "50"
    assert st["estimatedTime"] == "20"
    assert st["startTime"] == "2023-11-14T22:13:20Z"
    assert st["tool0"] == 200.0 and st["targetBed"] == 60.0
    assert "tool1" not in st     # absent heaters are not invented


def test_status_fields_idle():
    st = S.build_status("KL000123", P.IDLE, snap(), None, 0)
    assert st["jobId"] == "0" and st["progress"] == "Idle"
    assert st["printSeconds"] == 0 and st["estimatedTime"] == "0"


def test_cadence():
    c = S.StatusCadence()
    idle = S.build_status("S", 0, snap(temps={"bed": (20., 0.)}), None, 0)
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
    assert c.due(hot, 2.5)


def test_cadence_coalesces_what_comes_within_the_gap():
    c = S.StatusCadence()
    idle = S.build_status("S", 0, snap(temps={"bed": (20., 0.)}), None, 0)
    c.sent(idle, 0.)
    for i in range(100):            # a command burst: each forces a status
        c.force()
        assert not c.due(dict(idle, targetBed=float(i)), 0.004 * i)
    assert c.next_due(idle) == S.MIN_GAP      # the loop wakes for it...
    assert c.due(dict(idle, targetBed=99.), S.MIN_GAP)   # ...and sends one


SERIAL_CASES = [
    (P.SERIAL_REQUIRED, {"serialNumber": "S1"}, True),
    (P.SERIAL_REQUIRED, {"serialNumber": "S2"}, False),
    (P.SERIAL_REQUIRED, {}, False),
    (P.SERIAL_REQUIRED, "S1", False),
    (P.SERIAL_REQUIRED, {"serialNumber": None}, False),
    (P.SERIAL_OPTIONAL, {"status": "SUCCESS"}, True),
    (P.SERIAL_OPTIONAL, {"status": "SUCCESS", "serialNumber": "S2"}, False),
    (P.SERIAL_OPTIONAL, {}, True),
    (P.SERIAL_OPTIONAL, "S1", False),
    (P.NO_SERIAL, {"challenge": "x"}, True),
    (P.NO_SERIAL, "FAILED", True),
]


@pytest.mark.parametrize("rule,data,ok", SERIAL_CASES)
def test_serial_filter(rule, data, ok):
    assert P.serial_ok(rule, data, "S1") is ok


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
        b = Backoff(2., 60., rand=rand)
        delays = [b.next_delay() for _ in range(40)]
        assert all(1. <= d <= 60. for d in delays)
        assert delays[-1] >= 30.       # capped, never runaway, never tiny
        b.reset()
        assert b.next_delay() <= 2.
