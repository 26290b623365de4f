"""Minimal client for Klippy's API socket (JSON messages ended by 0x03)."""
import itertools
import json
import queue
import socket
import threading
import time


class KlippyAPI:
    def __init__(self, path, timeout=10.):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.pending = {}
        self.lock = threading.Lock()
        self.closed = False
        self.output = []      # console lines, once subscribe_output() ran
        self.eof = threading.Event()   # Klippy closed the connection
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            *msgs, buf = buf.split(b"\x03")
            for raw in msgs:
                msg = json.loads(raw)
                waiter = self.pending.pop(msg.get("id"), None)
                if waiter is not None:
                    waiter.put(msg)
                elif msg.get("key") == "console":
                    self.output.append(msg["params"]["response"])
        self.eof.set()
        for waiter in list(self.pending.values()):
            waiter.put({"error": {"message": "klippy connection closed"}})

    def call(self, method, params=None, timeout=None):
        mid = next(self.ids)
        waiter = queue.Queue()
        self.pending[mid] = waiter
        msg = {"id": mid, "method": method, "params": params or {}}
        with self.lock:
            self.sock.sendall(json.dumps(msg).encode() + b"\x03")
        reply = waiter.get(timeout=timeout or self.timeout)
        if "error" in reply:
            raise KlippyError(reply["error"].get("message", reply["error"]))
        return reply["result"]

    def query(self, **objects):
        return self.call("objects/query", {"objects": objects})["status"]

    def gcode(self, script, timeout=None):
        return self.call("gcode/script", {"script": script}, timeout=timeout)

    def subscribe_output(self):
        self.call("gcode/subscribe_output",
                  {"response_template": {"key": "console"}})

    def wait_output(self, pred, timeout=10., start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output[start:]:
                if pred(line):
                    return line
            time.sleep(0.05)
        raise AssertionError("console line not seen; got %r"
                             % (self.output[start:],))

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class KlippyError(Exception):
    pass


def wait_ready(path, timeout=30., want=("ready",)):
    """Connect and poll `info` until Klippy's state is in want."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            api = KlippyAPI(path)
        except OSError as e:
            last = e
            time.sleep(0.05)
            continue
        try:
            while time.monotonic() < deadline:
                info = api.call("info", {"client_info": {"program": "tests"}})
                last = info
                if info.get("state") in want:
                    return api, info
                time.sleep(0.05)
        except (OSError, queue.Empty, KlippyError) as e:
            last = e
        api.close()
        time.sleep(0.05)
    raise TimeoutError("klippy not %s: %r" % ("/".join(want), last))
