# Polar Cloud (polar3d.com) connector for Klipper
#
# Copyright (C) 2026  The polar-cloud-klipper authors
#
# This file may be distributed under the terms of the GNU GPLv3 license.
#
# Thin Klippy side: config, G-code commands, webhooks endpoints and a 1 Hz
# snapshot of printer state.  The cloud connection, keys, downloads and
# camera work live in the plain-Python "polarcloud" package next to this
# file (found through the install symlink) and run off the reactor thread.
import logging
import os
import re
import sys

sys.path.append(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__))))
from polarcloud import connection as pc_connection  # noqa: E402
from polarcloud import remote as pc_remote  # noqa: E402

DEFAULT_URL = "https://printer4.polar3d.com"
PRINTER_TYPES = ("cartesian", "delta", "belt")
SNAPSHOT_INTERVAL = 1.
WEBHOOK_REGISTER_TIMEOUT = 150.
WEBHOOK_UNREGISTER_TIMEOUT = 45.
HEATER_KEYS = (("tool0", "extruder"), ("tool1", "extruder1"),
               ("bed", "heater_bed"), ("chamber", "chamber"))
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


class PolarCloud:
    def __init__(self, config):
        self.printer = printer = config.get_printer()
        self.reactor = printer.get_reactor()
        self.name = config.get_name()
        url = config.get("url", DEFAULT_URL).strip()
        if not re.match(r"^https?://[^/\s]+", url):
            raise config.error("Option 'url' in section '%s' must be an"
                               " http:// or https:// URL" % (self.name,))
        # a dict: older Klipper releases accept no list here
        self.printer_type = config.getchoice(
            "printer_type", {t: t for t in PRINTER_TYPES}, "cartesian")
        self.printer_make = config.get("printer_make", "").strip()
        self.camera_url = config.get("camera_url", "").strip() or None
        self.snapshot_url = config.get("snapshot_url", "").strip() or None
        camera = {"stream_url": self.camera_url,
                  "snapshot_url": self.snapshot_url,
                  "flip_horizontal": config.getboolean("flip_horizontal",
                                                       False),
                  "flip_vertical": config.getboolean("flip_vertical", False),
                  "rotation": config.getchoice(
                      "rotation", {"0": 0, "90": 90, "180": 180, "270": 270},
                      "0")}
        snapshot_interval = config.getfloat("idle_snapshot_interval", 300.,
                                            minval=5.)
        max_image = config.getint("max_image_size", 150000, minval=10000)
        debug = config.getboolean("enable_debug", False)
        max_mb = config.getint("max_download_size", 1024, minval=1)
        min_free_mb = config.getint("min_free_space", 100, minval=0)
        send_next = config.getboolean("send_next_print", False)
        status_interval = config.getfloat("status_interval", 10., minval=1.,
                                          maxval=60.)
        sdcard_dir = config.getsection("virtual_sdcard").get("path", None)
        if sdcard_dir:
            sdcard_dir = os.path.abspath(os.path.expanduser(sdcard_dir))
        state_dir = self._state_dir(config, sdcard_dir)
        gcode_dir = os.path.join(sdcard_dir, "polar_cloud") \
            if sdcard_dir else None
        self.remote = pc_remote.RemoteControl(self, config)
        self.conn = pc_connection.CloudConnection(self, {
            "url": url.rstrip("/"), "state_dir": state_dir, "debug": debug,
            "printer_type": self.printer_type,
            "printer_make": self.printer_make, "gcode_dir": gcode_dir,
            "max_download_bytes": max_mb * 1024 * 1024,
            "min_free_bytes": min_free_mb * 1024 * 1024,
            "send_next_print": send_next, "status_interval": status_interval,
            "camera": camera if (self.camera_url or self.snapshot_url)
            else None,
            "idle_snapshot_interval": snapshot_interval,
            "max_image_size": max_image})
        self.info = {"state": "starting", "connected": False,
                     "registered": False, "serial": None,
                     "last_status": None, "last_error": None}
        self.closed = False
        self.started = False
        self.print_stats = self.sdcard = None
        self.heaters = []
        self.file_loads = 0
        self.gcode = printer.lookup_object("gcode")
        self.snapshot_timer = self.reactor.register_timer(
            self._snapshot_event, self.reactor.NOW)
        printer.register_event_handler("klippy:ready", self._handle_ready)
        printer.register_event_handler("klippy:shutdown",
                                       self._handle_shutdown)
        printer.register_event_handler("klippy:disconnect",
                                       self._handle_disconnect)
        printer.register_event_handler("klippy:firmware_restart",
                                       self._handle_disconnect)
        printer.register_event_handler("virtual_sdcard:reset_file",
                                       self._handle_file_load)
        for cmd in ("POLAR_REGISTER", "POLAR_STATUS", "POLAR_UNREGISTER"):
            self.gcode.register_command(
                cmd, getattr(self, "cmd_" + cmd), when_not_ready=True,
                desc=getattr(self, "cmd_" + cmd + "_help"))
        webhooks = printer.lookup_object("webhooks")
        webhooks.register_endpoint("polar_cloud/status",
                                   self._handle_status_request)
        webhooks.register_endpoint("polar_cloud/register",
                                   self._handle_register_request)
        webhooks.register_endpoint("polar_cloud/unregister",
                                   self._handle_unregister_request)
        webhooks.register_endpoint("polar_cloud/update_state",
                                   self._handle_update_state)
        webhooks.register_endpoint("polar_cloud/webcam", self._handle_webcam)
        webhooks.register_endpoint("polar_cloud/timelapse",
                                   self._handle_timelapse)

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
        self.print_stats = self.printer.lookup_object("print_stats", None)
        self.sdcard = self.printer.lookup_object("virtual_sdcard", None)
        pheaters = self.printer.lookup_object("heaters", None)
        self.heaters = []
        if pheaters is not None:
            names = [n.split()[-1] for n in pheaters.get_status(
                self.reactor.monotonic())["available_heaters"]]
            for key, name in HEATER_KEYS:
                if name in names:
                    self.heaters.append((key, pheaters.lookup_heater(name)))
        self.remote.handle_ready()
        self.reactor.update_timer(self.snapshot_timer, self.reactor.NOW)

    def _handle_shutdown(self):
        self.conn.push_snapshot(self._snapshot(self.reactor.monotonic()),
                                force=True)

    def _handle_disconnect(self):
        # RESTART/FIRMWARE_RESTART build a new printer in this process: the
        # old connection must be gone before the new one starts.
        self.closed = True
        self.conn.stop(timeout=5.)

    def _handle_file_load(self):
        self.file_loads += 1

    # --- snapshots (reactor) --------------------------------------------

    def _snapshot(self, eventtime):
        msg, state = self.printer.get_state_message()
        snap = {"klippy": state, "file_loads": self.file_loads,
                "message": msg.strip() if state != "ready" else None}
        if state == "ready" and self.print_stats is not None:
            ps = self.print_stats.get_status(eventtime)
            snap.update(state=ps["state"], filename=ps["filename"],
                        print_duration=ps["print_duration"],
                        total_duration=ps["total_duration"],
                        filament_used=ps["filament_used"],
                        message=ps.get("message") or None)
            if self.sdcard is not None:
                sd = self.sdcard.get_status(eventtime)
                snap.update(file_position=sd["file_position"],
                            file_size=sd["file_size"])
        temps = {}
        for key, heater in self.heaters:
            temp, target = heater.get_temp(eventtime)
            temps[key] = (temp, target)
        snap["temps"] = temps
        return snap

    def _snapshot_event(self, eventtime):
        if not self.started:
            self.started = True
            self.conn.start()
        self.conn.push_snapshot(self._snapshot(eventtime))
        return eventtime + SNAPSHOT_INTERVAL

    def push_fresh_snapshot(self):
        """After a cloud command: report its effect at once."""
        self.conn.push_snapshot(self._snapshot(self.reactor.monotonic()),
                                force=True)

    # --- host callbacks (called on the connector thread) ----------------

    def in_reactor(self, callback):
        """Run callback on the reactor; False if this printer is gone."""
        if self.closed:
            return False
        try:
            self.reactor.register_async_callback(lambda et: callback())
        except Exception:
            # A finalized reactor (Klippy restarted without telling us, e.g.
            # when a firmware_restart handler failed): end this connection
            # so the new printer object's is the only one.
            logging.info("polar_cloud: Klippy restarted; old connection"
                         " closed")
            self.closed = True
            self.conn.request_stop()
            return False
        return True

    def check_alive(self):
        self.in_reactor(lambda: None)

    def publish(self, info):
        self.in_reactor(lambda: setattr(self, "info", info))

    def status_sent(self, status):
        self.in_reactor(lambda: self._notify_moonraker(status))

    def console(self, message):
        self.in_reactor(lambda: self.gcode.respond_info(message))

    def online(self):
        self.in_reactor(self.remote.handle_online)

    def cloud_command(self, event, data):
        self.in_reactor(lambda: self.remote.run(event, data))

    def start_print(self, filename, reply):
        self.in_reactor(lambda: self.remote.start_print(filename, reply))

    def _notify_moonraker(self, status):
        webhooks = self.printer.lookup_object("webhooks")
        try:
            webhooks.call_remote_method("polar_cloud_status", status=status)
        except self.printer.command_error:
            pass    # Moonraker (or its polar_cloud shim) is not connected

    # --- status ---------------------------------------------------------

    def get_status(self, eventtime=None):
        status = dict(self.info)
        status.setdefault("camera_url", self.camera_url)
        status["printer_type"] = self.printer_type
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
        gcmd.respond_info("\n".join(lines))

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

        def reply(result):
            self.in_reactor(lambda: self._register_reply(result))
        self.conn.request_register(email, pin, reply)
        gcmd.respond_info("Polar Cloud: registration started; the answer"
                          " will appear here in a few seconds", log=False)

    def _register_reply(self, result):
        if "error" in result:
            self.gcode.respond_raw("!! Polar Cloud: registration failed: %s"
                                   % (result["error"],))
        else:
            self.gcode.respond_info("Polar Cloud: registered, serial %s"
                                    % (result["serial"],))

    cmd_POLAR_UNREGISTER_help = ("Remove this printer from Polar Cloud"
                                 " (FORCE=1 forgets it locally)")

    def cmd_POLAR_UNREGISTER(self, gcmd):
        force = gcmd.get_int("FORCE", 0, minval=0, maxval=1)

        def reply(result):
            msg = ("!! Polar Cloud: unregister failed: %s"
                   % (result["error"],) if "error" in result
                   else "Polar Cloud: unregistered")
            self.in_reactor(lambda: self.gcode.respond_raw(msg)
                            if "error" in result
                            else self.gcode.respond_info(msg))
        self.conn.request_unregister(reply, force=bool(force))
        gcmd.respond_info("Polar Cloud: unregistering...", log=False)

    # --- webhooks -------------------------------------------------------

    def _wait_thread(self, start, timeout):
        """Start a request on the connector thread and wait for its reply
        without blocking the reactor (the handler's greenlet pauses)."""
        completion = self.reactor.completion()

        def reply(result):
            if not self.closed:
                self.reactor.async_complete(completion, result)
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
        running = web_request.get("running", False) is True
        self.conn.post("updating", running)

    def _handle_webcam(self, web_request):
        """From the Moonraker shim: the webcam Mainsail/Fluidd configured."""
        webcam = web_request.get("webcam", None)
        self.conn.post("webcam", webcam if isinstance(webcam, dict) else None)

    def _handle_timelapse(self, web_request):
        """From the Moonraker shim: a moonraker-timelapse render event."""
        status = web_request.get("status", None)
        path = web_request.get("path", None)
        self.conn.post("timelapse", status if isinstance(status, str) else "",
                       path if isinstance(path, str) else None)

    def _send_result(self, web_request, result):
        if result is None:
            raise web_request.error("Polar Cloud: no answer in time")
        if "error" in result:
            raise web_request.error("Polar Cloud: %s" % (result["error"],))
        web_request.send(result)


def load_config(config):
    return PolarCloud(config)
