"""The one Socket.IO connection to Polar Cloud, run by one background thread.

Everything here happens on the connector thread: socket I/O, reading and
writing the state directory, waiting on child processes.  Klippy talks to
it only through `post()` (a queue: `put_nowait` never blocks the reactor)
and hears back through the `Host` interface (polarcloud/host.py).

python-socketio's own reconnection is off: this loop is the single
authority that connects, so there is never a second client racing the
first, and it reconnects forever with capped, jittered backoff.  A 30 s
handshake watchdog forces a new connection when the cloud never answers
the hello (docs/protocol.md#reconnecting).  The thread sleeps until the
next thing is due: a message in its inbox, a deadline, a status heartbeat.
"""
import logging
import queue
import sys
import threading
import time
import traceback

from .. import VERSION, keys
from .. import protocol as P
from ..backoff import Backoff
from ..camera import hello_fields, resolve_camera
from ..identity import detect_mac, identity, local_ip, random_mac
from ..store import StateProblem, StateStore
from ..text import clean
from .cloud_client import MAX_MESSAGE_BYTES, cloud_client
from .command_queue import CommandQueue
from .errors import ErrorLog
from .prints import CloudPrints
from .registration import Registration
from .reporter import StatusReporter
from .runner import ChildError, ChildGroup
from .session import Session, close_client
from .tlscheck import CertificateCheck, untrusted
from .uploads import CameraUploads

log = logging.getLogger("polar_cloud")

HANDSHAKE_TIMEOUT = 30.
CONNECT_TIMEOUT = 10.
HELLO_FAILED_RETRY = 300.
RECONNECT_BACKOFF = (2., 60.)
MAX_CHALLENGE = 4096
ALIVE_CHECK_INTERVAL = 2.
MAX_IDLE_WAIT = 60.
MIN_WAIT = 0.05     # between ticks when nothing new came in
WEBCAM_WAIT = 5.    # at start, wait this long for Moonraker's webcam
MAX_BATCH = 200     # inbox items handled before the next tick
MAX_WAITING_EVENTS = 500   # cloud events queued for this thread; more dropped
DROP_LINE_INTERVAL = 10.   # at most one line this often about dropped events
QUIET_LIBRARIES = ("socketio", "engineio", "socketio.client",
                   "engineio.client", "websocket", "urllib3")


class CloudConnection:
    def __init__(self, host, settings):
        self.host = host
        self.settings = settings
        self.store = StateStore(settings.state_dir)
        self.inbox = queue.Queue()
        # a flood from the cloud never grows the inbox without bound: the
        # socket's reader drops what does not fit and counts it
        self.event_slots = threading.BoundedSemaphore(MAX_WAITING_EVENTS)
        self.events_dropped = 0
        self.events_dropped_told = 0
        self.next_drop_line = 0.
        self.thread = None
        self.stopping = threading.Event()
        self.children = ChildGroup()   # the keys worker, cancelled at stop
        self.backoff = Backoff(*RECONNECT_BACKOFF)
        self.errors = ErrorLog()
        self.certificates = CertificateCheck(settings.url)
        self.state = {}            # what state.json holds
        self.state_problem = None  # why state.json could not be used
        self.state_writable = True
        self.loaded = False
        self.session = None
        self.generation = 0        # tags callbacks of the current client
        self.connecting = False
        self.failed = False        # the last connection attempt failed
        self.next_attempt = 0.
        self.next_alive_check = 0.
        self.published = None
        self.online_extras = None
        self.camera = {}
        self.webcam = None
        # hello is the only place the cloud learns the camera: give the
        # Moonraker shim a moment to hand it over before the first hello
        self.webcam_wait_until = 0. if settings.camera else None
        self.reporter = StatusReporter(settings)
        self.registration = Registration(self)
        self.prints = CloudPrints(self, settings)
        self.uploads = CameraUploads(self, settings)
        self.commands = CommandQueue(self._run_batch, host.console)
        def printer(event):
            return lambda data: self.run_on_printer(event, data)
        # Every cloud event handled, and nothing else: a packet with any
        # other name is ignored with a debug line (docs/protocol.md#events).
        # name: (handler, serialNumber rule, accepted before hello)
        self.cloud_events = {
            "welcome": (self._on_welcome, P.NO_SERIAL, True),
            "registerResponse": (self.registration.on_register_response,
                                 P.NO_SERIAL, True),
            "helloResponse": (self._on_hello_response, P.SERIAL_OPTIONAL,
                              True),
            "delete": (self._on_delete, P.SERIAL_OPTIONAL, True),
            "unregisterResponse": (self.registration.on_unregister_response,
                                   P.SERIAL_OPTIONAL, False),
            "getUrlResponse": (self.uploads.on_get_url_response,
                               P.SERIAL_REQUIRED, False),
            "capabilitiesResponse": (self._on_capabilities,
                                     P.SERIAL_OPTIONAL, False),
            "sendNextPrintResponse": (self._on_send_next_print_response,
                                      P.SERIAL_REQUIRED, False),
            "print": (self.prints.on_print, P.SERIAL_REQUIRED, False),
            "cancel": (self.prints.on_cancel, P.SERIAL_REQUIRED, False),
            "pause": (printer("pause"), P.SERIAL_REQUIRED, False),
            "resume": (printer("resume"), P.SERIAL_REQUIRED, False),
            "command": (printer("command"), P.SERIAL_REQUIRED, False),
            "temperature": (printer("temperature"), P.SERIAL_REQUIRED, False),
            "customCommand": (printer("customCommand"), P.SERIAL_REQUIRED, False),
            "update": (printer("update"), P.SERIAL_REQUIRED, False),
            "jogPrinter": (printer("jogPrinter"), P.SERIAL_OPTIONAL, False),
            "connectPrinter": (printer("connectPrinter"), P.SERIAL_OPTIONAL, False),
        }
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
        log.setLevel(logging.DEBUG if settings.enable_debug else logging.INFO)

    # --- called from the reactor (thread-safe, never block) -------------

    def start(self):
        self.thread = threading.Thread(target=self._run, name="polar_cloud",
                                       daemon=True)
        self.thread.start()

    def stop(self, timeout=5.):
        self.request_stop()
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
        self.children.close()
        self.inbox.put_nowait(None)

    def post(self, func, *args):
        """Run func(*args) on the connector thread."""
        self.inbox.put_nowait((func, args))

    def push_sample(self, sample, force=False):
        self.post(self._on_sample, sample, force)

    def request_register(self, email, pin, reply):
        self.post(self.registration.start_register, email, pin, reply)

    def request_unregister(self, reply, force=False):
        self.post(self.registration.start_unregister, reply, force)

    def set_webcam(self, webcam):
        self.post(self._on_webcam, webcam)

    def set_online_extras(self, extras):
        self.post(self._on_online_extras, extras)

    def set_updating(self, running):
        self.post(lambda: self.reporter.set_updating(running,
                                                      time.monotonic()))

    def on_timelapse(self, status, path):
        def timelapse():
            self.uploads.on_timelapse(status, path, time.monotonic())
            self.reporter.force()      # the hold shows as 5 at once
        self.post(timelapse)

    # --- thread main loop ----------------------------------------------

    def _run(self):
        try:
            self._load_state()
            while not self.stopping.is_set():
                self._step()
        finally:
            self.prints.stop()
            self._disconnect()

    def _step(self):
        now = time.monotonic()
        # every step ends with a tick, so what was due has just been done:
        # a due time still past is not actionable, never a reason to spin
        wait = max(MIN_WAIT, min(self._next_wakeup(now) - now,
                                 MAX_IDLE_WAIT))
        items = []
        try:
            items.append(self.inbox.get(timeout=wait))
            while len(items) < MAX_BATCH:
                items.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        # A bug in one step must not take the printer offline for good:
        # log it (once per kind) and carry on.
        for item in items:
            if item is not None and not self.stopping.is_set():
                self._guarded(item[0], *item[1])
        if not self.stopping.is_set():
            self._guarded(self._tick, time.monotonic())

    def _guarded(self, func, *args):
        try:
            func(*args)
        except Exception as e:
            self.errors.report("internal", "internal error (see klippy.log)"
                               ": %s" % (e.__class__.__name__,),
                               exc_info=True)
            self.publish()

    def _next_wakeup(self, now):
        times = [self.next_alive_check, self.registration.next_deadline(),
                 self.commands.next_wakeup()]
        if self._wants_connection() and self.session is None:
            # the first connection also waits for Moonraker's webcam
            times.append(self.next_attempt if self.registration.registering
                         else max(self.next_attempt,
                                  self.webcam_wait_until or 0.))
        session = self.session
        if session and not session.authenticated:
            times.append(session.opened + HANDSHAKE_TIMEOUT)
        if session and session.authenticated:
            times.append(self.reporter.next_wakeup())
            times.append(self.uploads.next_wakeup(
                self.reporter.cloud_job_in_progress()))
            if self.uploads.timelapse is not None:
                times.append(now + 1.)
        times = [t for t in times if t is not None]
        return min(times) if times else now + MAX_IDLE_WAIT

    def _tick(self, now):
        if now >= self.next_alive_check:
            # a thread outliving its printer object must notice and stop
            self.next_alive_check = now + ALIVE_CHECK_INTERVAL
            if not self.host.check_alive():
                log.info("polar_cloud: Klippy restarted; old connection"
                         " closed")
                self.request_stop()
                return
        if self.webcam_wait_until is None:
            self.webcam_wait_until = now + WEBCAM_WAIT
        if self._wants_connection() and self.session is None \
                and now >= self.next_attempt \
                and (now >= self.webcam_wait_until
                     or self.registration.registering):
            self._connect()
        session = self.session
        if session and not session.authenticated \
                and not self.registration.registering \
                and now - session.opened > HANDSHAKE_TIMEOUT:
            self.errors.report("handshake", "no answer to hello within %ds;"
                               " reconnecting" % (HANDSHAKE_TIMEOUT,))
            self._drop(self.backoff.next_delay(), failed=True)
        self.registration.tick(now)
        self.commands.tick(now)
        session = self.session
        if session and session.authenticated:
            status = self.reporter.send(self.serial, self.emit, now)
            if status is not None:
                self.host.status_sent(status)
                self.publish()
            if self.session is session:
                self.uploads.tick(now, session, self.serial,
                                  self.reporter.last_status,
                                  self.reporter.cloud_job_in_progress())
        self._save_jobs_if_changed()

    # --- state on disk --------------------------------------------------

    def _load_state(self):
        try:
            self.state = self.store.load()
        except StateProblem as e:
            self.state = {}
            self.state_writable = e.safe_to_save
            self._state_lost(str(e))
        self.reporter.restore(self.state)
        self.prints.remove_leftovers()
        if self.serial and not self.store.has_key():
            self.errors.last = ("key file %s is missing; register again"
                                % (self.store.key_path,))
        self.loaded = True
        self._refresh_camera()
        self.publish()

    def _state_lost(self, problem):
        self.state_problem = problem
        self.errors.last = "the saved registration was lost: %s" % (problem,)
        log.warning("polar_cloud: %s", self.errors.last)
        self.host.console(
            "Polar Cloud: the saved registration could not be read (%s)."
            " If this printer was registered, remove it in your Polar Cloud"
            " account and run POLAR_REGISTER again" % (problem,))

    @property
    def serial(self):
        return self.state.get("serial")

    @property
    def online(self):
        return self.session is not None and self.session.authenticated

    def _save_state(self):
        if not self.state_writable:
            self.errors.report("save", "not saving %s: %s" % (
                self.store.state_path, self.state_problem))
            return False
        try:
            self.store.save(self.state)
            return True
        except OSError as e:
            self.errors.report("save", "cannot write %s: %s"
                               % (self.store.state_path, e))
            return False

    def save_serial(self, serial):
        self.state["serial"] = serial
        if self._save_state():
            self.state_problem = None
            return True
        self.state.pop("serial", None)
        return False

    def _save_jobs_if_changed(self):
        jobs = self.reporter.jobs
        if jobs.needs_save and self.loaded:
            self.state.update(jobs.saved_state())
            if self._save_state():
                jobs.saved()

    def identity(self):
        mac = self.state.get("mac") or detect_mac()
        if mac is None:
            mac = self.state["mac"] = random_mac()   # saved with the serial
        return identity(self.settings, mac)

    def forget_serial(self, why):
        serial = self.serial
        self.state.pop("serial", None)
        self._save_state()
        self._disconnect()
        self.errors.last = why
        log.info("polar_cloud: %s (serial %s forgotten)", why, serial)
        self.host.console("Polar Cloud: %s. To add it again run"
                          " POLAR_REGISTER EMAIL=<email> PIN=<pin>" % (why,))
        self.publish()

    # --- connection -----------------------------------------------------

    def _wants_connection(self):
        return self.registration.registering or bool(self.serial)

    def _connect(self):
        self.generation += 1
        gen = self.generation
        client = cloud_client(
            lambda name, args: self._receive(gen, (name,) + args),
            lambda: self.post(self._on_socket_lost, gen),
            lambda size: self.post(self._on_too_large, gen, size))
        self.connecting = True
        self.publish()
        try:
            client.connect(self.settings.url, transports=["websocket"],
                           wait_timeout=CONNECT_TIMEOUT)
        except Exception as e:
            self.connecting = False
            self._connect_failed(e)
            close_client(client)
            return
        self.connecting = False
        if self.stopping.is_set():
            close_client(client)
            return
        self.session = Session(client, gen, time.monotonic())
        self.failed = False
        self.certificates.connected()
        self.reporter.new_connection()
        log.info("polar_cloud: connected to %s", self.settings.url)
        self.publish()

    def _connect_failed(self, error):
        delay = self.backoff.next_delay()
        # engineio says only "Connection error": ask whether it was the
        # certificate (tlscheck.py; now and then, not on every retry)
        why = self.certificates.explain(describe_error(error),
                                        time.monotonic())
        self.errors.report("connect", "cannot reach Polar Cloud at %s (%s)"
                           % (self.settings.url, why))
        log.debug("polar_cloud: next attempt in %.1f s", delay)
        self.next_attempt = time.monotonic() + delay
        self.failed = True
        if self.registration.registering:
            self.registration.fail(
                "cannot reach Polar Cloud at %s (%s)"
                % (self.settings.url, why))
        self.publish()

    def _disconnect(self):
        session, self.session = self.session, None
        self.generation += 1   # ignore whatever the old client still says
        if session is not None:
            session.close()

    def _drop(self, retry_in, failed=False):
        if failed:
            self.reporter.link_failed()   # resend what it may have lost
        self._disconnect()
        self.next_attempt = time.monotonic() + retry_in
        self.failed = failed
        self.publish()

    def reconnect(self, retry_in):
        """A planned new connection (after register, a new camera...)."""
        self._drop(retry_in)

    def emit(self, event, data):
        session = self.session
        if session is None:
            return False
        try:
            session.emit(event, data)
        except Exception as e:
            self.errors.report("emit", "cannot send %s: %s" % (event, e))
            self._drop(self.backoff.next_delay(), failed=True)
            return False
        log.debug("polar_cloud: sent %s", event)
        return True

    # --- socket events --------------------------------------------------

    def _current(self, gen):
        session = self.session
        return session if session and session.generation == gen else None

    def _on_socket_lost(self, gen):
        session = self._current(gen)
        if session is None:
            return   # our own disconnects are never seen: stale generation
        # this one is the cloud's or the network's, so back off
        self.errors.report("disconnect", session.lost_because or
                           "connection to Polar Cloud lost; reconnecting")
        self._drop(self.backoff.next_delay(), failed=True)

    def _on_too_large(self, gen, size):
        # told before the drop it causes, so the drop can say why
        session = self._current(gen)
        if session is not None:
            session.lost_because = (
                "Polar Cloud sent a message of %d bytes (at most %d are"
                " accepted); reconnecting" % (size, MAX_MESSAGE_BYTES))

    def _receive(self, gen, args):
        """On the socket's reader thread: queue a cloud event, or drop it
        when MAX_WAITING_EVENTS are already waiting."""
        if self.event_slots.acquire(blocking=False):
            self.post(self._on_cloud_event, gen, args)
        else:
            self.events_dropped += 1

    def _on_cloud_event(self, gen, args):
        self.event_slots.release()
        if self.events_dropped != self.events_dropped_told:
            self._tell_dropped(time.monotonic())
        session = self._current(gen)
        if session is None or not args:
            return
        event, data = args[0], args[1] if len(args) > 1 else None
        entry = self.cloud_events.get(event) if isinstance(event, str) \
            else None
        if entry is None:
            log.debug("polar_cloud: ignored unknown event %s",
                      clean(event, 60))
            return
        handler, rule, before_hello = entry
        if not P.serial_ok(rule, data, self.serial):
            log.debug("polar_cloud: ignored %s (not for this printer)", event)
            return
        if not before_hello and not session.authenticated:
            log.debug("polar_cloud: ignored %s before hello", event)
            return
        log.debug("polar_cloud: received %s", event)
        handler(data)

    def _tell_dropped(self, now):
        # one line per DROP_LINE_INTERVAL however long the flood lasts
        if now < self.next_drop_line:
            return
        self.next_drop_line = now + DROP_LINE_INTERVAL
        dropped = self.events_dropped - self.events_dropped_told
        self.events_dropped_told += dropped
        line = ("Polar Cloud: %d cloud messages dropped (more than %d were"
                " waiting)" % (dropped, MAX_WAITING_EVENTS))
        log.warning("polar_cloud: %s", line)
        self.host.console(line)

    def _on_welcome(self, data):
        session = self.session
        # one welcome per connection: a later one is ignored, never a
        # reason to register or say hello again
        if session.welcomed:
            log.debug("polar_cloud: ignored a second welcome")
            return
        challenge = data.get("challenge") if isinstance(data, dict) else None
        if not isinstance(challenge, str) or not challenge \
                or len(challenge) > MAX_CHALLENGE:
            self.errors.report("welcome", "welcome without a usable"
                               " challenge")
            return
        session.welcomed = True
        session.challenge = challenge
        if self.registration.registering:
            self.registration.send_register(session)
        elif self.serial:
            self._send_hello(session)
        else:
            self.reconnect(0.)

    def _send_hello(self, session):
        challenge = session.take_challenge()
        try:
            signature, _pub = keys.sign_challenge(
                self.store.key_path, challenge, group=self.children)
        except (ChildError, OSError) as e:
            if self.stopping.is_set():
                return    # cancelled by stop(): nothing went wrong
            self.errors.report("sign", "cannot sign hello with %s: %s"
                               % (self.store.key_path, e))
            self._drop(HELLO_FAILED_RETRY, failed=True)
            return
        if self.session is not session:
            return    # dropped while signing
        hello = P.build_hello(self.serial, signature, self.identity(),
                              hello_fields(self.camera))
        session.hello_camera = self._camera_in_hello()
        session.hello_sent = True
        self.emit("hello", hello)
        self.publish()

    def _on_hello_response(self, data):
        session = self.session
        if not session.hello_sent or session.authenticated:
            log.debug("polar_cloud: ignored an unexpected helloResponse")
            return
        status, message = P.answer_status(data)
        if status == "SUCCESS":
            session.authenticated = True
            self.backoff.reset()
            self.errors.resolved()
            log.info("polar_cloud: online as %s", self.serial)
            self.reporter.force()
            self.host.online()   # answers with set_online_extras()
            self.publish()
        elif status == "DELETED":
            self.forget_serial("this printer was deleted from Polar Cloud")
        else:
            self.errors.report("hello", "Polar Cloud refused the hello: %s"
                               % (clean(message or status),))
            self._drop(HELLO_FAILED_RETRY, failed=True)

    def _on_delete(self, data):
        self.forget_serial("this printer was removed from Polar Cloud")

    def _on_capabilities(self, data):
        caps = data.get("capabilities") if isinstance(data, dict) else None
        log.debug("polar_cloud: cloud capabilities %s", clean(caps))

    def _on_send_next_print_response(self, data):
        log.info("polar_cloud: no next print from the cloud (%s)",
                 clean(data, 120))

    # --- printer commands ------------------------------------------------

    def run_on_printer(self, event, data):
        """A cloud command the printer carries out (on the reactor)."""
        self.commands.add(event, data if isinstance(data, dict) else {},
                          time.monotonic())

    def _run_batch(self, batch, urgent):
        self.host.run_commands(batch, urgent, lambda: self.post(
            self.commands.batch_done))

    # --- after hello -----------------------------------------------------

    def _on_online_extras(self, extras):
        self.online_extras = extras
        if not self.online:
            return
        self.emit("customCommandList", {"serialNumber": self.serial,
                                        "commandList": extras["commandList"]})
        self.emit("setVersion", P.build_set_version(
            self.serial, VERSION, extras["klipper_version"]))
        self.emit("capabilities", {"serialNumber": self.serial})

    # --- camera -----------------------------------------------------------

    def _on_webcam(self, webcam):
        self.webcam = webcam
        self.webcam_wait_until = 0.
        self._refresh_camera()

    def _camera_in_hello(self):
        return (self.camera.get("cam_url"), self.camera.get("transform", 0),
                bool(self.camera))

    def _refresh_camera(self):
        camera = resolve_camera(self.settings.camera, self.webcam,
                                local_ip(self.settings.url))
        if camera == self.camera:
            return
        self.camera = camera
        self.uploads.set_camera(camera)
        log.info("polar_cloud: camera %s", camera.get("snapshot_url")
                 or camera.get("cam_url") or "none")
        self.publish()
        # The cloud learns the stream URL and orientation only from hello,
        # which cannot be repeated on a connection: reconnect to update it.
        if self.online and self.session.hello_camera != \
                self._camera_in_hello():
            self.reconnect(0.)

    # --- samples ----------------------------------------------------------

    def _on_sample(self, sample, force):
        self.reporter.on_sample(sample, time.monotonic(), force)

    # --- what the owner sees -----------------------------------------------

    @property
    def phase(self):
        session = self.session
        if not self.loaded:
            return "starting"
        if self.registration.registering:
            return "registering"
        if not self.serial:
            return "unregistered"
        if session and session.authenticated:
            return "online"
        if session and session.hello_sent:
            return "authenticating"
        if session or self.connecting or not self.failed:
            return "connecting"
        return "disconnected"

    def publish(self):
        info = {
            "state": self.phase,
            "connected": self.online,
            "registered": bool(self.serial),
            "serial": self.serial,
            "url": self.settings.url,
            "last_status": self.reporter.last_status,
            "last_error": self.errors.last,
            "camera_url": self.camera.get("cam_url"),
            "snapshot_url": self.camera.get("snapshot_url"),
        }
        if info != self.published:
            self.published = info
            self.host.publish(info)


def describe_error(error):
    """A connection error in the owner's words: certificate problems are
    named as such (docs/protocol.md#tls)."""
    text = str(error)
    chain = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
        if len(chain) > 10:
            break
    for e in chain:
        if "CERTIFICATE_VERIFY_FAILED" in str(e) or \
                e.__class__.__name__ in ("SSLCertVerificationError",):
            return untrusted(str(e))
    return clean(text, 200)
