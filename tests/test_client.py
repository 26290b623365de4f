"""GuardedClient: malformed packets are dropped without a traceback on any
thread, and the connection carries on."""
import threading
import time

from polarcloud.connector.client import GuardedClient
from test_faults_link import deep

MALFORMED = ['2["print",%s]' % deep(1000)[0], '2["print",{bad json', "2",
             "2[]", '2[["print"]]', '2["x"', "7zz",
             # binary headers without attachments: would swallow the rest
             "6", '5["print",{}]', '50-["print",{}]']


def test_malformed_packets_are_dropped_quietly(cloud, monkeypatch):
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    got = []
    client = GuardedClient(reconnection=False)
    client.on("*", lambda event, *a: got.append(event))
    cloud.start()
    mark = cloud.mark()
    client.connect(cloud.url, transports=["websocket"])
    try:
        sid = cloud.wait_for("connect", start=mark).sid
        for i, text in enumerate(MALFORMED):
            cloud.emit_raw([text], sid=sid)
            cloud.emit("after%d" % i, {"ok": True}, sid=sid)
        deadline = time.monotonic() + 10
        want = ["after%d" % i for i in range(len(MALFORMED))]
        while not set(want) <= set(got) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(want) <= set(got), (want, got)
        assert client.connected
        assert not escaped, escaped
    finally:
        client.disconnect()
