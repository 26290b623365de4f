# Polar Cloud connector: thin Moonraker component
#
# The connector itself runs inside Klippy (klippy/extras/polar_cloud.py).
# This component only:
#   * exposes /server/polar/{register,status,unregister} and forwards them
#     to the Klippy endpoints polar_cloud/{register,status,unregister}
#   * serves /server/polar/page, a registration and status page that calls
#     those endpoints (polar_cloud_page.html, next to this file)
#   * turns the Klippy remote method "polar_cloud_status" into the
#     "polar_cloud:status" event (websocket: notify_polar_cloud_status)
#   * runs the update_manager entry "polar_cloud" when Klippy asks for it
#     (remote method "polar_cloud_update")
#   * hands the Moonraker webcam configuration to Klippy
#
# moonraker.conf:
#   [polar_cloud]
#   webcam: <name>   # optional, default: the first enabled webcam
#
# This file may be distributed under the terms of the GNU GPLv3 license.

from __future__ import annotations
import asyncio
import logging
import os
from ..common import KlippyState, RequestType, TransportType, WebRequest
from typing import TYPE_CHECKING, Any, Dict, Optional, Set

if TYPE_CHECKING:
    from ..confighelper import ConfigHelper
    from .klippy_connection import KlippyConnection
    from .application import InternalTransport
    from .webcam import WebcamManager

# Klippy's module answers a registration within its own budget (it states
# it as `register_timeout` in its status); the shim waits that long plus a
# margin, so it never answers 504 for a registration that then succeeds.
REGISTER_TIMEOUT_FALLBACK = 1000.
MARGIN = 15.
UNREGISTER_TIMEOUT = 90.
STATUS_TIMEOUT = 10.
WEBCAM_TIMEOUT = 10.
UPDATER_NAME = "polar_cloud"
# Installed as a symlink into moonraker/components: the page lives next to
# the real file, in the repository.
PAGE_PATH = os.path.join(
    os.path.dirname(os.path.realpath(__file__)), "polar_cloud_page.html"
)

class PolarCloud:
    def __init__(self, config: ConfigHelper) -> None:
        self.server = config.get_server()
        self.webcam_name: Optional[str] = config.get("webcam", None)
        self.kconn: KlippyConnection
        self.kconn = self.server.lookup_component("klippy_connection")
        self._logged: Set[str] = set()
        self.server.register_endpoint(
            "/server/polar/register", RequestType.POST, self._handle_register
        )
        self.server.register_endpoint(
            "/server/polar/status", RequestType.GET, self._handle_status
        )
        self.server.register_endpoint(
            "/server/polar/unregister", RequestType.POST,
            self._handle_unregister
        )
        # Static HTML that holds no data: served without login, so the
        # browser gets it even where the API itself asks for one (the
        # page then says so).
        self.server.register_endpoint(
            "/server/polar/page", RequestType.GET, self._handle_page,
            transports=TransportType.HTTP, wrap_result=False,
            content_type="text/html; charset=UTF-8", auth_required=False
        )
        self.server.register_notification(
            "polar_cloud:status", "polar_cloud_status"
        )
        # Remote methods may only be registered during __init__
        self.server.register_remote_method(
            "polar_cloud_status", self._on_status
        )
        self.server.register_remote_method(
            "polar_cloud_update", self._on_update
        )
        self.server.register_event_handler(
            "server:klippy_ready", self._push_webcam
        )
        self.server.register_event_handler(
            "webcam:webcams_changed", self._on_webcams_changed
        )
        # moonraker-timelapse, when installed, announces its renders
        self.server.register_event_handler(
            "timelapse:timelapse_event", self._on_timelapse_event
        )

    # Klippy requests
    async def _klippy_request(
        self, endpoint: str, args: Dict[str, Any], timeout: float
    ) -> Any:
        # Klippy answers webhooks in ready, error and shutdown states; our
        # endpoints only exist once its config has been loaded.
        state = self.kconn.state
        if not self.kconn.is_connected() or state in (
            KlippyState.DISCONNECTED, KlippyState.STARTUP
        ):
            raise self.server.error(
                f"Polar Cloud: Klippy is not ready (state: "
                f"{state.name.lower()})", 503
            )
        try:
            return await asyncio.wait_for(
                self.kconn.request(WebRequest(endpoint, args)), timeout
            )
        except asyncio.TimeoutError:
            raise self.server.error(
                f"Polar Cloud: no answer from Klippy within {timeout:.0f} s",
                504
            ) from None
        except self.server.error as err:
            if "No registered callback" in str(err):
                raise self.server.error(
                    "Polar Cloud: the Klippy module is not loaded (add a "
                    "[polar_cloud] section to printer.cfg and restart "
                    f"Klipper; state: {self.kconn.state.name.lower()})", 503
                ) from None
            raise

    async def _handle_register(self, web_request: WebRequest) -> Any:
        email = web_request.get_str("email").strip()
        pin = web_request.get_str("pin").strip()
        if not email or not pin:
            raise self.server.error("Polar Cloud: email and pin are required")
        logging.info("Polar Cloud: registration requested")
        status = await self._klippy_request(
            "polar_cloud/status", {}, STATUS_TIMEOUT
        )
        timeout = status.get("register_timeout") or REGISTER_TIMEOUT_FALLBACK
        return await self._klippy_request(
            "polar_cloud/register", {"email": email, "pin": pin},
            float(timeout) + MARGIN
        )

    async def _handle_status(self, web_request: WebRequest) -> Any:
        return await self._klippy_request(
            "polar_cloud/status", {}, STATUS_TIMEOUT
        )

    async def _handle_unregister(self, web_request: WebRequest) -> Any:
        logging.info("Polar Cloud: unregistration requested")
        force = web_request.get_boolean("force", False)
        return await self._klippy_request(
            "polar_cloud/unregister", {"force": force}, UNREGISTER_TIMEOUT
        )

    async def _handle_page(self, web_request: WebRequest) -> str:
        # Read per request, so an update of the repository needs no
        # Moonraker restart; off the event loop, as all disk reads.
        eventloop = self.server.get_event_loop()
        try:
            return await eventloop.run_in_thread(self._read_page)
        except OSError as err:
            # the page is served without login: the path goes to the log only
            logging.info(f"Polar Cloud: cannot read {PAGE_PATH}: {err}")
            raise self.server.error(
                f"Polar Cloud: page not readable ({err.strerror})", 500
            ) from None

    def _read_page(self) -> str:
        with open(PAGE_PATH, encoding="utf-8") as f:
            return f.read()

    # Remote methods (called by Klippy)
    def _on_status(self, status: Dict[str, Any]) -> None:
        self.server.send_event("polar_cloud:status", status)

    def _on_update(self, **kwargs: Any) -> None:
        umgr = self.server.lookup_component("update_manager", None)
        if umgr is None or UPDATER_NAME not in umgr.get_updaters():
            logging.info(
                f"Polar Cloud: update requested, but update_manager entry "
                f"missing ([update_manager {UPDATER_NAME}]); ignored"
            )
            return
        self.server.get_event_loop().create_task(self._run_update())

    async def _run_update(self) -> None:
        # Same path as POST /machine/update/upgrade?name=polar_cloud: it
        # refuses while printing, takes the update lock and notifies clients.
        itransport: InternalTransport
        itransport = self.server.lookup_component("internal_transport")
        logging.info("Polar Cloud: starting update via update_manager")
        await self._report_update(True)
        try:
            await itransport.call_method(
                "machine.update.upgrade", name=UPDATER_NAME
            )
        except Exception as err:
            logging.info(f"Polar Cloud: update failed: {err}")
        else:
            logging.info("Polar Cloud: update complete")
        # Usually Klipper restarts after the update; if not, end status 8.
        await self._report_update(False)

    async def _report_update(self, running: bool) -> None:
        try:
            await self._klippy_request(
                "polar_cloud/update_state", {"running": running},
                STATUS_TIMEOUT
            )
        except Exception as err:
            logging.info(f"Polar Cloud: update state not sent: {err}")

    # Webcam discovery
    def _select_webcam(self) -> Optional[Dict[str, Any]]:
        wcmgr: Optional[WebcamManager]
        wcmgr = self.server.lookup_component("webcam", None)
        if wcmgr is None:
            return None
        cams = wcmgr.get_webcams()
        if self.webcam_name is not None:
            cam = cams.get(self.webcam_name)
            if cam is None:
                self._log_webcam_once(
                    f"Polar Cloud: webcam '{self.webcam_name}' not found"
                )
        else:
            cam = next((c for c in cams.values() if c.enabled), None)
        if cam is None:
            return None
        return {
            "name": cam.name,
            "stream_url": cam.stream_url,
            "snapshot_url": cam.snapshot_url,
            "flip_horizontal": cam.flip_horizontal,
            "flip_vertical": cam.flip_vertical,
            "rotation": cam.rotation,
        }

    async def _push_webcam(self) -> None:
        if not self.kconn.is_ready():
            return
        try:
            await self._klippy_request(
                "polar_cloud/webcam", {"webcam": self._select_webcam()},
                WEBCAM_TIMEOUT
            )
        except Exception as err:
            self._log_webcam_once(
                f"Polar Cloud: webcam not handed to Klippy: {err}"
            )

    async def _on_webcams_changed(self, *args: Any) -> None:
        await self._push_webcam()

    # Timelapse (moonraker-timelapse)
    async def _on_timelapse_event(self, event: Dict[str, Any]) -> None:
        if not isinstance(event, dict) or event.get("action") != "render":
            return
        status = event.get("status")
        path: Optional[str] = None
        if status == "success" and event.get("filename"):
            fm = self.server.lookup_component("file_manager")
            try:
                folder = fm.get_directory("timelapse")
            except Exception:
                folder = ""
            if folder:
                path = os.path.join(folder, os.path.basename(
                    str(event["filename"])))
        try:
            await self._klippy_request(
                "polar_cloud/timelapse", {"status": status, "path": path},
                STATUS_TIMEOUT
            )
        except Exception as err:
            self._log_webcam_once(
                f"Polar Cloud: timelapse event not handed to Klippy: {err}"
            )

    def _log_webcam_once(self, msg: str) -> None:
        if msg not in self._logged:
            self._logged.add(msg)
            logging.info(msg)

def load_component(config: ConfigHelper) -> PolarCloud:
    return PolarCloud(config)
