"""The one Socket.IO connection to Polar Cloud, run by one background thread.

Everything here happens on the connector thread: socket I/O, reading and
writing the state directory, waiting on child processes (RSA, downloads,
camera).  Klippy talks to it only through ``inbox`` (``put_nowait`` never
blocks the reactor) and hears back through the ``host`` callbacks, which the
Klippy module routes to the reactor with ``register_async_callback``.

python-socketio's own reconnection is off: this loop is the single authority
that connects, so there is never a second client racing the first (a bug
Polar3D's connector had), and it reconnects forever with capped, jittered
backoff.  A 30 s handshake watchdog forces a new connection when the cloud
never confirms the hello (reference §1.6, §9.1).
"""
import logging
import queue
import random
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

from . import VERSION
from . import keys
from . import protocol as P
from .child import ChildError
from .jobs import JobTracker
from .store import StateStore
from .printjobs import CloudPrints
from .uploads import CameraUploads, resolve_camera

log = logging.getLogger("polar_cloud")

HANDSHAKE_TIMEOUT = 30.
REGISTER_TIMEOUT = 60.
UNREGISTER_TIMEOUT = 30.
CONNECT_TIMEOUT = 10.
HELLO_FAILED_RETRY = 300.
UPDATE_STATUS_TIME = 600.   # report 8 this long after asking for an update
MAX_CHALLENGE = 4096
ALIVE_CHECK_INTERVAL = 2.
WEBCAM_WAIT = 5.    # at start, wait this long for Moonraker's webcam
# Printer commands the reactor carries out (see klippy_extras/polar_cloud.py)
REACTOR_COMMANDS = frozenset([
    "pause", "resume", "command", "temperature", "jogPrinter",
    "customCommand", "connectPrinter", "update"])
HANDSHAKE_EVENTS = frozenset([
    "welcome", "registerResponse", "helloResponse", "delete"])
QUIET_LIBRARIES = ("socketio", "engineio", "socketio.client",
                   "engineio.client", "websocket", "urllib3")


class Backoff:
    """Capped exponential backoff with jitter (delays in seconds)."""

    def __init__(self, base=2., cap=60., rand=random.random):
        self.base = base
        self.cap = cap
        self.rand = rand
        self.failures = 0

    def next_delay(self):
        ceiling = min(self.cap, self.base * (2 ** self.failures))
        self.failures = min(self.failures + 1, 16)
        # "equal jitter": at least half the ceiling, so retries never bunch
        return ceiling / 2. + self.rand() * ceiling / 2.

    def reset(self):
        self.failures = 0


def detect_mac():
    node = uuid.getnode()
    if (node >> 40) & 1:
        return None   # random multicast value: Python found no real MAC
    return ":".join("%02X" % ((node >> s) & 0xff) for s in range(40, -1, -8))


def local_ip(toward_host):
    """LAN address of the interface that routes to the cloud host.

    A UDP "connect" sends no packet; it only asks the kernel for a route."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((toward_host or "127.0.0.1", 443))
            return s.getsockname()[0]
        finally:
            s.close()
    except OSError:
        return "127.0.0.1"


class CloudConnection:
    def __init__(self, host, settings):
        self.host = host
        self.settings = settings
        self.url = settings["url"]
        self.store = StateStore(settings["state_dir"])
        self.inbox = queue.Queue()
        self.thread = None
        self.stopping = threading.Event()
        self.backoff = Backoff()
        self.cadence = P.StatusCadence(settings.get("status_interval",
                                                    P.ACTIVE_INTERVAL))
        self.jobs = None
        self.state = {}
        self.client = None
        self.generation = 0
        self.authenticated = False
        self.challenge = None
        self.welcomed = False
        self.hello_pending = False
        self.connected_at = None
        self.next_attempt = 0.
        self.next_alive_check = 0.
        self.snapshot = None
        self.last_status = None
        self.last_error = None
        self.phase = "starting"
        self.pending_register = None
        self.pending_unregister = None
        self.logged_errors = set()
        self.camera = {}
        self.hello_camera = None
        self.webcam = None
        # hello is the only place the cloud learns the camera: give the
        # Moonraker shim a moment to hand it over before the first hello
        self.webcam_wait_until = 0. if settings.get("camera") else None
        self.uploads = CameraUploads(self.emit,
                                     lambda fn: self.post("call", fn),
                                     settings)
        self.public_key = None
        self.prints = CloudPrints(self)
        self.updating_until = 0.
        self.capabilities = []
        self.online_extras = None
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
        log.setLevel(logging.DEBUG if settings.get("debug") else logging.INFO)

    # --- called from the reactor (thread-safe, never block) -------------

    def start(self):
        self.thread = threading.Thread(target=self._run, name="polar_cloud",
                                       daemon=True)
        self.thread.start()

    def stop(self, timeout=5.):
        self.stopping.set()
        self.inbox.put_nowait(("wake",))
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                frame = sys._current_frames().get(self.thread.ident)
                log.warning("polar_cloud: connector thread still busy at"
                            " shutdown:\n%s", "".join(
                                traceback.format_stack(frame)) if frame
                            else "?")

    def request_stop(self):
        """Stop without waiting (safe from the connector thread itself)."""
        self.stopping.set()
        self.inbox.put_nowait(("wake",))

    def push_snapshot(self, snap, force=False):
        self.inbox.put_nowait(("snapshot", snap, force))

    def request_register(self, email, pin, reply):
        self.inbox.put_nowait(("register", email, pin, reply))

    def request_unregister(self, reply, force=False):
        self.inbox.put_nowait(("unregister", reply, force))

    def post(self, *item):
        """Hand an item to the connector thread (see _dispatch)."""
        self.inbox.put_nowait(item)

    # --- thread main loop ----------------------------------------------

    def _run(self):
        try:
            self._load_state()
            while not self.stopping.is_set():
                try:
                    item = self.inbox.get(timeout=self._wait_time())
                except queue.Empty:
                    item = None
                # A bug in one step must not take the printer offline for
                # good: log it (once per kind) and carry on.
                try:
                    if item is not None:
                        self._dispatch(item)
                    if not self.stopping.is_set():
                        self._tick(time.monotonic())
                except Exception as e:
                    key = ("internal", repr(e))
                    if key not in self.logged_errors:
                        self.logged_errors.add(key)
                        log.exception("polar_cloud: internal error")
                    self.last_error = "internal error (see klippy.log)"
        finally:
            self.prints.stop()
            self._disconnect()

    def _wait_time(self):
        return 0.25 if self.sio_connected or self.pending_register else 1.

    def _dispatch(self, item):
        kind = item[0]
        if kind == "snapshot":
            self._on_snapshot(item[1], item[2])
        elif kind == "sio":
            if item[1] == self.generation:
                self._on_socket_event(item[2], item[3])
        elif kind == "register":
            self._start_register(item[1], item[2], item[3])
        elif kind == "unregister":
            self._start_unregister(item[1], item[2])
        elif kind == "call":
            item[1]()
        elif kind == "online_extras":
            self.online_extras = item[1]
            self._send_online_extras()
        elif kind == "webcam":
            self.webcam = item[1]
            self.webcam_wait_until = 0.
            self._refresh_camera()
        elif kind == "timelapse":
            self.uploads.on_timelapse(item[1], item[2], self.jobs,
                                      time.monotonic())
            self.cadence.force()
        elif kind == "updating":
            running = item[1]
            self.updating_until = time.monotonic() + (
                UPDATE_STATUS_TIME if running else 0.)
            self.cadence.force()

    def _tick(self, now):
        if now >= self.next_alive_check:
            # a thread outliving its printer object must notice and stop
            self.next_alive_check = now + ALIVE_CHECK_INTERVAL
            self.host.check_alive()
            if self.stopping.is_set():
                return
        if self.webcam_wait_until is None:
            self.webcam_wait_until = now + WEBCAM_WAIT
        if self._wants_connection() and not self.sio_connected \
                and now >= self.next_attempt \
                and (now >= self.webcam_wait_until or self.pending_register):
            self._connect()
        if self.sio_connected and not self.authenticated \
                and self.pending_register is None \
                and now - self.connected_at > HANDSHAKE_TIMEOUT:
            self._log_error("handshake", "no answer to hello within %ds;"
                            " reconnecting" % (HANDSHAKE_TIMEOUT,))
            self._drop_connection(self.backoff.next_delay())
        if self.pending_register and now > self.pending_register["deadline"]:
            self._finish_register(error="no answer from Polar Cloud within"
                                  " %d s" % (REGISTER_TIMEOUT,))
            self._drop_connection(0.)
        if self.pending_unregister and \
                now > self.pending_unregister["deadline"]:
            self._finish_unregister(error="no answer from Polar Cloud within"
                                    " %d s" % (UNREGISTER_TIMEOUT,))
        if self.authenticated:
            self._send_job_events()
            self._maybe_send_status(now)
            self.uploads.tick(now, self.serial, self.last_status,
                              self._printing_cloud_job())
        self._save_jobs_if_changed()

    # --- state on disk --------------------------------------------------

    def _load_state(self):
        self.state = self.store.load()
        self.jobs = JobTracker(self.state.get("active_job"),
                               self.state.get("pending_job_events"))
        self.phase = "connecting" if self.serial else "unregistered"
        if self.serial and not self.store.has_key():
            self.last_error = ("key file %s is missing; register again"
                               % (self.store.key_path,))
        self._refresh_camera()
        self._publish()

    @property
    def sio_connected(self):
        return self.client is not None

    @property
    def serial(self):
        return self.state.get("serial")

    def _save_state(self):
        try:
            self.store.save(self.state)
            return True
        except OSError as e:
            self._log_error("save", "cannot write %s: %s"
                            % (self.store.state_path, e))
            return False

    def _save_jobs_if_changed(self):
        if self.jobs is None or not self.jobs.changed:
            return
        job, events = self.jobs.persistent()
        self.state["active_job"] = job
        self.state["pending_job_events"] = events
        if self._save_state():
            self.jobs.changed = False

    def _identity(self):
        mac = self.state.get("mac") or detect_mac() or "00:00:00:00:00:00"
        host = urllib.parse.urlsplit(self.url).hostname
        machine = P.MACHINE_TYPES.get(self.settings.get("printer_type"),
                                      "Cartesian")
        return {"mac": mac, "local_ip": local_ip(host),
                "mfg_sn": "KL-" + mac.replace(":", ""),
                "machine_type": machine,
                "printer_make": self.settings.get("printer_make") or machine,
                "version": VERSION}

    # --- connection -----------------------------------------------------

    def _wants_connection(self):
        if self.pending_register:
            return True
        return bool(self.serial) and self.phase not in ("unregistered",)

    def _connect(self):
        import socketio
        self.generation += 1
        gen = self.generation
        client = socketio.Client(reconnection=False, handle_sigint=False,
                                 logger=False, engineio_logger=False)

        def forward(event, *args):
            self.inbox.put_nowait(("sio", gen, event,
                                   args[0] if args else None))
        client.on("connect", lambda: forward("connect"))
        client.on("disconnect", lambda *a: forward("disconnect"))
        client.on("*", forward)
        self.phase = "connecting"
        self._publish()
        try:
            client.connect(self.url, transports=["websocket"],
                           wait_timeout=CONNECT_TIMEOUT)
        except Exception as e:
            delay = self.backoff.next_delay()
            self._log_error("connect", "cannot reach Polar Cloud at %s (%s)"
                            % (self.url, e))
            log.debug("polar_cloud: next attempt in %.1f s", delay)
            self.next_attempt = time.monotonic() + delay
            self.phase = "disconnected" if self.serial else "unregistered"
            if self.pending_register:
                self._finish_register(error="cannot reach Polar Cloud at %s"
                                      " (%s)" % (self.url, e))
            self._publish()
            self._close_client(client)
            return
        if self.stopping.is_set():
            self._close_client(client)
            return
        self.client = client
        self.uploads.reset_connection()
        self.authenticated = False
        self.challenge = None
        self.welcomed = self.hello_pending = False
        self.connected_at = time.monotonic()
        self.cadence.reset()
        log.info("polar_cloud: connected to %s", self.url)

    def _close_client(self, client):
        try:
            client.disconnect()
        except Exception:
            log.debug("polar_cloud: disconnect failed", exc_info=True)

    def _disconnect(self):
        client, self.client = self.client, None
        self.generation += 1   # ignore whatever the old client still says
        self.authenticated = False
        self.challenge = None
        self.welcomed = self.hello_pending = False
        if client is not None:
            self._close_client(client)

    def _drop_connection(self, retry_in):
        self._disconnect()
        self.next_attempt = time.monotonic() + retry_in
        self.phase = "disconnected" if self.serial else "unregistered"
        self._publish()

    def emit(self, event, data):
        if self.client is None:
            return False
        try:
            self.client.emit(event, data)
        except Exception as e:
            self._log_error("emit", "cannot send %s: %s" % (event, e))
            self._drop_connection(self.backoff.next_delay())
            return False
        log.debug("polar_cloud: sent %s", event)
        return True

    # --- socket events --------------------------------------------------

    def _on_socket_event(self, event, data):
        if event == "connect":
            return
        if event == "disconnect":
            # our own disconnects are never seen here (stale generation):
            # this one is the cloud's or the network's, so back off
            self._disconnect()
            delay = self.backoff.next_delay()
            self._log_error("disconnect", "connection to Polar Cloud lost;"
                            " reconnecting")
            self.next_attempt = time.monotonic() + delay
            self.phase = "disconnected" if self.serial else "unregistered"
            self._publish()
            return
        if not P.accepts(event, data, self.serial):
            log.debug("polar_cloud: ignored %s (not for this printer)", event)
            return
        if event not in HANDSHAKE_EVENTS and not self.authenticated:
            log.debug("polar_cloud: ignored %s before hello", event)
            return
        log.debug("polar_cloud: received %s", event)
        handler = getattr(self, "_on_" + event, None)
        if handler is not None:
            handler(data)
        elif event in REACTOR_COMMANDS:
            self.host.cloud_command(event, data)
            self.cadence.force()
        else:
            log.debug("polar_cloud: ignored unknown event %s", event)

    def _on_welcome(self, data):
        # one welcome per connection: a later one is ignored, never a
        # reason to register or say hello again
        if self.welcomed:
            log.debug("polar_cloud: ignored a second welcome")
            return
        self.welcomed = True
        challenge = data.get("challenge") if isinstance(data, dict) else None
        if not isinstance(challenge, str) or not challenge \
                or len(challenge) > MAX_CHALLENGE:
            self._log_error("welcome", "welcome without a usable challenge")
            return
        self.challenge = challenge
        if self.pending_register:
            self._send_register()
        elif self.serial:
            self._send_hello()
        else:
            self._drop_connection(0.)

    def _send_hello(self):
        challenge, self.challenge = self.challenge, None   # single use
        try:
            signature, _pub = keys.sign_challenge(self.store.key_path,
                                                  challenge)
        except (ChildError, OSError) as e:
            self._log_error("sign", "cannot sign hello with %s: %s"
                            % (self.store.key_path, e))
            self._drop_connection(HELLO_FAILED_RETRY)
            return
        self.phase = "authenticating"
        hello = P.build_hello(self.serial, signature, self._identity(),
                              self.camera)
        self.hello_camera = self._camera_in_hello()
        self.hello_pending = True
        self.emit("hello", hello)
        self._publish()

    def _on_helloResponse(self, data):
        if not self.hello_pending:
            log.debug("polar_cloud: ignored an unexpected helloResponse")
            return
        self.hello_pending = False
        status = data.get("status") if isinstance(data, dict) else data
        message = data.get("message") if isinstance(data, dict) else None
        if status == "SUCCESS":
            self.authenticated = True
            self.backoff.reset()
            self.logged_errors.clear()
            self.last_error = None
            self.phase = "online"
            log.info("polar_cloud: online as %s", self.serial)
            self.cadence.force()
            self.host.online()   # answers with "online_extras"
            self._publish()
        elif status == "DELETED":
            self._forget_serial("this printer was deleted from Polar Cloud")
        else:
            self._log_error("hello", "Polar Cloud refused the hello: %s"
                            % (str(message or status)[:200],))
            self._drop_connection(HELLO_FAILED_RETRY)

    def _on_delete(self, data):
        self._forget_serial("this printer was removed from Polar Cloud")

    def _forget_serial(self, why):
        serial = self.serial
        self.state.pop("serial", None)
        self._save_state()
        self._disconnect()
        self.phase = "unregistered"
        self.last_error = why
        log.info("polar_cloud: %s (serial %s forgotten)", why, serial)
        self.host.console("Polar Cloud: %s. To add it again run"
                          " POLAR_REGISTER EMAIL=<email> PIN=<pin>" % (why,))
        self._publish()

    # --- registration ---------------------------------------------------

    def _start_register(self, email, pin, reply):
        if self.pending_register:
            reply({"error": "a registration is already in progress"})
            return
        if self.serial:
            reply({"error": "already registered as %s; run POLAR_UNREGISTER"
                            " first" % (self.serial,)})
            return
        self.pending_register = {"email": email, "pin": pin, "reply": reply,
                                 "deadline": time.monotonic()
                                 + REGISTER_TIMEOUT}
        self.phase = "registering"
        self._publish()
        try:
            # first registration: a new key (child process, may take a
            # minute on a Pi); an existing key is kept (reference §3.7)
            self.public_key = keys.generate_key(self.store.key_path)
        except (ChildError, OSError) as e:
            self._finish_register(error="cannot create the printer key: %s"
                                  % (e,))
            return
        self.pending_register["deadline"] = time.monotonic() + REGISTER_TIMEOUT
        if self.sio_connected and self.challenge:
            self._send_register()
        elif self.sio_connected:
            self._drop_connection(0.)   # a fresh connection brings a welcome
        else:
            self.next_attempt = 0.

    def _send_register(self):
        pending = self.pending_register
        self.challenge = None
        identity = self._identity()
        self.state["mac"] = identity["mac"]
        self.emit("register", P.build_register(
            pending["email"], pending["pin"], self.public_key, identity))

    def _on_registerResponse(self, data):
        if not self.pending_register:
            return
        serial = P.register_serial(data)
        if serial is None:
            self._finish_register(error=P.register_failure_message(data))
            self._drop_connection(0.)
            return
        self.state["serial"] = serial
        if not self._save_state():
            self.state.pop("serial", None)
            self._finish_register(error="registered, but the serial could not"
                                  " be saved in %s" % (self.store.state_dir,))
            return
        log.info("polar_cloud: registered as %s", serial)
        self._finish_register(serial=serial)
        # The cloud expects a fresh connection that authenticates (§3.6).
        self._drop_connection(0.)
        self.phase = "connecting"
        self._publish()

    def _finish_register(self, serial=None, error=None):
        pending, self.pending_register = self.pending_register, None
        if pending is None:
            return
        if serial:
            pending["reply"]({"status": "registered", "serial": serial})
        else:
            log.info("polar_cloud: registration failed: %s", error)
            self.last_error = "registration failed: %s" % (error,)
            pending["reply"]({"error": error})
        if not self.serial:
            self.phase = "unregistered"
        self._publish()

    # --- unregistration -------------------------------------------------

    def _start_unregister(self, reply, force):
        if not self.serial:
            reply({"error": "this printer is not registered"})
            return
        if force:
            self._forget_serial("unregistered locally")
            reply({"status": "unregistered"})
            return
        if not self.authenticated:
            reply({"error": "not connected to Polar Cloud, so it cannot"
                            " confirm; use FORCE=1 to forget the"
                            " registration locally"})
            return
        self.pending_unregister = {"reply": reply, "deadline":
                                   time.monotonic() + UNREGISTER_TIMEOUT}
        self.emit("unregister", {"serialNumber": self.serial})

    def _on_unregisterResponse(self, data):
        if not self.pending_unregister:
            return
        status = data.get("status") if isinstance(data, dict) else data
        if status == "SUCCESS":
            self._forget_serial("unregistered from Polar Cloud")
            self._finish_unregister()
        else:
            message = data.get("message") if isinstance(data, dict) else None
            self._finish_unregister(error="Polar Cloud refused: %s"
                                    % (str(message or status)[:200],))

    def _finish_unregister(self, error=None):
        pending, self.pending_unregister = self.pending_unregister, None
        if pending:
            pending["reply"]({"error": error} if error
                             else {"status": "unregistered"})

    # --- status ---------------------------------------------------------

    def _on_snapshot(self, snap, force):
        self.snapshot = snap
        self.jobs.update(snap, time.monotonic())
        if force:
            self.cadence.force()

    def _maybe_send_status(self, now):
        if self.snapshot is None:
            return
        job = self.jobs.status_job()
        code = self.jobs.status_code(self.snapshot)
        if now < self.updating_until and code == P.IDLE:
            code = P.UPDATING
        status = P.build_status(self.serial, code, self.snapshot, job,
                                time.time())
        if not self.cadence.due(status, now):
            return
        if self.emit("status", status):
            self.cadence.sent(status, now)
            self.jobs.status_sent()
            if code == P.COMPLETE and job and job.get("cloud") \
                    and not job.get("next_asked") \
                    and self.settings.get("send_next_print"):
                job["next_asked"] = True   # continuous printing (§6.14)
                self.emit("sendNextPrint", {"serialNumber": self.serial})
            self.last_status = status
            self.host.status_sent(status)
            self._publish()

    def _send_job_events(self):
        for event in self.jobs.take_events():
            event = dict(event, serialNumber=self.serial)
            if not self.emit("job", event):
                self.jobs.events.insert(0, event)
                return
            log.info("polar_cloud: job %s %s", event["jobId"], event["state"])
            self.jobs.changed = True
            self.cadence.force()

    # --- after hello -----------------------------------------------------

    def _send_online_extras(self):
        extras = self.online_extras
        if not self.authenticated or not extras:
            return
        self.emit("customCommandList", {"serialNumber": self.serial,
                                         "commandList": extras["commandList"]})
        self.emit("setVersion", {"serialNumber": self.serial,
                                  "runningVersion": VERSION,
                                  "latestVersion": VERSION,
                                  "klipperVersion": extras["klipper_version"]})
        self.emit("capabilities", {"serialNumber": self.serial})

    # --- camera -----------------------------------------------------------

    def _camera_in_hello(self):
        return (self.camera.get("cam_url"), self.camera.get("transform", 0),
                bool(self.camera))

    def _refresh_camera(self):
        host = urllib.parse.urlsplit(self.url).hostname
        camera = resolve_camera(self.settings.get("camera"), self.webcam,
                                local_ip(host))
        if camera == self.camera:
            return
        self.camera = camera
        self.uploads.set_camera(camera)
        log.info("polar_cloud: camera %s", camera.get("snapshot_url")
                 or camera.get("cam_url") or "none")
        self._publish()
        # The cloud learns the stream URL and orientation only from hello,
        # which cannot be repeated on a connection: reconnect to update it.
        if self.authenticated and self.hello_camera != \
                self._camera_in_hello():
            self._drop_connection(0.)

    def _on_getUrlResponse(self, data):
        if isinstance(data, dict):
            self.uploads.on_get_url_response(data, time.monotonic())

    def _printing_cloud_job(self):
        job = self.jobs.job
        if job and job.get("cloud") and self.last_status and \
                self.last_status["status"] in (P.PREPARING, P.PRINTING,
                                               P.PAUSED):
            return job["id"]
        return None

    def _on_capabilitiesResponse(self, data):
        caps = data.get("capabilities") if isinstance(data, dict) else None
        if isinstance(caps, list):
            self.capabilities = [c for c in caps if isinstance(c, str)][:50]
            log.debug("polar_cloud: cloud capabilities %s", self.capabilities)

    def _on_sendNextPrintResponse(self, data):
        log.info("polar_cloud: no next print from the cloud (%s)",
                 str(data)[:120])

    # --- cloud jobs (see printjobs.py) ------------------------------------

    def _on_print(self, data):
        self.prints.on_print(data)

    def _on_cancel(self, data):
        self.prints.on_cancel(data)

    # --- reporting ------------------------------------------------------

    def _log_error(self, key, message):
        self.last_error = message
        if len(self.logged_errors) > 100:
            self.logged_errors.clear()    # keep memory bounded in outages
        if (key, message) not in self.logged_errors:
            self.logged_errors.add((key, message))
            log.info("polar_cloud: %s", message)
        else:
            log.debug("polar_cloud: %s", message)

    def _publish(self):
        self.host.publish({
            "state": self.phase,
            "connected": self.authenticated,
            "registered": bool(self.serial),
            "serial": self.serial,
            "url": self.url,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "camera_url": self.camera.get("cam_url"),
            "snapshot_url": self.camera.get("snapshot_url"),
        })
