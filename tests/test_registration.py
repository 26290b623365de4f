"""One registration budget, a clear answer when it runs out, and a MAC of
our own where the host has none (no socket, no Klippy)."""
import json
import os
import re

from polarcloud.connector import connection as C
from polarcloud.connector import registration as R
from polarcloud.connector.runner import ChildError
from polarcloud.settings import Settings

from test_connection import RecordingHost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def connection(tmp_path):
    return C.CloudConnection(RecordingHost(), Settings(
        url="http://127.0.0.1:1", state_dir=str(tmp_path)))


def constant(path, name):
    with open(os.path.join(ROOT, path)) as f:
        return re.search(r"^%s = (.+?)(?:\s+#.*)?$" % name, f.read(),
                         re.M).group(1)


def test_every_wait_is_derived_from_the_connector_budget():
    assert R.REGISTER_TIMEOUT == R.KEYGEN_TIMEOUT + R.ANSWER_TIMEOUT
    # Klippy's endpoint waits the connector's budget plus a margin and
    # tells Moonraker's shim (register_timeout), which adds its own margin
    assert constant("klippy_extras/polar_cloud.py",
                    "WEBHOOK_REGISTER_TIMEOUT") \
        == "pc_registration.REGISTER_TIMEOUT + 15."
    shim = "moonraker_components/polar_cloud.py"
    assert float(constant(shim, "MARGIN")) > 0
    assert float(constant(shim, "REGISTER_TIMEOUT_FALLBACK")) \
        > R.REGISTER_TIMEOUT + 15


def test_key_generation_out_of_time_is_a_clear_answer(tmp_path, monkeypatch):
    def too_slow(path, timeout, group=None):
        assert timeout == R.KEYGEN_TIMEOUT
        raise ChildError("the worker was stopped after %d s" % timeout,
                         "timeout")
    monkeypatch.setattr(R.keys, "generate_key", too_slow)
    c = connection(tmp_path)
    replies = []
    c.registration.start_register("owner@example.com", "1234",
                                  replies.append)
    assert replies == [{"error": "cannot create the printer key: the worker"
                        " was stopped after 900 s"}]
    assert not c.registration.registering and c.serial is None
    assert c.registration.next_deadline() is None
    assert not os.path.exists(os.path.join(str(tmp_path), "state.json"))


def test_no_mac_gets_one_random_mac_kept_with_the_registration(
        tmp_path, monkeypatch):
    monkeypatch.setattr(C, "detect_mac", lambda: None)
    c = connection(tmp_path)
    mac = c.identity()["mac"]
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01     # local, unicast
    assert mac != "00:00:00:00:00:00" and c.identity()["mac"] == mac
    assert connection(tmp_path / "other").identity()["mac"] != mac
    c.state["serial"] = "KL000123"
    c._save_state()
    with open(os.path.join(str(tmp_path), "state.json")) as f:
        assert json.load(f)["mac"] == mac
    again = connection(tmp_path)
    again._load_state()
    assert again.identity()["mac"] == mac


def test_the_connector_thread_never_waits_for_a_time_already_past(
        tmp_path):
    c = connection(tmp_path)
    now = 1000.
    c.next_alive_check = now + 50.
    # no registration, Moonraker never handed a webcam over: nothing due
    c.webcam_wait_until = now - 100.
    assert c._next_wakeup(now) == now + 50.
    # registered, a retry due, but the first hello waits for the webcam
    c.state["serial"] = "KL000123"
    c.next_attempt = now - 1.
    c.webcam_wait_until = now + 4.
    assert c._next_wakeup(now) == now + 4.
    c.webcam_wait_until = now - 100.
    assert c._next_wakeup(now) == now - 1.      # due: the tick connects
