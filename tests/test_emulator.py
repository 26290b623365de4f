"""Tests of the Polar Cloud emulator itself, driven by a plain python-socketio
client and the pure-Python rsa package (what the connector will use)."""
import socket
import threading
import time

import pytest
import requests
import rsa
import socketio

from polar_emulator import PolarEmulator, sign_challenge, spki_pem

EMAIL, PIN = "user@example.com", "1234"
MAC = "B8:27:EB:12:34:56"


@pytest.fixture(scope="module")
def keys():
    return rsa.newkeys(512)   # small keys: the emulator accepts any size


@pytest.fixture
def emu():
    e = PolarEmulator()
    e.add_account(EMAIL, PIN)
    e.start()
    yield e
    e.close()


class Printer:
    """Minimal printer side: a socketio.Client that queues what it receives."""

    def __init__(self, url, **kw):
        self.got = []
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection_delay=0.1, reconnection_delay_max=0.2,
                                   randomization_factor=0, **kw)
        self.sio.on("*", self._on_any)
        self.sio.connect(url, transports=["websocket"])

    def _on_any(self, event, data):
        with self.cond:
            self.got.append((event, data))
            self.cond.notify_all()

    def wait(self, event, timeout=3.0, after=0):
        """Payload of the first `event` received at index >= after."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev, data in self.got[after:]:
                    if ev == event:
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s; got %r" % (event, self.got))
                self.cond.wait(left)

    def challenge(self):
        return self.wait("welcome")["challenge"]

    def register(self, pub, email=EMAIL, pin=PIN, mac=MAC, mfg="kl", **extra):
        msg = {"mfg": mfg, "email": email, "pin": pin, "publicKey": spki_pem(pub),
               "mfgSn": "1234567890", "myInfo": {"MAC": mac}}
        msg.update(extra)
        self.sio.emit("register", msg)
        return self.wait("registerResponse")

    def hello(self, serial, priv, challenge=None):
        n = len(self.got)
        sig = sign_challenge(challenge or self.challenge(), priv)
        self.sio.emit("hello", {"serialNumber": serial, "signature": sig,
                                "MAC": MAC, "protocol": "2"})
        return n

    def close(self):
        self.sio.disconnect()


@pytest.fixture
def client(emu):
    made = []

    def make():
        p = Printer(emu.url)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def registered(emu, client, keys):
    """A registered printer, reconnected with a fresh challenge (docs/protocol.md#registration)."""
    p = client()
    serial = p.register(keys[0])["serialNumber"]
    p.close()
    return client(), serial


def test_fresh_challenge_per_connection(emu, client):
    a, b = client(), client()
    ca, cb = a.challenge(), b.challenge()
    assert ca != cb and len(ca) == 32
    assert len(emu.records("connect")) == 2


def test_register_gives_serial_and_hides_pin(emu, client, keys):
    p = client()
    resp = p.register(keys[0])
    assert resp == {"status": "SUCCESS", "reason": "SUCCESS", "serialNumber": "KL000123"}
    info = emu.printers["KL000123"]
    assert info["email"] == EMAIL and info["mac"] == MAC and info["mfg"] == "kl"
    assert "pin" not in info["register"]
    rec = emu.wait_for("register")
    assert rec.data["pin"] == "***" and rec.serial == "KL000123" and not rec.authed
    # Same account + device again: same serial (docs/protocol.md#registration); another account: FORBIDDEN.
    assert p.register(keys[0])["serialNumber"] == "KL000123"
    emu.add_account("other@example.com", "9999")
    q = client()
    assert q.register(keys[0], email="other@example.com", pin="9999") == \
        {"status": "FAILED", "reason": "FORBIDDEN"}


@pytest.mark.parametrize("change, reason", [
    ({"pin": "0000"}, "EMAIL_PIN_ERROR"),
    ({"email": "nobody@example.com"}, "EMAIL_PIN_ERROR"),
    ({"mfg": ""}, "MFG_MISSING"),
    ({"mfg": "moonraker"}, "MFG_UNKNOWN"),
    ({"publicKey": ""}, "INVALID_KEY"),
    ({"publicKey": "pkcs1"}, "INVALID_KEY"),
])
def test_register_rejections(emu, client, keys, change, reason):
    p = client()
    if change.get("publicKey") == "pkcs1":   # only SPKI is accepted
        change = {"publicKey": keys[0].save_pkcs1("PEM").decode()}
    p.sio.emit("register", {**{"mfg": "kl", "email": EMAIL, "pin": PIN,
                               "publicKey": spki_pem(keys[0]), "myInfo": {"MAC": MAC}},
                            **change})
    assert p.wait("registerResponse") == {"status": "FAILED", "reason": reason}
    assert emu.printers == {}


def test_register_knobs(emu, client, keys):
    p = client()
    emu.register_reason = "SERVER_ERROR"
    assert p.register(keys[0]) == {"status": "FAILED", "reason": "SERVER_ERROR"}
    emu.register_reason, emu.answer_register = None, False
    n, m = len(p.got), emu.mark()
    p.sio.emit("register", {"mfg": "kl", "email": EMAIL, "pin": PIN,
                            "publicKey": spki_pem(keys[0]), "myInfo": {"MAC": MAC}})
    emu.wait_for("register", start=m)
    with pytest.raises(AssertionError):
        p.wait("registerResponse", timeout=0.3, after=n)


def test_hello_success_and_commands(emu, client, keys):
    p, serial = registered(emu, client, keys)
    n = p.hello(serial, keys[1])
    assert p.wait("helloResponse", after=n) == {"status": "SUCCESS"}
    rec = emu.wait_for("hello")
    assert rec.verified is True and rec.serial == serial
    assert len(emu.authenticated_sids(serial)) == 1
    p.sio.emit("status", {"serialNumber": serial, "status": 0})
    assert emu.wait_for("status", lambda d: d["status"] == 0).authed
    assert emu.emit("pause", {"serialNumber": serial}, serial=serial) == 1
    assert p.wait("pause") == {"serialNumber": serial}


def test_hello_bad_signature_and_single_use_challenge(emu, client, keys):
    p, serial = registered(emu, client, keys)
    other = rsa.newkeys(512)[1]
    n = p.hello(serial, other)
    assert p.wait("helloResponse", after=n)["status"] == "FAILED"
    assert emu.wait_for("hello").verified is False
    # The challenge was used up: even a correct signature now fails.
    n = p.hello(serial, keys[1], challenge=p.challenge())
    assert p.wait("helloResponse", after=n)["status"] == "FAILED"
    assert emu.authenticated_sids() == []


def test_hello_unknown_serial_and_deleted(emu, client, keys):
    p = client()
    n = p.hello("KL999999", keys[1])
    assert p.wait("helloResponse", after=n)["status"] == "FAILED"
    q, serial = registered(emu, client, keys)
    emu.delete_printer(serial)
    n = q.hello(serial, keys[1])
    assert q.wait("helloResponse", after=n) == {"status": "DELETED"}


def test_hello_response_none_means_no_answer(emu, client, keys):
    p, serial = registered(emu, client, keys)
    emu.hello_response = None
    n = p.hello(serial, keys[1])
    assert emu.wait_for("hello").verified
    with pytest.raises(AssertionError):
        p.wait("helloResponse", timeout=0.3, after=n)


def test_unregister(emu, client, keys):
    p, serial = registered(emu, client, keys)
    p.hello(serial, keys[1])
    p.wait("helloResponse")
    p.sio.emit("unregister", {"serialNumber": serial})
    assert p.wait("unregisterResponse")["status"] == "SUCCESS"
    assert serial not in emu.printers


def test_stop_start_same_port(emu, client):
    p = client()
    p.challenge()
    port = emu.port
    emu.stop()
    emu.wait_for("disconnect")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    m = emu.mark()
    emu.start()
    assert emu.port == port
    # The dropped client's auto-reconnect finds the cloud again.
    emu.wait_for("connect", start=m)
    assert p.wait("welcome", after=1)


def test_disconnect_all_keeps_listening(emu, client):
    client().challenge()
    emu.disconnect_all()
    emu.wait_for("disconnect")
    assert client().challenge()


def test_serve_file_truncated(emu):
    url = emu.serve_file("job.gcode", b"G1 X1\n" * 20000, truncate_at=1000)
    try:
        r = requests.get(url, timeout=5)
        assert len(r.content) < 120000   # reached only if requests does not raise
    except requests.RequestException:
        pass
    ok = emu.serve_file("ok.gcode", b"G28\n")
    assert requests.get(ok, timeout=5).content == b"G28\n"
    assert requests.get(emu.url + "/files/missing", timeout=5).status_code == 404
    assert [n for n, _ in emu.file_requests] == ["job.gcode", "ok.gcode", "missing"]


def test_geturl_and_upload_field_order(emu, client, keys):
    p, serial = registered(emu, client, keys)
    p.hello(serial, keys[1])
    p.wait("helloResponse")
    p.sio.emit("getUrl", {"serialNumber": serial, "method": "post", "type": "idle"})
    resp = p.wait("getUrlResponse")
    assert resp["status"] == "SUCCESS" and resp["jobID"] == "0"
    assert resp["expires"] == 3600 and resp["maxSize"] == 150000
    r = requests.post(resp["url"], data=resp["fields"],
                      files={"file": ("image.jpg", b"\xff\xd8jpeg", "image/jpeg")}, timeout=5)
    assert r.status_code == 204
    up = emu.uploads[-1]
    assert [k for k, _ in up.fields] == list(resp["fields"])
    assert up.order[-1] == "file" and up.filename == "image.jpg"
    assert up.content_type == "image/jpeg" and up.data == b"\xff\xd8jpeg"
    assert up.problems == []
    # A renamed field is what S3 would refuse; strict mode answers 403.
    emu.upload_strict = True
    bad = dict(resp["fields"], acl="public-read")
    r = requests.post(resp["url"], data=bad, files={"file": ("image.jpg", b"x")}, timeout=5)
    assert r.status_code == 403 and emu.uploads[-1].problems == ["field 'acl' changed"]


def test_wait_for_timeout_summarises(emu, client):
    client().challenge()
    with pytest.raises(AssertionError, match="connect"):
        emu.wait_for("status", timeout=0.1)
