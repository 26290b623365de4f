"""Remote control end to end: cloud prints and commands on a real Klippy."""
import os
import time

import pytest

from conftest import gcode_file, wait_until
from polarcloud.connector import command_queue as Q


def cloud_files(printer, hidden=False):
    """Files in gcodes/polar_cloud (Moonraker keeps .thumbs there too)."""
    folder = os.path.join(printer.gcodes, "polar_cloud")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [n for n in names if hidden == n.startswith(".")
            and n != ".thumbs"]


def statuses(cloud, serial, start):
    return [r.data for r in cloud.events[start:]
            if r.event == "status" and r.data.get("serialNumber") == serial]


def job_events(cloud, start, job_id=None):
    return [r.data for r in cloud.events[start:] if r.event == "job"
            and (job_id is None or r.data.get("jobId") == job_id)]


def start_long_print(printer, cloud, serial, job_id, name, moves=400):
    """A cloud print that stays printing for a while; returns (url, mark)."""
    url = cloud.serve_file(name + ".gcode",
                           gcode_file(moves=moves, feed=3000))
    mark = cloud.mark()
    cloud.emit("print", {"serialNumber": serial, "jobId": job_id,
                         "jobName": name, "gcodeFile": url}, serial=serial)
    printer.wait_print_state(["printing"], timeout=30)
    return url, mark


def wait_idle(printer, cloud, serial, timeout=30):
    """Back to standby and status 0 after a job (tests run back to back)."""
    mark = cloud.mark()
    cloud.wait_for("status", lambda d: d["status"] == 0, start=mark,
                   timeout=timeout)


def test_cloud_print_completes(online, printer, cloud):
    serial = online
    url = cloud.serve_file("cube.gcode", gcode_file(moves=40))
    mark = cloud.mark()
    cloud.emit("print", {"serialNumber": serial, "jobId": "KL1-1001",
                         "jobName": "Cube v2", "gcodeFile": url,
                         "fileToPrint": "gcodeFile"}, serial=serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-1001", start=mark,
                   timeout=60)
    cloud.wait_for("status", lambda d: d["status"] == 0, start=cloud.mark(),
                   timeout=30)
    time.sleep(1.5)
    jobs = job_events(cloud, mark, "KL1-1001")
    assert len(jobs) == 1 and jobs[0]["state"] == "completed"
    assert jobs[0]["printSeconds"] > 0 and jobs[0]["fileSize"] > 0
    assert jobs[0]["filamentUsed"] >= 1
    assert cloud_files(printer) == ["Cube_v2_cloud_KL1-1001.gcode"]
    codes = [s["status"] for s in statuses(cloud, serial, mark)]
    # (2 while downloading/heating: coalesced away when that takes less
    # than the gap between two statuses) -> 3 printing -> 5,5,5,7,7,7 -> 0
    assert 3 in codes
    first3 = codes.index(3)
    assert 2 not in codes[first3:]
    tail = [c for c in codes[first3:] if c != 3]
    assert tail[:7] == [5, 5, 5, 7, 7, 7, 0], codes
    ids = [s["jobId"] for s in statuses(cloud, serial, mark)
           if s["status"] in (2, 3, 5, 7)]
    assert set(ids) == {"KL1-1001"}


def test_cloud_pause_resume_cancel(online, printer, cloud):
    pause_resume_cancel(printer, cloud, online, "KL1-1002")


def pause_resume_cancel(printer, cloud, serial, job_id):
    """A long cloud print paused, resumed and cancelled from the cloud:
    status 4 while paused, exactly one `canceled` job event."""
    _url, mark = start_long_print(printer, cloud, serial, job_id, "long",
                                  moves=600)
    cloud.emit("pause", {"serialNumber": serial}, serial=serial)
    printer.wait_print_state(["paused"])
    cloud.wait_for("status", lambda d: d["status"] == 4, start=mark)
    cloud.emit("resume", {"serialNumber": serial}, serial=serial)
    printer.wait_print_state(["printing"])
    cloud.emit("cancel", {"serialNumber": serial}, serial=serial)
    printer.wait_print_state(["cancelled", "standby"])
    cloud.wait_for("job", lambda d: d["jobId"] == job_id, start=mark)
    wait_idle(printer, cloud, serial)
    jobs = job_events(cloud, mark, job_id)
    assert [j["state"] for j in jobs] == ["canceled"]


def test_commands_from_wrong_serial_are_ignored(online, printer, cloud):
    serial = online
    printer.klippy.gcode("M140 S0")
    cloud.emit("temperature", {"serialNumber": "KL999999", "bed": 50},
               serial=serial)
    cloud.emit("temperature", {"bed": 50}, serial=serial)
    time.sleep(1.5)
    assert printer.klippy.query(heater_bed=["target"])[
        "heater_bed"]["target"] == 0.


def test_temperature_sets_known_heaters_and_ignores_the_rest(online, printer,
                                                             cloud):
    """{"bed": .., "tool1": ..} on a one-extruder printer, or with a jobId,
    sets the bed (both production clients ignore what they do not know)."""
    serial = online
    mark = cloud.mark()
    cloud.emit("temperature", {"serialNumber": serial, "bed": 35,
                               "tool1": 0, "jobId": "0"}, serial=serial)
    cloud.wait_for("status", lambda d: d.get("targetBed") == 35.0,
                   start=mark, timeout=10)
    printer.klippy.gcode("M140 S0")


@pytest.mark.parametrize("payload,why", [
    ({"bed": 500}, "outside"),
    ({"tool7": 200}, "no heater of this printer"),
    ({"bed": "hot"}, "must be a number"),
])
def test_temperature_refusals(online, printer, cloud, payload, why):
    serial = online
    start = len(printer.klippy.output)
    cloud.emit("temperature", dict(payload, serialNumber=serial),
               serial=serial)
    line = printer.klippy.wait_output(lambda l: "temperature refused" in l,
                                      start=start)
    assert why in line
    assert printer.klippy.query(heater_bed=["target"])[
        "heater_bed"]["target"] == 0.


def test_temperature_and_gcode_and_macros(online, printer, cloud):
    serial = online
    lists = [r.data for r in cloud.events if r.event == "customCommandList"
             and r.data.get("serialNumber") == serial]
    offered = [c["command"] for c in lists[-1]["commandList"]]
    assert sorted(offered) == ["PARK_AND_BEEP"]   # no _HIDDEN_HELPER
    mark = cloud.mark()
    cloud.emit("temperature", {"serialNumber": serial, "tool0": "180",
                               "bed": 55}, serial=serial)
    cloud.wait_for("status", lambda d: d.get("targetBed") == 55.0
                   and d.get("targetTool0") == 180.0, start=mark, timeout=5)
    start = len(printer.klippy.output)
    cloud.emit("customCommand", {"serialNumber": serial,
                                 "command": "_HIDDEN_HELPER"}, serial=serial)
    printer.klippy.wait_output(lambda l: "customCommand refused" in l,
                               start=start)
    cloud.emit("command", {"serialNumber": serial,
                           "command": "M140 S0\nM104 S0"}, serial=serial)
    cloud.wait_for("status", lambda d: d.get("targetBed") == 0.0
                   and d.get("targetTool0") == 0.0, start=mark, timeout=5)


def test_commands_that_change_nothing_cost_no_status(online, printer,
                                                    cloud):
    """A command's effect is reported at once; commands that change
    nothing the cloud sees (M105) send no status (the idle heartbeat is a
    minute away)."""
    serial = online
    printer.klippy.gcode("M140 S0\nM104 S0")

    def cold():
        temps = printer.klippy.query(extruder=["temperature"],
                                     heater_bed=["temperature"])
        return all(t["temperature"] == 25. for t in temps.values())
    # cooling would send a status every 5 s (the toy thermal model settles
    # on 25 C exactly)
    wait_until(cold, timeout=60, what="heaters at 25 C")
    time.sleep(1.)          # statuses for earlier changes are out
    mark = cloud.mark()
    start = len(printer.klippy.output)
    for _ in range(5):
        cloud.emit("command", {"serialNumber": serial, "command": "M105"},
                   serial=serial)
    wait_until(lambda: len([l for l in printer.klippy.output[start:]
                            if "B:" in l]) == 5, what="5 M105 answers")
    time.sleep(1.5)         # a status would follow within 0.5 s + a sample
    assert statuses(cloud, serial, mark) == []
    cloud.emit("command", {"serialNumber": serial, "command": "M140 S7"},
               serial=serial)
    cloud.wait_for("status", lambda d: d.get("targetBed") == 7.0,
                   start=mark, timeout=3)
    printer.klippy.gcode("M140 S0")
    # while printing (every sample differs in its durations) the commands
    # still run, and the statuses that go (this printer's 1 s heartbeat)
    # all give the job one start time
    _url, mark = start_long_print(printer, cloud, serial, "KL1-1006", "noop",
                                  moves=600)
    # Klipper printing is seen at the next sample (later on a starved
    # machine); until then the job shows preparing, without a start time
    cloud.wait_for("status", lambda d: d.get("status") == 3, start=mark,
                   timeout=10)
    mark = cloud.mark()
    start = len(printer.klippy.output)
    for _ in range(10):
        cloud.emit("command", {"serialNumber": serial, "command": "M105"},
                   serial=serial)
        time.sleep(0.3)
    wait_until(lambda: len([l for l in printer.klippy.output[start:]
                            if "B:" in l]) == 10, what="10 M105 answers")
    seen = statuses(cloud, serial, mark)
    printing = [s for s in seen if s["status"] == 3]
    starts = {s["startTime"] for s in printing}
    assert printing and len(starts) == 1 and "0" not in starts, [
        (s["status"], s["jobId"], s["startTime"]) for s in seen]
    cloud.emit("cancel", {"serialNumber": serial}, serial=serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-1006", start=mark)
    wait_idle(printer, cloud, serial)


def test_jog_refused_while_printing(online, printer, cloud):
    serial = online
    url, mark = start_long_print(printer, cloud, serial, "KL1-1003", "jog")
    start = len(printer.klippy.output)
    cloud.emit("jogPrinter", {"serialNumber": serial, "jogPrinter": {
        "command": "jog", "x": 10}}, serial=serial)
    printer.klippy.wait_output(lambda l: "jogPrinter refused" in l,
                               start=start)
    # a second print while printing is refused and reported cancelled
    cloud.emit("print", {"serialNumber": serial, "jobId": "KL1-1004",
                         "jobName": "other", "gcodeFile": url},
               serial=serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-1004", start=mark)
    cloud.emit("cancel", {"serialNumber": serial}, serial=serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-1003", start=mark)
    wait_idle(printer, cloud, serial)
    assert [j["state"] for j in job_events(cloud, mark)] == [
        "canceled", "canceled"]
    assert "other_cloud_KL1-1004.gcode" not in cloud_files(printer)


def test_a_storm_of_1000_commands_is_bounded_and_a_pause_still_runs(
        online, printer, cloud):
    """1000 cloud commands at once during a print, a pause in the middle:
    a burst of them runs (routine batches wait for the printer's next
    sample), the rest is refused and told in one console line when it
    starts and one when it is over, the pause passes whatever waits,
    Klippy stays ready and the cloud's status tells the truth."""
    serial = online
    _url, mark = start_long_print(printer, cloud, serial, "KL1-1005",
                                  "storm", moves=600)
    start = len(printer.klippy.output)
    storm = [("command", ({"serialNumber": serial,
                           "command": "M140 S%d" % (i + 1)},))
             for i in range(1000)]
    storm.insert(500, ("pause", ({"serialNumber": serial},)))
    cloud.emit_many(storm, serial=serial)
    printer.wait_print_state(["paused"])
    cloud.wait_for("status", lambda d: d["status"] == 4, start=mark)
    over = printer.klippy.wait_output(
        lambda l: "cloud commands in that burst" in l, start=start,
        timeout=Q.BURST / Q.RATE + 20)
    refused = int(over.split("refused ")[1].split()[0])
    assert Q.BURST <= 1000 - refused < 1000 / 2
    said = [l for l in printer.klippy.output[start:] if "Polar Cloud:" in l
            and "command" in l]
    assert len(said) == 2 and "refusing the excess" in said[0], said
    assert printer.klippy.call("info")["state"] == "ready"
    target = printer.klippy.query(heater_bed=["target"])["heater_bed"][
        "target"]
    assert target >= Q.BURST           # the burst ran, in order
    cloud.wait_for("status", lambda d: d.get("targetBed") == target
                   and d["status"] == 4, start=mark)
    cloud.emit("cancel", {"serialNumber": serial}, serial=serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-1005", start=mark)
    wait_idle(printer, cloud, serial)
    printer.klippy.gcode("M140 S0")
    assert [j["state"] for j in job_events(cloud, mark)] == ["canceled"]


BIG = 1024 * 1024 + 10


@pytest.mark.parametrize("name,serve,payload_extra,why", [
    ("trunc", dict(truncate_at=3000), {}, "download"),
    ("missing", dict(status=404), {}, "HTTP 404"),
    ("huge", dict(size=BIG), {}, "limit"),
    ("mismatch", dict(content_length=999999), {}, "download"),
    ("stl", None, {"stlFile": "http://127.0.0.1:9/x.stl",
                   "fileToPrint": "stlFile"}, "no G-code"),
])
def test_bad_cloud_prints_leave_nothing(online, printer, cloud, name, serve,
                                        payload_extra, why):
    serial = online
    with open(printer.printer_cfg, "rb") as f:
        cfg_before = f.read()
    payload = {"serialNumber": serial, "jobId": "KL1-2%s" % (name,),
               "jobName": "../../printer.cfg"}
    if serve is not None:
        size = serve.pop("size", 20000)
        content = (gcode_file(moves=10) * (size // 300 + 1))[:size]
        payload["gcodeFile"] = cloud.serve_file(name + ".gcode", content,
                                                **serve)
    payload.update(payload_extra)
    mark = cloud.mark()
    start = len(printer.klippy.output)
    cloud.emit("print", payload, serial=serial)
    job = cloud.wait_for("job", lambda d: d["jobId"] == payload["jobId"],
                         start=mark, timeout=30)
    assert job.data["state"] == "canceled"
    line = printer.klippy.wait_output(
        lambda l: payload["jobId"] in l and ("failed" in l or "refused" in l),
        start=start)
    assert why in line, line
    time.sleep(1.)
    assert printer.print_state() in ("standby", "complete", "cancelled")
    assert not [f for f in cloud_files(printer) if "KL1-2" in f]
    assert cloud_files(printer, hidden=True) == []   # no .part left
    with open(printer.printer_cfg, "rb") as f:
        assert f.read() == cfg_before
    if serve is not None:
        codes = [s["status"] for s in statuses(cloud, serial, mark)]
        assert 12 in codes


def test_restart_during_cloud_print(online, printer, cloud):
    serial = online
    _url, mark = start_long_print(printer, cloud, serial, "KL1-1005",
                                  "restart")
    printer.restart()
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-1005", start=mark,
                   timeout=30)
    hello = cloud.wait_for("hello", start=mark, timeout=20)
    assert hello.verified
    time.sleep(3.)
    assert [j["state"] for j in job_events(cloud, mark, "KL1-1005")] == [
        "canceled"]
    assert len(cloud.connected_sids()) == 1
