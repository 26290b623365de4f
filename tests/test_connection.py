"""CloudConnection against the emulator, without Klippy.

The host here is a small recorder of the callbacks the Klippy module would
route to the reactor; the connection, the child processes and the Socket.IO
server are all real.
"""
import os
import shutil
import time

import pytest

from conftest import EMAIL, PIN, wait_until as wait
from polarcloud.connector.cloud_client import MAX_MESSAGE_BYTES
from polarcloud.connector import connection as C
from polarcloud.connector import registration as R
from polarcloud.connector.runner import ChildProcess
from polarcloud.host import Host
from polarcloud.settings import Settings
from polarcloud.store import KEY_FILE

# EMAIL/PIN: the session's account. Every printer on this host shares one
# MAC, so a second account would get FORBIDDEN answers in later tests.


class RecordingHost(Host):
    """The Host interface as a recorder (the Klippy module would hand each
    call to the reactor)."""

    def __init__(self):
        self.info = {}
        self.console_lines = []
        self.commands = []
        self.statuses = []

    def publish(self, info):
        self.info = info

    def status_sent(self, status):
        self.statuses.append(status)

    def console(self, message):
        self.console_lines.append(message)

    def online(self):
        pass

    def check_alive(self):
        return True

    def run_commands(self, commands, urgent, done):
        self.commands.extend(commands)
        done()

    def start_print(self, filename, reply):
        reply("not in this test")


SNAP = {"klippy": "ready", "state": "standby", "file_loads": 0,
        "temps": {"tool0": (25., 0.), "bed": (25., 0.)}}


def state_dir_with_key(tmp_path, printer_key):
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(printer_key, str(state / KEY_FILE))
    os.chmod(str(state / KEY_FILE), 0o600)
    return str(state)


@pytest.fixture
def conn(tmp_path, cloud, monkeypatch, printer_key):
    monkeypatch.setattr(C, "HANDSHAKE_TIMEOUT", 2.)
    monkeypatch.setattr(R, "ANSWER_TIMEOUT", 2.)
    monkeypatch.setattr(C, "HELLO_FAILED_RETRY", 3.)
    monkeypatch.setattr(C, "RECONNECT_BACKOFF", (0.2, 1.))   # seconds, not minutes
    cloud.start()
    cloud.add_account(EMAIL, PIN)
    cloud.hello_response = "SUCCESS"
    cloud.answer_register = True
    cloud.register_reason = None
    host = RecordingHost()
    c = C.CloudConnection(host, Settings(
        url=cloud.url, state_dir=state_dir_with_key(tmp_path, printer_key),
        printer_type="delta", printer_make="Kossel",
        gcode_dir=str(tmp_path / "gcodes"), max_download_size=1,
        min_free_space=0, status_interval=1.))
    c.host_ = host
    c.start()
    c.push_sample(SNAP)
    yield c
    c.stop()
    cloud.hello_response = "SUCCESS"


def register(c, email=EMAIL, pin=PIN):
    replies = []
    c.request_register(email, pin, replies.append)
    wait(lambda: replies, 30, "register reply")
    return replies[0]


def online(c, cloud):
    result = register(c)
    assert result["status"] == "registered"
    wait(lambda: c.host_.info.get("connected"), 15, "online")
    return result["serial"]


def test_register_then_hello_and_status(conn, cloud):
    mark = cloud.mark()
    serial = online(conn, cloud)
    reg = cloud.wait_for("register", start=mark)
    assert reg.data["mfg"] == "kl" and reg.data["pin"] == "***"
    assert reg.data["myInfo"]["machineType"] == "Delta"
    assert reg.data["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    hello = cloud.wait_for("hello", start=mark)
    assert hello.verified and hello.data["printerMake"] == "Kossel"
    assert hello.data["printerType"] == "Kossel"
    st = cloud.wait_for("status", start=mark).data
    assert st["serialNumber"] == serial and st["jobId"] == "0"
    # nothing but register/hello from an unauthenticated connection
    early = [r.event for r in cloud.events[mark:]
             if not r.authed and r.event not in ("connect", "disconnect")]
    assert set(early) <= {"register", "hello"}, early


@pytest.mark.parametrize("reason,text", [
    ("FORBIDDEN", "another Polar Cloud account"),
    ("SERVER_ERROR", "try again later"),
    ("MFG_UNKNOWN", "bug"),
    ("SOMETHING_NEW", "SOMETHING_NEW"),
])
def test_register_failures_are_explained(conn, cloud, reason, text):
    cloud.register_reason = reason
    result = register(conn)
    assert text in result["error"]
    assert not conn.host_.info["registered"]
    assert not os.path.exists(conn.store.state_path) or \
        "serial" not in conn.store.load()


def test_register_no_answer_and_unreachable(conn, cloud):
    cloud.answer_register = False
    assert "no answer" in register(conn)["error"]
    cloud.answer_register = True
    cloud.stop()
    assert "cannot reach Polar Cloud" in register(conn)["error"]


def test_hello_failed_backs_off(conn, cloud):
    online(conn, cloud)
    cloud.hello_response = "FAILED"
    mark = cloud.mark()
    cloud.disconnect_all()
    cloud.wait_for("hello", start=mark, timeout=10)
    time.sleep(1.5)
    assert len(cloud.records("hello")[0:]) and len(
        [r for r in cloud.events[mark:] if r.event == "hello"]) == 1
    assert "refused" in conn.host_.info["last_error"]


@pytest.mark.parametrize("how", ["delete", "DELETED"])
def test_deleted_printer_forgets_serial(conn, cloud, how):
    serial = online(conn, cloud)
    if how == "delete":
        cloud.emit("delete", {}, serial=serial)
    else:
        cloud.hello_response = "DELETED"
        cloud.disconnect_all()
    wait(lambda: not conn.host_.info.get("registered"), 15, "forgotten")
    assert any("POLAR_REGISTER" in l for l in conn.host_.console_lines)
    mark = cloud.mark()
    time.sleep(2.)
    assert not [r for r in cloud.events[mark:] if r.event in (
        "register", "hello")]
    assert os.path.exists(conn.store.key_path)   # key kept


def test_wrong_serial_and_unknown_events_ignored(conn, cloud):
    serial = online(conn, cloud)
    cloud.emit("pause", {"serialNumber": "KL999999"}, serial=serial)
    cloud.emit("pause", {}, serial=serial)
    cloud.emit("delete", {"serialNumber": "KL999999"}, serial=serial)
    for event in ("getQueueResponse", "keyPair", "sendNextPrintResponse",
                  "someFutureEvent"):
        cloud.emit(event, {"serialNumber": serial, "x": 1}, serial=serial)
    cloud.emit("pause", "not an object", serial=serial)
    cloud.emit("pause", {"serialNumber": serial}, serial=serial)
    wait(lambda: conn.host_.commands, 5, "pause forwarded")
    time.sleep(0.5)
    assert [e for e, _ in conn.host_.commands] == ["pause"]
    assert conn.host_.info["registered"] and conn.host_.info["connected"]


def test_a_huge_message_is_named_and_the_printer_reconnects(conn, cloud):
    serial = online(conn, cloud)
    mark = cloud.mark()
    cloud.emit("print", {"serialNumber": serial,
                         "gcodeFile": "x" * (2 * MAX_MESSAGE_BYTES)},
               serial=serial)
    wait(lambda: "sent a message of" in (conn.host_.info.get("last_error")
                                          or ""), 10, "drop explained")
    cloud.wait_for("hello", start=mark, timeout=15)
    wait(lambda: conn.host_.info.get("connected"), 15, "online again")
    assert conn.host_.commands == []


def test_unregister(conn, cloud):
    serial = online(conn, cloud)
    replies = []
    conn.request_unregister(replies.append)
    wait(lambda: replies, 10, "unregister reply")
    assert replies == [{"status": "unregistered"}]
    assert serial not in cloud.printers
    assert not conn.host_.info["registered"]
    replies = []
    conn.request_unregister(replies.append)
    wait(lambda: replies, 10, "second reply")
    assert "not registered" in replies[0]["error"]


def test_cloud_job_flow_and_send_next_print(tmp_path, cloud, monkeypatch,
                                           printer_key):
    """print -> download -> start -> complete: statuses, one job event and
    sendNextPrint at the first 7 (continuous printing switched on)."""
    cloud.start()
    cloud.add_account(EMAIL, PIN)
    started = []

    class Host(RecordingHost):
        def start_print(self, filename, reply):
            started.append(filename)
            reply(None)
    host = Host()
    c = C.CloudConnection(host, Settings(
        url=cloud.url, state_dir=state_dir_with_key(tmp_path, printer_key),
        gcode_dir=str(tmp_path / "gcodes" / "polar_cloud"),
        max_download_size=1, min_free_space=0, status_interval=1.,
        send_next_print=True))
    c.host_ = host
    c.start()
    try:
        c.push_sample(SNAP)
        serial = online(c, cloud)
        url = cloud.serve_file("flow.gcode", b"G28\nG1 X10 E1\n" * 100)
        mark = cloud.mark()
        cloud.emit("print", {"serialNumber": serial, "jobId": "J-7",
                             "jobName": "flow", "gcodeFile": url},
                   serial=serial)
        wait(lambda: started, 15, "print started")
        assert started == ["polar_cloud/flow_cloud_J-7.gcode"]
        assert (tmp_path / "gcodes" / "polar_cloud" /
                "flow_cloud_J-7.gcode").read_bytes().startswith(b"G28")
        printing = dict(SNAP, state="printing", filename=started[0],
                        print_duration=5., total_duration=6.,
                        filament_used=12., file_position=700,
                        file_size=1400, file_loads=1)
        c.push_sample(printing)
        cloud.wait_for("status", lambda d: d["status"] == 3, start=mark)
        c.push_sample(dict(printing, state="complete", file_position=1400))
        nxt = cloud.wait_for("sendNextPrint", start=mark, timeout=15)
        assert nxt.data == {"serialNumber": serial}
        after_first_7 = cloud.mark()
        c.push_sample(dict(printing, state="complete"))
        cloud.wait_for("status", lambda d: d["status"] == 0,
                       start=after_first_7, timeout=15)
        jobs = [r.data for r in cloud.events[mark:] if r.event == "job"]
        assert jobs == [{"serialNumber": serial, "jobId": "J-7",
                         "state": "completed", "printSeconds": 5,
                         "filamentUsed": 12, "bytesRead": 1400,
                         "fileSize": 1400}]
        codes = [r.data["status"] for r in cloud.events[mark:]
                 if r.event == "status"]
        assert codes[codes.index(3):].count(5) == 3
        assert [x for x in codes if x in (5, 7)] == [5, 5, 5, 7, 7, 7], codes
    finally:
        c.stop()


def test_register_refused_when_the_state_dir_cannot_be_written(conn, cloud,
                                                               monkeypatch):
    """Checked before anything reaches the cloud: a serial we could not
    save would pair the key with a registration the printer forgets."""
    monkeypatch.setattr(conn.store, "write_problem",
                        lambda: "cannot write in /x (Read-only file system)")
    mark = cloud.mark()
    result = register(conn)
    assert "cannot be saved" in result["error"]
    assert "Read-only" in result["error"]
    time.sleep(0.5)
    assert not [r for r in cloud.events[mark:] if r.event == "register"]


class SleepingWorker(ChildProcess):
    PACKAGE = "tests."      # tests/runner_worker.py


def test_stop_does_not_wait_for_a_starved_signer(conn, cloud, monkeypatch):
    """A SCHED_IDLE keys worker on a busy board may take minutes: stop
    (RESTART) cancels it, so the old connection closes at once instead of
    lingering beside the new printer object's."""
    online(conn, cloud)
    signing = []

    def starved(path, challenge, timeout=None, group=None):
        signing.append(challenge)
        return group.run(SleepingWorker("runner_worker", {"sleep": 120}))
    monkeypatch.setattr(C.keys, "sign_challenge", starved)
    mark = cloud.mark()
    cloud.disconnect_all()
    wait(lambda: signing and cloud.connected_sids(), 15, "signing again")
    conn.stop(timeout=30.)
    assert not conn.thread.is_alive()
    wait(lambda: not cloud.connected_sids(), 10, "old connection closed")
    assert not [r for r in cloud.events[mark:] if r.event == "hello"]
    assert "sign" not in (conn.host_.info.get("last_error") or "")
