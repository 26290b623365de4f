"""Options that need their own Klippy: G-code from the cloud switched off,
an explicit macro list; plus connectPrinter after an emergency stop."""
import time

import pytest

from conftest import EMAIL, PIN
from harness import PrinterHarness

OPTIONS = "allow_gcode_commands: False\ncustom_commands: PARK_AND_BEEP"


@pytest.fixture(scope="module")
def locked(cloud, installed, printer):
    # Printers on one host share a MAC, hence a serial: take the session
    # printer offline so cloud commands reach only this one.
    printer.klippy.gcode("POLAR_UNREGISTER FORCE=1")
    cloud.start()
    with PrinterHarness(cloud.url, polar_extra=OPTIONS) as h:
        mark = cloud.mark()
        status, body = h.http("POST", "/server/polar/register",
                              {"email": EMAIL, "pin": PIN}, timeout=120)
        assert status == 200, body
        h.serial = body["result"]["serial"]
        h.wait_polar(lambda s: s["connected"], what="online")
        h.command_list = cloud.wait_for(
            "customCommandList", lambda d: d["serialNumber"] == h.serial,
            start=mark).data["commandList"]
        h.version = cloud.wait_for(
            "setVersion", lambda d: d["serialNumber"] == h.serial,
            start=mark).data
        yield h


def test_gcode_from_cloud_refused_when_disabled(locked, cloud):
    start = len(locked.klippy.output)
    cloud.emit("command", {"serialNumber": locked.serial,
                           "command": "M140 S50"}, serial=locked.serial)
    line = locked.klippy.wait_output(lambda l: "command refused" in l,
                                     start=start)
    assert "allow_gcode_commands" in line
    assert locked.klippy.query(heater_bed=["target"])[
        "heater_bed"]["target"] == 0.


def test_configured_macro_list_and_versions(locked, cloud):
    assert locked.command_list == [{"label": "PARK_AND_BEEP",
                                    "command": "PARK_AND_BEEP"}]
    assert locked.version["runningVersion"]
    cloud.emit("customCommand", {"serialNumber": locked.serial,
                                 "command": "PARK_AND_BEEP"},
               serial=locked.serial)
    time.sleep(1.)
    status = locked.klippy.query(display_status=["message"])
    assert status["display_status"]["message"] == "parked"


def test_update_without_update_manager_entry_is_ignored(locked, cloud):
    mark = cloud.mark()
    cloud.emit("update", {"serialNumber": locked.serial},
               serial=locked.serial)
    time.sleep(2.5)
    codes = [r.data["status"] for r in cloud.events[mark:]
             if r.event == "status"]
    assert 8 not in codes
    assert locked.polar_status()["connected"]


def test_connect_printer_after_emergency_stop(locked, cloud):
    mark = cloud.mark()
    try:
        locked.klippy.gcode("M112", timeout=3)
    except Exception:
        pass
    cloud.wait_for("status", lambda d: d["status"] == 12, start=mark,
                   timeout=15)
    # the shutdown dumped recent API requests into klippy.log: the
    # registration (PIN and email) must not be among them
    # Klippy's log thread may write the dump after the cloud has the 12
    deadline = time.monotonic() + 15
    log = ""
    while time.monotonic() < deadline:
        time.sleep(0.3)
        before, log = log, locked.log_text()
        if "Dumping" in log and log == before:
            break           # the whole dump is written
    assert "Dumping" in log
    assert EMAIL not in log and '"pin"' not in log
    mark = cloud.mark()
    cloud.emit("connectPrinter", {"serialNumber": locked.serial},
               serial=locked.serial)
    time.sleep(0.5)
    locked.wait_klippy()
    locked.wait_moonraker()
    cloud.wait_for("status", lambda d: d["status"] == 0, start=mark,
                   timeout=30)


def test_shim_answers_503_without_klippy(locked, cloud):
    locked.klippy.close()
    locked.procs["klippy"].kill()
    locked.procs["klippy"].wait()
    time.sleep(0.5)
    status, body = locked.http("GET", "/server/polar/status")
    assert status == 503 and "Klippy" in body["error"]["message"]
    status, body = locked.http("POST", "/server/polar/register",
                               {"email": EMAIL, "pin": PIN})
    assert status == 503
