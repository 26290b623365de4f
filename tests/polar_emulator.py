"""Polar Cloud emulator for tests.

A real Socket.IO 5 / Engine.IO 4 server (python-socketio ``AsyncServer`` on
aiohttp) that speaks the printer side of the Polar Cloud protocol (see
docs/protocol.md), plus an HTTP file server for cloud print downloads and an
S3-style upload endpoint, all on one port.

The asyncio loop runs in a daemon thread; every public method is synchronous
and thread-safe so plain pytest tests can drive it::

    emu = PolarEmulator()
    emu.start()
    emu.add_account("user@example.com", "1234")
    ...
    rec = emu.wait_for("status", lambda d: d["status"] == 0)
    emu.close()

Fault knobs (class attributes below; defaults behave as the real cloud):
``send_welcome``/``welcome_data`` for lost or odd welcomes,
``hello_response = None`` for a lost helloResponse, ``answer_register``/
``register_delay`` for lost or late registerResponses, ``refuse`` for an
outage that refuses new connections (HTTP 503 at the Engine.IO handshake,
TCP reset at the handshake, or a Socket.IO disconnect right after
connect); ``stop()`` refuses at TCP, ``disconnect_all()`` kicks live
clients. ``emit_many``/``emit_raw`` send many or malformed packets;
``take_peak_sessions()`` tells whether one serial ever had two authenticated
connections at once.
"""
import asyncio
import base64
import copy
import errno
import hashlib
import itertools
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import rsa
import socketio
from aiohttp import web

log = logging.getLogger("polar_emulator")

# Library chatter would drown the test output; our own errors still show.
for _name in ("engineio", "engineio.server", "socketio", "socketio.server",
              "aiohttp", "aiohttp.access", "aiohttp.server", "aiohttp.web"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MFG_CODES = {"kl", "op", "el", "CR", "ac"}   # docs/protocol.md#registration
SERIAL_FMT = "KL%06d"
FIRST_SERIAL = 123


@dataclass
class Record:
    """One event received from a printer (or a connect/disconnect)."""
    sid: str
    event: str
    data: Any
    t: float                       # time.monotonic() on receipt
    serial: Optional[str] = None   # serial the sid was authenticated as, else
                                   # data["serialNumber"] (register: the serial
                                   # it was given)
    authed: bool = False           # sid was authenticated when this arrived
    verified: Optional[bool] = None  # hello only: did the signature verify


@dataclass
class Upload:
    """One multipart POST to the S3-style upload endpoint."""
    path: str
    fields: List[Tuple[str, str]]  # plain form fields, in received order
    file_field_name: Optional[str]
    filename: Optional[str]
    content_type: Optional[str]
    data: bytes
    order: List[str] = field(default_factory=list)  # every part name, in order
    problems: List[str] = field(default_factory=list)  # what S3 would reject
    t: float = 0.0


# --- helpers for tests that play the printer with the pure-Python rsa package

def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def spki_pem(pub: rsa.PublicKey) -> str:
    """SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") for an rsa.PublicKey."""
    pkcs1 = pub.save_pkcs1("DER")
    # AlgorithmIdentifier { rsaEncryption, NULL }
    alg = bytes.fromhex("300d06092a864886f70d0101010500")
    bits = b"\x03" + _der_len(len(pkcs1) + 1) + b"\x00" + pkcs1
    der = b"\x30" + _der_len(len(alg) + len(bits)) + alg + bits
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines)
            + "\n-----END PUBLIC KEY-----\n")


def sign_challenge(challenge: str, priv: rsa.PrivateKey) -> str:
    """hello signature: base64(RSASSA-PKCS1-v1_5 SHA-256 over UTF-8 challenge)."""
    return base64.b64encode(
        rsa.sign(challenge.encode("utf-8"), priv, "SHA-256")).decode("ascii")


def _free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _short(obj, limit=160):
    s = repr(obj)
    return s if len(s) <= limit else s[:limit] + "..."


class PolarEmulator:
    # knobs (plain attributes; may be changed while running)
    hello_response = "SUCCESS"   # "SUCCESS" | "FAILED" | "DELETED" | None (never answer)
    register_reason = None       # e.g. "SERVER_ERROR": every register FAILS with it
    answer_register = True       # False: never answer register
    unregister_status = "SUCCESS"
    geturl_expires = 3600
    geturl_status = "SUCCESS"
    max_size = 150000
    upload_status = 204
    upload_strict = False        # True: answer 403 to uploads with problems
    send_welcome = True          # False: no welcome on connect (lost welcome)
    welcome_data = None          # not None: sent as the welcome instead of
                                 # {"challenge": ...} (a string, a list...)
    register_delay = 0.          # seconds before registerResponse goes out
    refuse = None                # new connections during an outage:
                                 # "503": HTTP 503 on /socket.io/ (refused at
                                 #   the Engine.IO handshake)
                                 # "reset": TCP dropped at the handshake
                                 # "close": accepted, then a Socket.IO
                                 #   disconnect before any welcome

    def __init__(self, host="127.0.0.1", port=0, ssl_context=None):
        self.host = host
        self.port = port or _free_port(host)
        self.ssl_context = ssl_context   # given: https:// on the same port
        self.url = "%s://%s:%d" % ("https" if ssl_context else "http",
                                   host, self.port)
        self._lock = threading.Condition(threading.RLock())
        self._events: List[Record] = []
        self._uploads: List[Upload] = []
        self._file_requests: List[Tuple[str, dict]] = []
        self._accounts = {}          # email.lower() -> pin
        self._printers = {}          # serial -> dict
        self._history = {}           # (email.lower(), MAC) -> serial, survives unregister
        self._serials = itertools.count(FIRST_SERIAL)
        self._files = {}             # name -> serve options
        self._urls = {}              # upload n -> what getUrl issued
        self._url_ids = itertools.count(1)
        # per-connection state, owned by the loop thread (read under _lock)
        self._connected = set()
        self._challenges = {}        # sid -> challenge not yet used
        self._auth = {}              # sid -> serial
        self._transports = set()     # live aiohttp request transports
        self._peak = {}              # serial -> most authenticated sids at once
        self._sio = None
        self._runner = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop,
                                        name="polar-emulator", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ lifecycle

    def _run_loop(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro, timeout=15.0):
        if threading.current_thread() is self._thread:
            raise RuntimeError("PolarEmulator methods must not be called from its loop")
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("PolarEmulator is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def running(self):
        return self._runner is not None

    def start(self):
        self._call(self._start())
        return self

    def stop(self):
        if not self._loop.is_closed():
            self._call(self._stop())

    def close(self):
        if self._loop.is_closed():
            return
        self.stop()
        try:
            self._call(self._cancel_tasks())
        except Exception:
            log.exception("cancelling emulator tasks")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _cancel_tasks(self):
        # engine.io leaves ping tasks sleeping; end them so close() is clean.
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    async def _start(self):
        if self._runner is not None:
            return
        # A fresh server per start(): nothing of a previous run's sessions leaks in.
        sio = socketio.AsyncServer(
            async_mode="aiohttp", cors_allowed_origins="*",
            # CONNECT goes out before our connect handler runs, so welcome
            # follows "40" on the wire as with the real cloud
            always_connect=True,
            # Handle events one by one, in order of arrival.
            async_handlers=False,
            logger=False, engineio_logger=False)
        sio.on("connect", self._guard(self._on_connect))
        sio.on("disconnect", self._guard(self._on_disconnect))
        sio.on("register", self._guard(self._on_register))
        sio.on("hello", self._guard(self._on_hello))
        sio.on("unregister", self._guard(self._on_unregister))
        sio.on("getUrl", self._guard(self._on_geturl))
        sio.on("*", self._guard(self._on_other))
        app = web.Application(middlewares=[self._track_transport])
        sio.attach(app)
        app.router.add_get("/files/{name}", self._http_file)
        app.router.add_post("/upload/{n}", self._http_upload)
        # Short: long-poll handlers otherwise hold stop() for the full timeout.
        runner = web.AppRunner(app, shutdown_timeout=0.25, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True,
                           ssl_context=self.ssl_context)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                await site.start()
                break
            except OSError as e:
                # The port can linger briefly after stop(); retry, don't flake.
                if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    await runner.cleanup()
                    raise
                await asyncio.sleep(0.05)
        self._sio, self._runner = sio, runner

    async def _stop(self):
        runner, sio = self._runner, self._sio
        if runner is None:
            return
        self._runner = None
        # Outage: stop accepting first, then drop every connection at the TCP
        # level (no Socket.IO DISCONNECT), so clients see a dead link and
        # their auto-reconnect kicks in, as in a real cloud outage.
        for site in list(runner.sites):
            await site.stop()
        self._abort_transports()
        await asyncio.sleep(0.05)     # let engine.io notice the drops
        await runner.cleanup()
        try:
            await sio.shutdown()
        except Exception:
            log.exception("socketio shutdown")
        self._sio = None
        # Whatever engine.io did not report gets a disconnect record anyway.
        for sid in sorted(self._connected):
            self._gone(sid)

    def _abort_transports(self):
        for tr in list(self._transports):
            try:
                tr.abort()
            except Exception:
                pass
        self._transports.clear()

    @web.middleware
    async def _track_transport(self, request, handler):
        tr = request.transport
        if self.refuse in ("503", "reset") \
                and request.path.startswith("/socket.io"):
            if self.refuse == "503":
                return web.Response(status=503, text="emulated outage")
            tr.abort()
            raise asyncio.CancelledError()
        if tr is not None:
            self._transports.add(tr)
        try:
            return await handler(request)
        finally:
            self._transports.discard(tr)

    def _guard(self, fn):
        # A bug in a handler must be logged, never take the server down.
        async def wrapper(*args):
            try:
                return await fn(*args)
            except Exception:
                log.exception("emulator handler %s failed", fn.__name__)
        wrapper.__name__ = fn.__name__
        return wrapper

    # ------------------------------------------------------------ accounts/state

    def add_account(self, email, pin):
        with self._lock:
            self._accounts[email.lower()] = str(pin)

    def delete_printer(self, serial):
        """Mark a printer deleted in the cloud: its next hello gets DELETED."""
        with self._lock:
            self._printers[serial]["deleted"] = True

    def forget_printer(self, serial):
        """Remove a printer entirely (as if it never registered)."""
        with self._lock:
            self._printers.pop(serial, None)
            for k, v in list(self._history.items()):
                if v == serial:
                    del self._history[k]

    @property
    def printers(self):
        with self._lock:
            return copy.deepcopy(self._printers)

    @property
    def events(self):
        with self._lock:
            return list(self._events)

    @property
    def uploads(self):
        with self._lock:
            return list(self._uploads)

    @property
    def file_requests(self):
        """(name, request headers) for every GET of a served file."""
        with self._lock:
            return list(self._file_requests)

    def mark(self):
        with self._lock:
            return len(self._events)

    def records(self, event=None, serial=None):
        with self._lock:
            return [r for r in self._events
                    if (event is None or r.event == event)
                    and (serial is None or r.serial == serial)]

    def take_peak_sessions(self):
        """serial -> the most connections authenticated as it at once since
        the last call (then counting starts again from the live ones)."""
        with self._lock:
            peak = dict(self._peak)
            self._peak = {}
            for serial in self._auth.values():
                self._peak[serial] = self._peak.get(serial, 0) + 1
            return peak

    def connected_sids(self):
        with self._lock:
            return sorted(self._connected)

    def authenticated_sids(self, serial=None):
        with self._lock:
            return sorted(s for s, ser in self._auth.items()
                          if serial is None or ser == serial)

    def wait_for(self, event, pred=None, timeout=10.0, start=0):
        def match(r):
            if r.event != event:
                return False
            if pred is None:
                return True
            try:
                return bool(pred(r.data))
            except Exception:   # e.g. KeyError on a payload of another shape
                return False

        deadline = time.monotonic() + timeout
        with self._lock:
            i = start
            while True:
                while i < len(self._events):
                    if match(self._events[i]):
                        return self._events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            raise AssertionError(
                "no %r event%s within %.1fs (from index %d); received:\n%s"
                % (event, " matching predicate" if pred else "", timeout,
                   start, self._summary(start)))

    def _summary(self, start=0, limit=40, sids=None):
        rows = [(i, r) for i, r in list(enumerate(self._events))[start:]
                if sids is None or r.sid in sids]
        lines = ["  [%d] %+.2fs %s sid=%s%s%s %s" % (
            i, r.t - time.monotonic(), r.event, r.sid[:6],
            " serial=%s" % r.serial if r.serial else "",
            "" if r.authed or r.event in ("connect", "disconnect") else " (unauthenticated)",
            _short(r.data)) for i, r in rows[-limit:]]
        if len(rows) > limit:
            lines.insert(0, "  ... %d earlier" % (len(rows) - limit))
        return "\n".join(lines) or "  (nothing)"

    def _record(self, sid, event, data, serial=None, verified=None):
        with self._lock:
            authed = sid in self._auth
            if serial is None:
                serial = self._auth.get(sid)
            if serial is None and isinstance(data, dict) \
                    and isinstance(data.get("serialNumber"), str):
                serial = data["serialNumber"]
            rec = Record(sid, event, data, time.monotonic(), serial, authed, verified)
            self._events.append(rec)
            self._lock.notify_all()
            return rec

    # ------------------------------------------------------------ sending

    def emit(self, event, data, serial=None, sid=None):
        """Send a cloud->printer event. Returns how many connections it went to."""
        return self._call(self._emit(event, data, serial, sid))

    async def _emit(self, event, data, serial, sid):
        return await self._emit_many([(event, (data,))], serial, sid)

    def _targets(self, serial, sid):
        if sid is not None:
            return [sid]
        if serial is not None:
            return self.authenticated_sids(serial)
        return self.connected_sids()

    def emit_many(self, packets, serial=None, sid=None, timeout=120.):
        """Send [(event, args tuple), ...] in order; several args go out as
        several Socket.IO arguments, () as none. Returns the targets."""
        return self._call(self._emit_many(packets, serial, sid), timeout)

    async def _emit_many(self, packets, serial, sid):
        if self._sio is None:
            return 0
        targets = self._targets(serial, sid)
        for event, args in packets:
            data = args[0] if len(args) == 1 else (tuple(args) or None)
            for t in targets:
                await self._sio.emit(event, data, to=t)
        return len(targets)

    def emit_raw(self, texts, serial=None, sid=None, timeout=120.):
        """Send Socket.IO packets as given (e.g. '2["print",[[[...]]]]':
        nesting too deep for json.dumps); returns the targets."""
        return self._call(self._emit_raw(texts, serial, sid), timeout)

    async def _emit_raw(self, texts, serial, sid):
        if self._sio is None:
            return 0
        # raw packets go to the Engine.IO session under the Socket.IO one
        targets = [self._sio.manager.eio_sid_from_sid(t, "/")
                   for t in self._targets(serial, sid)]
        for text in texts:
            for t in targets:
                if t is not None:
                    await self._sio.eio.send(t, text)
        return len(targets)

    def disconnect_all(self, abrupt=False):
        """Kick every client but keep listening.

        abrupt=False: Socket.IO server-side disconnect (python-socketio
        clients do NOT auto-reconnect after that).  abrupt=True: drop the TCP
        connections (clients see a dead link and auto-reconnect).
        """
        self._call(self._disconnect_all(abrupt))

    async def _disconnect_all(self, abrupt):
        if self._sio is None:
            return
        if abrupt:
            self._abort_transports()
            return
        for sid in self.connected_sids():
            await self._sio.disconnect(sid)

    # ------------------------------------------------------------ socket.io handlers

    async def _on_connect(self, sid, environ, auth=None):
        challenge = secrets.token_urlsafe(24)   # 32 url-safe chars
        with self._lock:
            self._connected.add(sid)
            self._challenges[sid] = challenge
        self._record(sid, "connect", {})
        if self.refuse == "close":
            asyncio.ensure_future(self._sio.disconnect(sid))
            return
        if self.send_welcome:
            welcome = {"challenge": challenge} if self.welcome_data is None \
                else self.welcome_data
            await self._sio.emit("welcome", welcome, to=sid)

    async def _on_disconnect(self, sid, reason=None):
        self._gone(sid)

    def _gone(self, sid):
        with self._lock:
            if sid not in self._connected:
                return
            self._record(sid, "disconnect", {})
            self._connected.discard(sid)
            self._challenges.pop(sid, None)
            self._auth.pop(sid, None)

    async def _on_other(self, event, sid, *args):
        self._record(sid, event, args[0] if len(args) == 1 else list(args))

    async def _on_register(self, sid, *args):
        data = args[0] if len(args) == 1 else list(args)
        shown = copy.deepcopy(data)
        if isinstance(shown, dict) and "pin" in shown:
            shown["pin"] = "***"          # never keep the PIN in records
        reply, serial = self._register(data)
        self._record(sid, "register", shown, serial=serial)
        if reply is not None and self.register_delay:
            asyncio.ensure_future(self._late_register_response(sid, reply))
        elif reply is not None:
            await self._sio.emit("registerResponse", reply, to=sid)

    async def _late_register_response(self, sid, reply):
        await asyncio.sleep(self.register_delay)
        self._record(sid, "late registerResponse", reply)
        if self._sio is not None:
            await self._sio.emit("registerResponse", reply, to=sid)

    def _register(self, data):
        if not self.answer_register:
            return None, None
        if self.register_reason:
            return {"status": "FAILED", "reason": self.register_reason}, None
        fail = lambda reason: ({"status": "FAILED", "reason": reason}, None)
        if not isinstance(data, dict):
            return fail("INVALID_REQUEST")
        mfg = data.get("mfg")
        if not mfg:
            return fail("MFG_MISSING")
        if mfg not in MFG_CODES:
            return fail("MFG_UNKNOWN")
        email, pin = data.get("email"), data.get("pin")
        with self._lock:
            if not isinstance(email, str) or not isinstance(pin, str) \
                    or self._accounts.get(email.lower()) != pin:
                return fail("EMAIL_PIN_ERROR")
        key = data.get("publicKey")
        if not isinstance(key, str) or "-----BEGIN PUBLIC KEY-----" not in key:
            return fail("INVALID_KEY")
        try:
            rsa.PublicKey.load_pkcs1_openssl_pem(key.encode())
        except Exception:
            return fail("INVALID_KEY")
        info = data.get("myInfo") if isinstance(data.get("myInfo"), dict) else {}
        mac = info.get("MAC")
        mac = mac.upper() if isinstance(mac, str) and mac else None
        with self._lock:
            if mac is not None:
                for p in self._printers.values():
                    if p["mac"] == mac and p["email"].lower() != email.lower():
                        return fail("FORBIDDEN")
            # Same account + same device gets its old serial back
            serial = self._history.get((email.lower(), mac)) if mac else None
            if serial is None:
                serial = SERIAL_FMT % next(self._serials)
                if mac:
                    self._history[(email.lower(), mac)] = serial
            stored = {k: v for k, v in copy.deepcopy(data).items() if k != "pin"}
            self._printers[serial] = {
                "email": email, "public_key": key, "mac": mac, "mfg": mfg,
                "register": stored, "deleted": False}
        return {"status": "SUCCESS", "reason": "SUCCESS", "serialNumber": serial}, serial

    async def _on_hello(self, sid, *args):
        data = args[0] if len(args) == 1 else list(args)
        reply, verified, serial = self._hello(sid, data)
        self._record(sid, "hello", copy.deepcopy(data), verified=verified)
        if reply is not None:
            await self._sio.emit("helloResponse", reply, to=sid)

    def _hello(self, sid, data):
        failed = lambda msg: {"status": "FAILED", "message": msg}
        with self._lock:
            challenge = self._challenges.pop(sid, None)   # single use
            if not isinstance(data, dict):
                return failed("hello payload must be an object"), False, None
            serial = data.get("serialNumber")
            printer = self._printers.get(serial) if isinstance(serial, str) else None
            if printer is None:
                return failed("unknown serial number %r" % (serial,)), False, None
            key_pem = printer["public_key"]
            deleted = printer["deleted"]
        verified = challenge is not None and _verify(challenge, data.get("signature"), key_pem)
        if deleted:
            return {"status": "DELETED"}, verified, serial
        if challenge is None:
            return failed("no challenge for this connection (already used?)"), False, serial
        if not verified:
            return failed("signature verification failed"), False, serial
        status = self.hello_response
        if status in ("SUCCESS", None):
            with self._lock:
                self._auth[sid] = serial
                n = sum(1 for s in self._auth.values() if s == serial)
                self._peak[serial] = max(self._peak.get(serial, 0), n)
        if status is None:
            return None, True, serial
        if status == "FAILED":
            return failed("authentication failed (emulated)"), True, serial
        return {"status": status}, True, serial

    async def _on_unregister(self, sid, *args):
        data = args[0] if len(args) == 1 else list(args)
        self._record(sid, "unregister", copy.deepcopy(data))
        serial = data.get("serialNumber") if isinstance(data, dict) else None
        with self._lock:
            if serial is None or self._auth.get(sid) != serial:
                reply = {"status": "FAILED", "message": "not authenticated as %r" % (serial,)}
            elif self.unregister_status == "SUCCESS":
                reply = {"status": "SUCCESS", "message": "Printer unregistered"}
                self._printers.pop(serial, None)
                for s, ser in list(self._auth.items()):
                    if ser == serial:
                        del self._auth[s]
            else:
                reply = {"status": self.unregister_status,
                         "message": "unregister failed (emulated)"}
        await self._sio.emit("unregisterResponse", reply, to=sid)

    async def _on_geturl(self, sid, *args):
        data = args[0] if len(args) == 1 else list(args)
        self._record(sid, "getUrl", copy.deepcopy(data))
        if not isinstance(data, dict):
            return
        n = next(self._url_ids)
        kind = data.get("type")
        serial = data.get("serialNumber")
        ext = "mp4" if kind == "timelapse" else "jpg"
        fields = {
            "key": "printers/%s/%s/%d.%s" % (serial, kind, n, ext),
            "acl": "private",
            "Policy": base64.b64encode(b'{"expiration":"emulated"}').decode(),
            "X-Amz-Signature": hashlib.sha256(b"sig%d" % n).hexdigest(),
        }
        reply = {
            "serialNumber": serial,
            "status": self.geturl_status,
            "type": kind,
            "url": "%s/upload/%d" % (self.url, n),
            "fields": fields,
            "expires": self.geturl_expires,
            "maxSize": self.max_size,
            "jobID": data.get("jobId") or "0",
        }
        if self.geturl_status != "SUCCESS":
            reply["message"] = "getUrl failed (emulated)"
        else:
            with self._lock:
                self._urls[str(n)] = {
                    "fields": dict(fields), "max_size": self.max_size,
                    "expires_at": time.monotonic() + float(self.geturl_expires)}
        await self._sio.emit("getUrlResponse", reply, to=sid)

    # ------------------------------------------------------------ HTTP

    def serve_file(self, name, content: bytes, status=200, truncate_at=None,
                   content_length=None, delay=0.0):
        """Serve content at GET <url>/files/<name>; returns that URL.

        truncate_at: send only that many body bytes, then close the connection.
        content_length: value of the Content-Length header (default: the full
        size). delay: seconds to wait before answering.
        """
        with self._lock:
            self._files[name] = dict(content=bytes(content), status=status,
                                     truncate_at=truncate_at,
                                     content_length=content_length, delay=delay)
        return "%s/files/%s" % (self.url, urllib.parse.quote(name, safe=""))

    async def _http_file(self, request):
        name = request.match_info["name"]
        with self._lock:
            spec = self._files.get(name)
            self._file_requests.append((name, dict(request.headers)))
        if spec is None:
            raise web.HTTPNotFound()
        if spec["delay"]:
            await asyncio.sleep(spec["delay"])
        content = spec["content"]
        declared = spec["content_length"]
        if declared is None:
            declared = len(content)
        body = content if spec["truncate_at"] is None else content[:spec["truncate_at"]]
        body = body[:declared]
        resp = web.StreamResponse(status=spec["status"])
        resp.content_type = "application/octet-stream"
        resp.content_length = declared
        await resp.prepare(request)
        if request.method != "HEAD":
            await resp.write(body)
        if len(body) < declared and request.method != "HEAD":
            # Cut the connection mid-body; close() still flushes what was written.
            await asyncio.sleep(0.05)
            request.transport.close()
            raise asyncio.CancelledError()
        return resp

    async def _http_upload(self, request):
        n = request.match_info["n"]
        up = Upload(path=request.path, fields=[], file_field_name=None,
                    filename=None, content_type=None, data=b"", t=time.monotonic())
        try:
            reader = await request.multipart()
            async for part in reader:
                value = await part.read()
                up.order.append(part.name)
                if part.filename is not None:
                    if up.file_field_name is not None:
                        up.problems.append("more than one file part")
                        continue
                    up.file_field_name = part.name
                    up.filename = part.filename
                    up.content_type = part.headers.get("Content-Type")
                    up.data = bytes(value)
                else:
                    if up.file_field_name is not None:
                        up.problems.append("field %r after the file part" % part.name)
                    up.fields.append((part.name, value.decode("utf-8", "replace")))
        except Exception as e:
            up.problems.append("bad multipart body: %s" % e)
        with self._lock:
            issued = self._urls.get(n)
        up.problems.extend(self._check_upload(up, issued))
        with self._lock:
            self._uploads.append(up)
        if self.upload_strict and up.problems:
            return web.Response(status=403, text="; ".join(up.problems))
        return web.Response(status=self.upload_status)

    @staticmethod
    def _check_upload(up, issued):
        """What a real S3 POST policy would object to."""
        if issued is None:
            return ["unknown upload URL %s" % up.path]
        problems = []
        got = dict(up.fields)
        for k, v in issued["fields"].items():
            if k not in got:
                problems.append("missing field %r" % k)
            elif got[k] != v:
                problems.append("field %r changed" % k)
        problems += ["unexpected field %r" % k for k in got if k not in issued["fields"]]
        if up.file_field_name is None:
            problems.append("no file part")
        elif up.file_field_name != "file":
            problems.append("file part named %r, not 'file'" % up.file_field_name)
        if up.file_field_name is not None and not up.data:
            problems.append("empty file")
        if len(up.data) > issued["max_size"]:
            problems.append("file of %d bytes exceeds maxSize %d"
                            % (len(up.data), issued["max_size"]))
        if up.t > issued["expires_at"]:
            problems.append("upload URL expired")
        return problems


def _verify(challenge, signature, key_pem):
    if not isinstance(signature, str) or not signature:
        return False
    try:
        sig = base64.b64decode(signature, validate=True)
        key = rsa.PublicKey.load_pkcs1_openssl_pem(key_pem.encode())
        return rsa.verify(challenge.encode("utf-8"), sig, key) == "SHA-256"
    except Exception:
        return False
