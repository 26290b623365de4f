"""Snapshots and timelapses for Polar Cloud (reference §2.3, §2.5, §7).

Owned by the connector thread.  Camera fetches, image work and uploads run
in the camera worker (a child process) started from a short-lived upload
thread, so neither the reactor nor the connector loop ever waits on a
camera or an S3 upload; results come back through ``post``.
"""
import logging
import threading
import time

from . import camera
from .child import ChildError
from .snapshots import CameraHealth, SnapshotCadence, UploadUrls

log = logging.getLogger("polar_cloud")

URL_WAIT = 30.          # a timelapse waits this long for its upload URL
SNAPSHOT_TIMEOUT = 60.
TIMELAPSE_TIMEOUT = 900.
HOLD_LIMIT = 1200.      # never report 5 longer than this for one render


def resolve_camera(configured, webcam, local_ip):
    """The camera to use: printer.cfg options win over Moonraker's webcam.

    Returns {} when there is no camera, else cam_url (absolute stream URL
    for the browser), snapshot_url, flips, rotation and the hello bitmask."""
    source = configured or webcam
    if not source:
        return {}
    stream = source.get("stream_url") or None
    snapshot = source.get("snapshot_url") or None
    if snapshot is None and stream and "action=stream" in stream:
        snapshot = stream.replace("action=stream", "action=snapshot")
    flip_h = bool(source.get("flip_horizontal"))
    flip_v = bool(source.get("flip_vertical"))
    try:
        rotation = int(source.get("rotation") or 0) % 360
    except (TypeError, ValueError):
        rotation = 0
    return {
        "cam_url": camera.absolute_url(stream, local_ip),
        "snapshot_url": camera.absolute_url(snapshot, local_ip),
        "flip_horizontal": flip_h, "flip_vertical": flip_v,
        "rotation": rotation,
        "transform": camera.transform_bitmask(flip_h, flip_v, rotation),
    }


class CameraUploads:
    def __init__(self, emit, post, settings):
        self.emit = emit          # emit(event, data) -> bool, connector thread
        self.post = post          # post(callable) onto the connector thread
        self.max_size = settings.get("max_image_size", 150000)
        self.urls = UploadUrls()
        self.health = CameraHealth()
        self.cadence = SnapshotCadence(
            printing_interval=settings.get("status_interval", 10.),
            idle_interval=settings.get("idle_snapshot_interval", 300.))
        self.camera = {}
        self.busy = False
        self.timelapse = None     # {"job_id", "path", "since"} while held

    def set_camera(self, cam):
        self.camera = cam
        self.health = CameraHealth()

    def reset_connection(self):
        """A new connection: URLs issued to the old one are not reused."""
        self.urls.clear()

    # --- cloud answers --------------------------------------------------

    def on_get_url_response(self, data, now):
        if not self.urls.store(data, now):
            log.info("polar_cloud: upload URL refused: %s",
                     str(data.get("message") or data.get("status"))[:120])

    # --- snapshots (called every tick while online) ----------------------

    def tick(self, now, serial, status, printing_cloud_job):
        """status: the last status sent; printing_cloud_job: its job id when
        a cloud job is preparing, printing or paused, else None."""
        self._timelapse_tick(now, serial)
        if self.busy or not self.camera.get("snapshot_url") or status is None:
            return
        kind = "printing" if printing_cloud_job else "idle"
        job_id = printing_cloud_job or status.get("jobId", "0")
        if not self.cadence.due(now, bool(printing_cloud_job)) \
                or not self.health.may_try(now):
            return
        entry = self.urls.get(kind, job_id, now)
        if entry is None:
            self._ask_url(kind, job_id, serial, now)
            return
        self.cadence.taken(now)
        request = {"action": "snapshot",
                   "snapshot_url": self.camera["snapshot_url"],
                   "flip_horizontal": self.camera["flip_horizontal"],
                   "flip_vertical": self.camera["flip_vertical"],
                   "rotation": self.camera["rotation"],
                   "max_size": min(self.max_size, entry["max_size"]),
                   "upload": {"url": entry["url"],
                              "fields": entry["fields"]}}
        self._start(request, SNAPSHOT_TIMEOUT, self._snapshot_done, kind)

    def _ask_url(self, kind, job_id, serial, now):
        if self.urls.want(kind, job_id, now):
            payload = {"serialNumber": serial, "method": "post",
                       "type": kind}
            if kind != "idle" or job_id:
                payload["jobId"] = job_id
            self.urls.requested(kind, job_id, now)
            self.emit("getUrl", payload)

    def _start(self, request, timeout, done, kind):
        self.busy = True

        def work():
            try:
                result, error = camera.take_and_upload(request, timeout), None
            except ChildError as e:
                result, error = None, e
            except Exception as e:    # never let the upload thread die loud
                result, error = None, ChildError(str(e))
            self.post(lambda: done(kind, result, error))
        threading.Thread(target=work, name="polar_cloud_upload",
                         daemon=True).start()

    def _snapshot_done(self, kind, result, error):
        self.busy = False
        now = time.monotonic()
        if error is None:
            if self.health.ok(now):
                log.info("polar_cloud: camera works again")
            return
        where = getattr(error, "kind", None) or str(error).split(":")[0]
        if where == "upload":
            # the URL may have expired or been refused: ask for a new one
            self.urls.clear()
            log.debug("polar_cloud: snapshot upload failed: %s", error)
            return
        if self.health.failed(now, str(error)):
            log.info("polar_cloud: camera snapshot failed (%s); retrying"
                     " with backoff, logged once", error)

    # --- timelapse --------------------------------------------------------

    def on_timelapse(self, status, path, jobs, now):
        """A moonraker-timelapse render event for the last cloud job."""
        if status in ("started", "running"):
            if self.timelapse is None:
                job_id = jobs.hold_postprocessing(now)
                if job_id is not None:
                    self.timelapse = {"job_id": job_id, "path": None,
                                      "since": now, "jobs": jobs}
            return
        if status == "success" and path:
            if self.timelapse is None:
                job_id = jobs.hold_postprocessing(now)
                if job_id is None:
                    return
                self.timelapse = {"job_id": job_id, "since": now,
                                  "jobs": jobs}
            self.timelapse["path"] = path
            self.timelapse["url_since"] = now
            return
        self._end_timelapse("render %s" % (status or "failed",))

    def _timelapse_tick(self, now, serial):
        tl = self.timelapse
        if tl is None or self.busy:
            return
        if now - tl["since"] > HOLD_LIMIT:
            self._end_timelapse("took too long")
            return
        if not tl.get("path"):
            return
        entry = self.urls.get("timelapse", tl["job_id"], now)
        if entry is None:
            if now - tl["url_since"] > URL_WAIT:
                self._end_timelapse("no upload URL from Polar Cloud")
                return
            self._ask_url("timelapse", tl["job_id"], serial, now)
            return
        request = {"action": "upload_file", "path": tl["path"],
                   "filename": "timelapse.mp4", "content_type": "video/mp4",
                   "max_size": None,
                   "upload": {"url": entry["url"], "fields": entry["fields"]}}
        self._start(request, TIMELAPSE_TIMEOUT, self._timelapse_done,
                    "timelapse")

    def _timelapse_done(self, kind, result, error):
        self.busy = False
        self._end_timelapse("uploaded" if error is None
                            else "upload failed: %s" % (error,))

    def _end_timelapse(self, outcome):
        tl, self.timelapse = self.timelapse, None
        if tl is None:
            return
        log.info("polar_cloud: timelapse for job %s: %s", tl["job_id"],
                 outcome)
        tl["jobs"].release_postprocessing()
