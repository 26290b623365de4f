"""Cloud commands carried out on Klippy's reactor thread.

RemoteControl belongs to the Klippy module and is only called on the
reactor.  It runs G-code with gcode.run_script and never raises into the
reactor: every refusal or failure becomes one log line and one console
message.
"""
import logging

from .. import commands
from ..commands import CommandRefused
from ..printer import ACTIVE_PRINT_STATES
from ..text import clean

log = logging.getLogger("polar_cloud")


class RemoteControl:
    def __init__(self, printer, gcode, settings):
        self.printer = printer
        self.gcode = gcode
        self.allow_gcode = settings.allow_gcode_commands
        self.configured_macros = settings.custom_commands
        self.heater_ranges = {}
        self.command_list = []

    # --- lifecycle (reactor) -------------------------------------------

    def handle_ready(self):
        pheaters = self.printer.lookup_object("heaters", None)
        self.heater_ranges = {}
        if pheaters is not None:
            for full in pheaters.get_status(0.)["available_heaters"]:
                heater = pheaters.lookup_heater(full.split()[-1])
                self.heater_ranges[full.split()[-1]] = (heater.min_temp,
                                                        heater.max_temp)
        macros = {}
        for name, obj in self.printer.lookup_objects("gcode_macro"):
            if " " in name:     # "gcode_macro" alone is the template helper
                macros[name.split()[-1].upper()] = getattr(obj, "cmd_desc",
                                                           "")
        self.command_list, left_out = commands.macro_list(
            macros, self.configured_macros)
        if left_out:
            log.info("polar_cloud: only %d macros are offered to the cloud;"
                     " left out: %s (choose with custom_commands)",
                     len(self.command_list), ", ".join(left_out))
        if self.configured_macros:
            missing = set(m.upper() for m in self.configured_macros) - set(
                macros)
            if missing:
                log.warning("polar_cloud: custom_commands names unknown"
                            " macros: %s", ", ".join(sorted(missing)))

    def online_extras(self):
        return {"commandList": self.command_list,
                "klipper_version": self.printer.get_start_args().get(
                    "software_version", "?")}

    # --- commands (reactor) ---------------------------------------------

    def run(self, event, data):
        """Carry out one cloud command (event names: connection.py)."""
        handler = getattr(self, "cmd_" + event, None)
        try:
            if handler is None:
                raise CommandRefused("not supported on Klipper")
            handler(data)
        except CommandRefused as e:
            self._refused(event, e)
        except self.printer.command_error as e:
            self._refused(event, "Klipper said: %s"
                          % (clean(str(e).split("\n")[0]),))

    def _refused(self, event, why):
        message = "Polar Cloud: %s refused: %s" % (event, why)
        log.info("polar_cloud: %s", message)
        self.gcode.respond_info(message, log=False)

    def _print_state(self):
        ps = self.printer.lookup_object("print_stats", None)
        if ps is None:
            return None
        return ps.get_status(self.printer.get_reactor().monotonic())["state"]

    def _run(self, script):
        self.gcode.run_script(script)

    def cmd_pause(self, data):
        self._run("PAUSE")

    def cmd_resume(self, data):
        self._run("RESUME")

    def cmd_cancel(self, data):
        self._run("CANCEL_PRINT")

    def cmd_command(self, data):
        if not self.allow_gcode:
            raise CommandRefused("G-code from the cloud is switched off"
                                 " (allow_gcode_commands: False)")
        lines = commands.gcode_lines(data.get("command"))
        for line in lines:
            log.info("polar_cloud: cloud G-code: %s", line)
            self._run(line)

    def cmd_temperature(self, data):
        targets, ignored = commands.temperature_targets(
            data, self.heater_ranges)
        if ignored:
            log.debug("polar_cloud: temperature: ignored %s", ignored)
        for heater, target in targets:
            self._run("SET_HEATER_TEMPERATURE HEATER=%s TARGET=%.1f"
                      % (heater, target))

    def cmd_jogPrinter(self, data):
        if self._print_state() in ACTIVE_PRINT_STATES:
            raise CommandRefused("the printer is printing")
        body = data.get("jogPrinter", data)
        self._run(commands.jog_script(body))

    def cmd_customCommand(self, data):
        name = data.get("command")
        offered = [c["command"] for c in self.command_list]
        if not isinstance(name, str) or name not in offered:
            raise CommandRefused("%s is not one of the offered macros"
                                 % (clean(name, 40),))
        self._run(name)

    def cmd_connectPrinter(self, data):
        _msg, state = self.printer.get_state_message()
        if state in ("shutdown", "error"):
            self._run("FIRMWARE_RESTART")

    def cmd_update(self, data):
        webhooks = self.printer.lookup_object("webhooks")
        try:
            webhooks.call_remote_method("polar_cloud_update")
        except self.printer.command_error:
            raise CommandRefused("Moonraker's polar_cloud component is not"
                                 " connected, so the update cannot run")
        # the shim reports progress through polar_cloud/update_state

    # --- cloud print start (reactor) --------------------------------------

    def start_print(self, filename):
        """Start a downloaded cloud file; returns None or why it did not."""
        try:
            if self._print_state() in ACTIVE_PRINT_STATES:
                raise CommandRefused("the printer is busy")
            self._run('SDCARD_PRINT_FILE FILENAME="%s"' % (filename,))
        except CommandRefused as e:
            return str(e)
        except self.printer.command_error as e:
            return "Klipper said: %s" % (clean(str(e).split("\n")[0]),)
        return None
