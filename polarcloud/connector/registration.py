"""Register and unregister: requests that wait for the cloud's answer
(docs/protocol.md#registration).

One registration budget, stated here: the Klippy endpoint and the
Moonraker shim wait a little longer than REGISTER_TIMEOUT, and the
connector always answers within it, so an HTTP timeout never hides a
registration that later succeeds.
"""
import logging
import time

from .. import keys
from .. import protocol as P
from ..text import clean
from .runner import ChildError

log = logging.getLogger("polar_cloud")

KEYGEN_TIMEOUT = 900.     # a 2048-bit key in pure Python on a slow board
ANSWER_TIMEOUT = 60.      # connect + welcome + registerResponse
REGISTER_TIMEOUT = KEYGEN_TIMEOUT + ANSWER_TIMEOUT
UNREGISTER_TIMEOUT = 30.


class PendingRequest:
    """A request from the owner that waits for Polar Cloud."""

    def __init__(self, reply, deadline, **details):
        self.reply = reply
        self.deadline = deadline
        self.details = details

    def expired(self, now):
        return now > self.deadline

    def answer(self, result):
        reply, self.reply = self.reply, None
        if reply is not None:
            reply(result)


class Registration:
    def __init__(self, conn):
        self.conn = conn
        self.register = None      # PendingRequest while registering
        self.unregister = None
        self.public_key = None

    @property
    def registering(self):
        return self.register is not None

    def next_deadline(self):
        times = [r.deadline for r in (self.register, self.unregister) if r]
        return min(times) if times else None

    def tick(self, now):
        if self.register and self.register.expired(now):
            self._register_done(error="no answer from Polar Cloud within"
                                " %d s" % (ANSWER_TIMEOUT,))
            self.conn.reconnect(0.)
        if self.unregister and self.unregister.expired(now):
            self._unregister_done(error="no answer from Polar Cloud within"
                                  " %d s" % (UNREGISTER_TIMEOUT,))

    # --- register -------------------------------------------------------

    def start_register(self, email, pin, reply):
        conn = self.conn
        if self.register:
            reply({"error": "a registration is already in progress"})
            return
        if conn.serial:
            reply({"error": "already registered as %s; run POLAR_UNREGISTER"
                            " first" % (conn.serial,)})
            return
        # checked before the cloud pairs our key with a serial we could
        # not keep
        problem = conn.state_problem if not conn.state_writable \
            else conn.store.write_problem()
        if problem:
            reply({"error": "the registration cannot be saved: %s"
                            % (problem,)})
            return
        started = time.monotonic()
        self.register = PendingRequest(reply, started + REGISTER_TIMEOUT,
                                       email=email, pin=pin)
        conn.publish()
        try:
            # a new key for a first registration (child process, may take
            # minutes on a slow board); a readable existing key is kept
            self.public_key, moved = keys.generate_key(
                conn.store.key_path, KEYGEN_TIMEOUT, group=conn.children)
        except (ChildError, OSError) as e:
            self._register_done(error="cannot create the printer key: %s"
                                % (e,))
            return
        if moved:
            log.info("polar_cloud: unreadable key file kept as %s", moved)
        self.register.deadline = min(started + REGISTER_TIMEOUT,
                                     time.monotonic() + ANSWER_TIMEOUT)
        session = conn.session
        if session and session.challenge:
            self.send_register(session)
        else:
            conn.reconnect(0.)   # a fresh connection brings a welcome

    def send_register(self, session):
        """Answer a welcome with `register` (the challenge is not signed)."""
        session.take_challenge()
        ident = self.conn.identity()
        self.conn.state["mac"] = ident["mac"]
        details = self.register.details
        self.conn.emit("register", P.build_register(
            details["email"], details["pin"], self.public_key, ident))

    def on_register_response(self, data):
        if not self.register:
            return
        serial = P.register_serial(data)
        if serial is None:
            self._register_done(error=P.register_failure_message(data))
            self.conn.reconnect(0.)
            return
        if not self.conn.save_serial(serial):
            self._register_done(error="registered, but the serial could not"
                                " be saved in %s"
                                % (self.conn.store.state_dir,))
            return
        log.info("polar_cloud: registered as %s", serial)
        self._register_done(serial=serial)
        # the cloud expects a fresh connection that says hello
        self.conn.reconnect(0.)

    def fail(self, error):
        self._register_done(error=error)

    def _register_done(self, serial=None, error=None):
        pending, self.register = self.register, None
        if pending is None:
            return
        if serial:
            pending.answer({"status": "registered", "serial": serial})
        else:
            log.info("polar_cloud: registration failed: %s", error)
            self.conn.errors.last = "registration failed: %s" % (error,)
            pending.answer({"error": error})
        self.conn.publish()

    # --- unregister -----------------------------------------------------

    def start_unregister(self, reply, force):
        conn = self.conn
        if not conn.serial:
            reply({"error": "this printer is not registered"})
            return
        if force:
            conn.forget_serial("unregistered locally")
            reply({"status": "unregistered"})
            return
        if not conn.online:
            reply({"error": "not connected to Polar Cloud, so it cannot"
                            " confirm; use FORCE=1 to forget the"
                            " registration locally"})
            return
        self.unregister = PendingRequest(
            reply, time.monotonic() + UNREGISTER_TIMEOUT)
        conn.emit("unregister", {"serialNumber": conn.serial})

    def on_unregister_response(self, data):
        if not self.unregister:
            return
        status, message = P.answer_status(data)
        if status == "SUCCESS":
            self.conn.forget_serial("unregistered from Polar Cloud")
            self._unregister_done()
        else:
            self._unregister_done(error="Polar Cloud refused: %s"
                                  % (clean(message or status),))

    def _unregister_done(self, error=None):
        pending, self.unregister = self.unregister, None
        if pending:
            pending.answer({"error": error} if error
                           else {"status": "unregistered"})
