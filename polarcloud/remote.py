"""Cloud commands carried out on Klippy's reactor thread.

RemoteControl is created by the Klippy module and only called on the
reactor (through register_async_callback).  It runs G-code with
gcode.run_script and never raises into the reactor: every failure becomes a
log line and a console message.
"""
import logging

log = logging.getLogger("polar_cloud")


class RemoteControl:
    def __init__(self, module, config):
        self.module = module
        self.printer = module.printer

    def handle_ready(self):
        pass

    def handle_online(self):
        pass

    def run(self, event, data):
        handler = getattr(self, "cmd_" + event, None)
        if handler is None:
            log.info("polar_cloud: %s from the cloud is not supported", event)
            return
        try:
            handler(data)
        except self.printer.command_error as e:
            self.module.gcode.respond_info("Polar Cloud: %s refused: %s"
                                           % (event, e))
            log.info("polar_cloud: %s refused: %s", event, e)
        except Exception:
            log.exception("polar_cloud: %s failed", event)
        self.module.push_fresh_snapshot()

    def _run_gcode(self, script):
        self.module.gcode.run_script(script)

    def cmd_pause(self, data):
        self._run_gcode("PAUSE")

    def cmd_resume(self, data):
        self._run_gcode("RESUME")

    def cmd_cancel(self, data):
        self._run_gcode("CANCEL_PRINT")

    def cloud_print(self, data):
        """Called on the connector thread (downloads run there)."""
        log.info("polar_cloud: cloud print not supported yet")
