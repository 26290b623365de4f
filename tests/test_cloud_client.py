"""The Socket.IO client the connector uses, against the emulator's real
server: every event reaches one callback, by name, in order, on the
reader thread; malformed packets are dropped without a traceback on any
thread and the connection carries on; Klippy never loads requests for
it."""
import functools
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from polarcloud.connector.cloud_client import (
    MAX_MESSAGE_BYTES, cloud_client, websocket_class)
from test_faults_link import deep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MALFORMED = ['2["print",%s]' % deep(1000)[0], '2["print",{bad json', "2",
             "2[]", '2[["print"]]', '2["x"', "7zz",
             # binary headers without attachments: would swallow the rest
             "6", '5["print",{}]', '50-["print",{}]']


def test_events_arrive_by_name_in_order_on_one_thread(cloud):
    got, threads, lost = [], set(), threading.Event()

    def on_event(name, args):
        got.append((name, args))
        threads.add(threading.get_ident())
    client = cloud_client(on_event, lost.set)
    mark = cloud.mark()
    client.connect(cloud.url, transports=["websocket"], wait_timeout=10)
    try:
        rec = cloud.wait_for("connect", start=mark)
        before = threading.active_count()
        for i in range(300):
            cloud.emit("command", {"n": i}, sid=rec.sid)
        cloud.emit("*", {"n": "star"}, sid=rec.sid)
        cloud.emit("snapshot", ["a", "list"], sid=rec.sid)
        deadline = time.monotonic() + 20
        while len(got) < 303 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= before + 1
    finally:
        client.disconnect()
    assert got[0][0] == "welcome"
    commands = [args[0]["n"] for name, args in got if name == "command"]
    assert commands == list(range(300))
    assert got[-2:] == [("*", ({"n": "star"},)), ("snapshot", (["a", "list"],))]
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert lost.wait(5)


def test_klippy_does_not_load_what_the_socket_never_uses():
    code = ("import sys; from polarcloud.connector.cloud_client import "
            "cloud_client; cloud_client(print, print); "
            "import engineio.client as c; "
            "loaded = {'requests', 'aiohttp', 'tornado'} & set(sys.modules); "
            "assert not loaded, loaded; "
            "assert c.requests is None; import requests")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_malformed_packets_are_dropped_quietly(cloud, monkeypatch):
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    got = []
    # a list for a name is handed over too: the connector ignores it
    client = cloud_client(lambda name, args: got.append(repr(name)),
                          lambda: None)
    cloud.start()
    mark = cloud.mark()
    client.connect(cloud.url, transports=["websocket"])
    try:
        sid = cloud.wait_for("connect", start=mark).sid
        for i, text in enumerate(MALFORMED):
            cloud.emit_raw([text], sid=sid)
            cloud.emit("after%d" % i, {"ok": True}, sid=sid)
        want = ["'after%d'" % i for i in range(len(MALFORMED))]
        deadline = time.monotonic() + 10
        while not set(want) <= set(got) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(want) <= set(got), (want, got)
        assert client.connected
        assert not escaped, escaped
    finally:
        client.disconnect()


def test_a_message_over_the_limit_ends_the_connection_unread(cloud):
    sizes, lost = [], threading.Event()
    got = []
    client = cloud_client(lambda name, args: got.append(name), lost.set,
                          sizes.append)
    cloud.start()
    mark = cloud.mark()
    client.connect(cloud.url, transports=["websocket"], wait_timeout=10)
    try:
        sid = cloud.wait_for("connect", start=mark).sid
        cloud.emit("print", {"fits": "x" * (MAX_MESSAGE_BYTES - 100)},
                   sid=sid)
        cloud.emit("print", {"huge": "x" * (4 * MAX_MESSAGE_BYTES)}, sid=sid)
        assert lost.wait(10)
    finally:
        client.disconnect()
    assert got.count("print") == 1
    assert len(sizes) == 1 and sizes[0] > 4 * MAX_MESSAGE_BYTES


def frame(opcode, payload, fin=True):
    """A server's (unmasked) WebSocket frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


def websocket_on(data):
    """The client's WebSocket reading `data` from a socket pair."""
    ours, theirs = socket.socketpair()

    def send():      # more than a socket buffer holds
        try:
            theirs.sendall(data)
            theirs.shutdown(socket.SHUT_WR)
        except OSError:
            pass     # the reader refused the rest and closed its end
    threading.Thread(target=send, daemon=True).start()
    sizes = []
    ws = functools.partial(websocket_class(), sizes.append)(
        enable_multithread=True)
    ws.sock, ws.connected = ours, True
    return ws, sizes, theirs


def test_websocket_frames_checked_in_c_and_bounded():
    import websocket
    # text in three fragments, then invalid UTF-8: the first arrives
    # whole, the second still ends the connection (decoded strictly)
    ws, sizes, _peer = websocket_on(
        frame(0x1, b"4", fin=False) + frame(0x0, b"2[\"a\"", fin=False)
        + frame(0x0, b",1]") + frame(0x1, b"42[\"\xff\"]"))
    assert ws.recv() == '42["a",1]'
    with pytest.raises(UnicodeDecodeError):
        ws.recv()
    # one frame announcing too much: refused from its header alone
    ws, sizes, _peer = websocket_on(frame(0x1, b"4" * 10)[:1]
                                    + bytes([127]) + struct.pack("!Q", 1 << 40))
    with pytest.raises(websocket.WebSocketPayloadException):
        ws.recv()
    assert sizes == [1 << 40]
    # many small fragments adding up to too much
    piece = b"x" * 60000
    ws, sizes, _peer = websocket_on(frame(0x1, piece, fin=False) + b"".join(
        frame(0x0, piece, fin=False) for _ in range(6)) + frame(0x0, b"]"))
    with pytest.raises(websocket.WebSocketPayloadException):
        ws.recv()
    assert sizes and sizes[0] > MAX_MESSAGE_BYTES
