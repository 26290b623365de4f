# Polar Cloud (polar3d.com) connector for Klipper
#
# Copyright (C) 2026  The polar-cloud-klipper authors
#
# This file may be distributed under the terms of the GNU GPLv3 license.
#
# Thin Klippy side: config, G-code commands, webhooks endpoints, printer
# samples, and the reactor end of the connector's Host interface.  The
# cloud connection, keys, downloads and camera work live in the
# plain-Python "polarcloud" package next to this file (found through the
# install symlink) and run off the reactor thread.
import collections
import logging
import os
import re
import sys

sys.path.append(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__))))
from polarcloud import host as pc_host  # noqa: E402
from polarcloud import settings as pc_settings  # noqa: E402
from polarcloud.connector import connection as pc_connection  # noqa: E402
from polarcloud.connector import registration as pc_registration  # noqa: E402
from polarcloud.reactor import remote as pc_remote  # noqa: E402
from polarcloud.reactor import sampler as pc_sampler  # noqa: E402
from polarcloud.text import clean  # noqa: E402

Settings = pc_settings.Settings
SAMPLE_INTERVAL = .5   # a state change reaches the cloud within ~1 s
# the connector answers within its budget; these only guard against a lost
# reply (Klippy's endpoint waits a little longer than the connector)
WEBHOOK_REGISTER_TIMEOUT = pc_registration.REGISTER_TIMEOUT + 15.
WEBHOOK_UNREGISTER_TIMEOUT = pc_registration.UNREGISTER_TIMEOUT + 15.
# what may wait for the next sample rides on its timer; past this many it
# is handed over at once (a bound, never a loss)
MAX_DEFERRED = 100
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_LOGGED_FAILURES = 20


class PolarCloud(pc_host.Host):
    def __init__(self, config):
        self.printer = printer = config.get_printer()
        self.reactor = printer.get_reactor()
        self.name = config.get_name()
        self.settings = self._read_settings(config)
        self.gcode = printer.lookup_object("gcode")
        self.sampler = pc_sampler.PrinterSampler(printer)
        self.remote = pc_remote.RemoteControl(printer, self.gcode,
                                              self.settings)
        self.conn = pc_connection.CloudConnection(self, self.settings)
        self.info = {"state": "starting", "connected": False,
                     "registered": False, "serial": None,
                     "last_status": None, "last_error": None}
        self.closed = False
        self.started = False
        self.failures = 0
        self.deferred = collections.deque()    # (callback, args)
        self.sample_timer = self.reactor.register_timer(
            self._sample_event, self.reactor.NOW)
        printer.register_event_handler("klippy:ready", self._handle_ready)
        printer.register_event_handler("klippy:shutdown",
                                       self._handle_shutdown)
        printer.register_event_handler("klippy:disconnect",
                                       self._handle_disconnect)
        printer.register_event_handler("klippy:firmware_restart",
                                       self._handle_disconnect)
        for cmd in ("POLAR_REGISTER", "POLAR_STATUS", "POLAR_UNREGISTER"):
            self.gcode.register_command(
                cmd, getattr(self, "cmd_" + cmd), when_not_ready=True,
                desc=getattr(self, "cmd_" + cmd + "_help"))
        webhooks = printer.lookup_object("webhooks")
        for endpoint, handler in (
                ("status", self._handle_status_request),
                ("register", self._handle_register_request),
                ("unregister", self._handle_unregister_request),
                ("update_state", self._handle_update_state),
                ("webcam", self._handle_webcam),
                ("timelapse", self._handle_timelapse)):
            webhooks.register_endpoint("polar_cloud/" + endpoint, handler)

    def _read_settings(self, config):
        D = Settings
        url = config.get("url", D.url).strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", url):
            raise config.error("Option 'url' in section '%s' must be an"
                               " http:// or https:// URL" % (self.name,))
        # dicts for getchoice: older Klipper releases accept no list here
        rotations = {str(r): r for r in pc_settings.ROTATIONS}
        macros = config.get("custom_commands", None)
        sdcard_dir = config.getsection("virtual_sdcard").get("path", None)
        if sdcard_dir:
            sdcard_dir = os.path.abspath(os.path.expanduser(sdcard_dir))
        return Settings(
            url=url,
            state_dir=self._state_dir(config, sdcard_dir),
            gcode_dir=os.path.join(sdcard_dir, "polar_cloud")
            if sdcard_dir else None,
            enable_debug=config.getboolean("enable_debug", D.enable_debug),
            printer_type=config.getchoice(
                "printer_type", {t: t for t in pc_settings.PRINTER_TYPES},
                D.printer_type),
            printer_make=config.get("printer_make", D.printer_make).strip(),
            camera_url=config.get("camera_url", D.camera_url).strip(),
            snapshot_url=config.get("snapshot_url", D.snapshot_url).strip(),
            flip_horizontal=config.getboolean("flip_horizontal",
                                              D.flip_horizontal),
            flip_vertical=config.getboolean("flip_vertical", D.flip_vertical),
            rotation=config.getchoice("rotation", rotations,
                                      str(D.rotation)),
            idle_snapshot_interval=config.getfloat(
                "idle_snapshot_interval", D.idle_snapshot_interval,
                minval=5.),
            max_image_size=config.getint("max_image_size", D.max_image_size,
                                         minval=10000),
            max_download_size=config.getint(
                "max_download_size", D.max_download_size, minval=1),
            min_free_space=config.getint("min_free_space", D.min_free_space,
                                         minval=0),
            send_next_print=config.getboolean("send_next_print",
                                              D.send_next_print),
            status_interval=config.getfloat(
                "status_interval", D.status_interval, minval=1., maxval=60.),
            allow_gcode_commands=config.getboolean(
                "allow_gcode_commands", D.allow_gcode_commands),
            custom_commands=None if macros is None else tuple(
                m.strip() for m in macros.replace("\n", ",").split(",")
                if m.strip()))

    def _state_dir(self, config, sdcard_dir):
        args = self.printer.get_start_args()
        config_dir = os.path.dirname(os.path.abspath(
            args.get("config_file", "printer.cfg")))
        default = os.path.join(os.path.dirname(config_dir), "polar_cloud")
        path = os.path.abspath(os.path.expanduser(
            config.get("state_dir", default)))
        # The key must not be reachable through Moonraker's file API.
        served = [config_dir]
        if args.get("log_file"):
            served.append(os.path.dirname(os.path.abspath(args["log_file"])))
        if sdcard_dir:
            served.append(sdcard_dir)
        for folder in served:
            if path == folder or path.startswith(folder + os.sep):
                raise config.error(
                    "Option 'state_dir' in section '%s' must not be inside"
                    " %s, which Moonraker serves" % (self.name, folder))
        return path

    # --- lifecycle ------------------------------------------------------

    def _handle_ready(self):
        self.sampler.handle_ready(on_reset=self._push_sample)
        self.remote.handle_ready()
        self.reactor.update_timer(self.sample_timer, self.reactor.NOW)

    def _handle_shutdown(self):
        self._push_fresh_sample()

    def _handle_disconnect(self):
        # RESTART/FIRMWARE_RESTART build a new printer in this process: the
        # old connection must be gone before the new one starts.
        self.closed = True
        self.conn.stop(timeout=5.)

    # --- samples (reactor) ----------------------------------------------

    def _sample_event(self, eventtime):
        if not self.started:
            self.started = True
            self.conn.start()
        self._run_deferred()
        sample = self.sampler.changed()
        if sample is not None:
            self.conn.push_sample(sample)
        # from now: after a stall, eventtime + interval is already past
        return self.reactor.monotonic() + SAMPLE_INTERVAL

    def _push_sample(self, sample):
        if sample is not None and not self.closed:
            self.conn.push_sample(sample)

    def _push_fresh_sample(self):
        """After a shutdown or a cloud print's start: report it at once."""
        self.conn.push_sample(self.sampler.fresh(),
                              force=True)

    # --- Host: called on the connector thread ---------------------------

    def _guarded(self, callback, *args):
        # nothing from the cloud may raise into Klippy: an exception
        # escaping a reactor callback shuts it down
        try:
            callback(*args)
        except Exception:
            self.failures += 1
            if self.failures <= MAX_LOGGED_FAILURES:
                logging.exception("polar_cloud: error on the reactor")

    def _run_deferred(self):
        while self.deferred:
            callback, args = self.deferred.popleft()
            self._guarded(callback, *args)

    def _later(self, callback, *args):
        """Run callback(*args) on the reactor at the next sample (within
        SAMPLE_INTERVAL).  Each hand-over wakes the reactor, and after any
        wake-up it sleeps at least 1 ms, so a timer due meanwhile fires
        late: what can wait (routine cloud commands, state for POLAR_STATUS,
        console lines, the Moonraker notification) waits for a timer that
        runs anyway."""
        if self.closed:
            return
        self.deferred.append((callback, args))
        if len(self.deferred) >= MAX_DEFERRED:
            self._in_reactor(lambda: None)

    def _in_reactor(self, callback, *args):
        """Run callback(*args) on the reactor now, guarded, after whatever
        waits for the next sample (order kept).  False if this printer is
        gone."""
        if self.closed:
            return False

        def run(eventtime):
            self._run_deferred()
            self._guarded(callback, *args)
        try:
            self.reactor.register_async_callback(run)
        except Exception:
            # A finalized reactor (Klippy restarted without telling us, e.g.
            # when a firmware_restart handler failed): end this connection
            # so the new printer object's is the only one.
            self.closed = True
            self.conn.request_stop()
            return False
        return True

    def check_alive(self):
        # reactor.finalize() drops the wake-up pipe when Klippy restarts;
        # reading it costs the reactor nothing (unlike a callback)
        if getattr(self.reactor, "_pipe_fds", ()) is None:
            self.closed = True
        return not self.closed

    def publish(self, info):
        self._later(setattr, self, "info", info)

    def status_sent(self, status):
        self._later(self._notify_moonraker, status)

    def console(self, message):
        self._later(self.gcode.respond_info, clean(message, 500))

    def online(self):
        self._in_reactor(lambda: self.conn.set_online_extras(
            self.remote.online_extras()))

    def run_commands(self, commands, urgent, done):
        # a routine batch waits for the next sample: a storm of cloud
        # commands then costs the reactor no wake-up of its own
        hand_over = self._in_reactor if urgent else self._later
        hand_over(self._run_commands, commands, done)

    def start_print(self, filename, reply):
        def start():
            error = self.remote.start_print(filename)
            self._push_fresh_sample()
            reply(error)
        self._in_reactor(start)

    def _run_commands(self, commands, done):
        try:
            for i, (event, data) in enumerate(commands):
                if i:
                    # let timers due meanwhile run between two commands: a
                    # batch of a burst's 20 M105 in one pass was a 5 ms
                    # stall while printing (docs/performance.md, runs L and M)
                    self.reactor.pause(self.reactor.monotonic())
                try:
                    self.remote.run(event, data)
                except Exception:
                    self.failures += 1
                    if self.failures <= MAX_LOGGED_FAILURES:
                        logging.exception("polar_cloud: %s from the cloud"
                                          " failed", event)
            # Not forced: a status goes at once when the code, job or a
            # target changed (PAUSE, M140), and a storm of commands that
            # change nothing else (M105, while printing too, where every
            # sample differs in its durations) costs no status.
            self._push_sample(self.sampler.changed())
        finally:
            done()

    def _notify_moonraker(self, status):
        webhooks = self.printer.lookup_object("webhooks")
        try:
            webhooks.call_remote_method("polar_cloud_status", status=status)
        except self.printer.command_error:
            pass    # Moonraker (or its polar_cloud shim) is not connected

    # --- status ---------------------------------------------------------

    def get_status(self, eventtime=None):
        status = dict(self.info)
        status.setdefault("camera_url", self.settings.camera_url or None)
        status["printer_type"] = self.settings.printer_type
        status["register_timeout"] = WEBHOOK_REGISTER_TIMEOUT
        return status

    cmd_POLAR_STATUS_help = "Report the Polar Cloud connection state"

    def cmd_POLAR_STATUS(self, gcmd):
        st = self.get_status()
        last = st["last_status"] or {}
        lines = ["Polar Cloud: %s" % (st["state"],),
                 "serial: %s" % (st["serial"] or "not registered",)]
        if last:
            lines.append("last status sent: %s (%s) job %s" % (
                last.get("status"), last.get("progress"), last.get("jobId")))
        else:
            lines.append("last status sent: none")
        lines.append("last error: %s" % (st["last_error"] or "none",))
        gcmd.respond_info(clean("\n".join(lines), 2000))

    # --- registration ---------------------------------------------------

    def _check_credentials(self, email, pin, error):
        if not isinstance(email, str) or not EMAIL_RE.match(email.strip()) \
                or len(email) > 254:
            raise error("EMAIL must be the email address of your Polar Cloud"
                        " account")
        if isinstance(pin, int) and not isinstance(pin, bool):
            pin = "%04d" % (pin,)
        if not isinstance(pin, str) or not re.match(r"^\S{1,32}$", pin):
            raise error("PIN must be the PIN from your Polar Cloud account"
                        " settings")
        if pin.isdigit() and len(pin) < 4:
            raise error("PIN must have 4 digits (pad it with leading zeros)")
        return email.strip(), pin

    def _scrub_credentials(self):
        """Klippy dumps recent API requests and console input into
        klippy.log when it shuts down; drop the ones carrying the PIN.
        (Internal structures: skipped quietly where they differ.)"""
        markers = (b"polar_cloud/register", b"POLAR_REGISTER")
        logs = []
        try:
            webhooks = self.printer.lookup_object("webhooks")
            logs.extend(c.request_log for c in
                        webhooks.get_connection().clients.values())
        except Exception:
            pass
        try:
            logs.append(self.printer.lookup_object("gcode_io").input_log)
        except Exception:
            pass
        for entries in logs:
            for i, (eventtime, data) in enumerate(list(entries)):
                raw = data if isinstance(data, bytes) else str(data).encode()
                if any(m in raw for m in markers):
                    entries[i] = (eventtime, "(Polar Cloud credentials"
                                             " removed)")

    cmd_POLAR_REGISTER_help = "Register this printer with Polar Cloud"

    def cmd_POLAR_REGISTER(self, gcmd):
        self._scrub_credentials()
        email, pin = self._check_credentials(
            gcmd.get("EMAIL", None), gcmd.get("PIN", None), gcmd.error)
        self.conn.request_register(email, pin, lambda result: self._in_reactor(
            self._register_reply, result))
        gcmd.respond_info("Polar Cloud: registration started; the answer"
                          " will appear here in a few seconds", log=False)

    def _register_reply(self, result):
        if "error" in result:
            self.gcode.respond_raw("!! Polar Cloud: registration failed: %s"
                                   % (clean(result["error"], 300),))
        else:
            self.gcode.respond_info("Polar Cloud: registered, serial %s"
                                    % (result["serial"],))

    cmd_POLAR_UNREGISTER_help = ("Remove this printer from Polar Cloud"
                                 " (FORCE=1 forgets it locally)")

    def cmd_POLAR_UNREGISTER(self, gcmd):
        force = gcmd.get_int("FORCE", 0, minval=0, maxval=1)
        self.conn.request_unregister(lambda result: self._in_reactor(
            self._unregister_reply, result), force=bool(force))
        gcmd.respond_info("Polar Cloud: unregistering...", log=False)

    def _unregister_reply(self, result):
        if "error" in result:
            self.gcode.respond_raw("!! Polar Cloud: unregister failed: %s"
                                   % (clean(result["error"], 300),))
        else:
            self.gcode.respond_info("Polar Cloud: unregistered")

    # --- webhooks -------------------------------------------------------

    def _wait_thread(self, start, timeout):
        """Start a request on the connector thread and wait for its reply
        without blocking the reactor (the handler's greenlet pauses)."""
        completion = self.reactor.completion()

        def reply(result):
            # after what waits for the next sample: a status asked for
            # right after this reply already shows its effect
            self._in_reactor(completion.complete, result)
        start(reply)
        return completion.wait(self.reactor.monotonic() + timeout)

    def _handle_status_request(self, web_request):
        web_request.send(self.get_status())

    def _handle_register_request(self, web_request):
        self._scrub_credentials()
        email, pin = self._check_credentials(
            web_request.get("email", None), web_request.get("pin", None),
            web_request.error)
        result = self._wait_thread(
            lambda reply: self.conn.request_register(email, pin, reply),
            WEBHOOK_REGISTER_TIMEOUT)
        self._send_result(web_request, result)

    def _handle_unregister_request(self, web_request):
        force = web_request.get("force", False) in (True, 1, "1", "true")
        result = self._wait_thread(
            lambda reply: self.conn.request_unregister(reply, force=force),
            WEBHOOK_UNREGISTER_TIMEOUT)
        self._send_result(web_request, result)

    def _handle_update_state(self, web_request):
        """From the Moonraker shim: an update it started runs or ended."""
        self.conn.set_updating(web_request.get("running", False) is True)

    def _handle_webcam(self, web_request):
        """From the Moonraker shim: the webcam Mainsail/Fluidd configured."""
        webcam = web_request.get("webcam", None)
        self.conn.set_webcam(webcam if isinstance(webcam, dict) else None)

    def _handle_timelapse(self, web_request):
        """From the Moonraker shim: a moonraker-timelapse render event."""
        status = web_request.get("status", None)
        path = web_request.get("path", None)
        self.conn.on_timelapse(status if isinstance(status, str) else "",
                               path if isinstance(path, str) else None)

    def _send_result(self, web_request, result):
        if result is None:
            raise web_request.error("Polar Cloud: no answer in time")
        if "error" in result:
            raise web_request.error("Polar Cloud: %s"
                                    % (clean(result["error"], 300),))
        web_request.send(result)


def load_config(config):
    return PolarCloud(config)
