# Test-only Moonraker component standing in for moonraker-timelapse: it
# owns the "timelapse" folder and sends "timelapse:timelapse_event" the way
# moonraker-timelapse does when a test POSTs /server/polar_test/timelapse.
from __future__ import annotations
import os
from typing import TYPE_CHECKING, Any, Dict
from ..common import RequestType

if TYPE_CHECKING:
    from ..confighelper import ConfigHelper
    from ..common import WebRequest


class PolarTestTimelapse:
    def __init__(self, config: ConfigHelper) -> None:
        self.server = config.get_server()
        self.out_dir = config.get("output_path")
        os.makedirs(self.out_dir, exist_ok=True)
        fm = self.server.lookup_component("file_manager")
        fm.register_directory("timelapse", self.out_dir, full_access=True)
        self.server.register_notification("timelapse:timelapse_event")
        self.server.register_endpoint(
            "/server/polar_test/timelapse", RequestType.POST, self._emit)

    async def _emit(self, web_request: WebRequest) -> Dict[str, Any]:
        event = {"action": "render",
                 "status": web_request.get_str("status")}
        filename = web_request.get_str("filename", None)
        if filename:
            event["filename"] = filename
        self.server.send_event("timelapse:timelapse_event", event)
        return {"sent": event}


def load_component(config: ConfigHelper) -> PolarTestTimelapse:
    return PolarTestTimelapse(config)
