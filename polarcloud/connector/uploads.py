"""Snapshots and timelapses for Polar Cloud (docs/protocol.md#uploads).

Owned by the connector thread.  Camera fetches, image work and uploads run
in the camera worker (a child process) started from a short-lived upload
thread, so neither the reactor nor the connector loop ever waits on a
camera or an S3 upload; results come back through the connector's inbox.
"""
import logging
import threading
import time

from ..backoff import Backoff
from ..camera import REQUEST_TIMEOUT, SnapshotCadence
from ..text import clean
from .runner import ChildError, run

log = logging.getLogger("polar_cloud")

URL_WAIT = 30.          # a timelapse waits this long for its upload URL
SNAPSHOT_TIMEOUT = 60.
TIMELAPSE_TIMEOUT = 900.
HOLD_LIMIT = 1200.      # never report 5 longer than this for one render
CAMERA_RETRY = (30., 600.)   # a failing camera is retried 30 s .. 10 min


class CameraUploads:
    def __init__(self, conn, settings):
        self.conn = conn
        self.max_size = settings.max_image_size
        self.cadence = SnapshotCadence(
            printing_interval=settings.status_interval,
            idle_interval=settings.idle_snapshot_interval)
        self.camera = {}
        self.retry = Backoff(*CAMERA_RETRY, jitter=False)
        self.next_try = 0.
        self.url_wait_until = 0.  # a getUrl is answered (or lost) by then
        self.busy = False
        self.timelapse = None     # {"job_id", "path", "since"} while held

    def set_camera(self, camera):
        self.camera = camera
        self.retry.reset()
        self.next_try = 0.

    # --- cloud answers --------------------------------------------------

    def on_get_url_response(self, data):
        self.url_wait_until = 0.
        session = self.conn.session
        if session is not None and not session.upload_urls.store(
                data, time.monotonic()):
            log.info("polar_cloud: upload URL refused: %s",
                     clean(data.get("message") or data.get("status"), 120))

    # --- snapshots (every tick while online) -----------------------------

    def tick(self, now, session, serial, status, cloud_job):
        """status: the last status sent; cloud_job: the cloud job's id
        while it prepares, prints or is paused, else None."""
        self._timelapse_tick(now, session, serial)
        if self.busy or not self.camera.get("snapshot_url") or status is None:
            return
        kind = "printing" if cloud_job else "idle"
        job_id = cloud_job or status.get("jobId", "0")
        if not self.cadence.due(now, bool(cloud_job)) or now < self.next_try:
            return
        entry = session.upload_urls.get(kind, job_id, now)
        if entry is None:
            self._ask_url(session, kind, job_id, serial, now)
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
        self._start(request, SNAPSHOT_TIMEOUT, self._snapshot_done)

    def next_wakeup(self, cloud_job):
        """When a snapshot may be due (None: no camera)."""
        if not self.camera.get("snapshot_url") or self.busy:
            return None
        return max(self.next_try, self.url_wait_until,
                   self.cadence.next_due(bool(cloud_job)))

    def _ask_url(self, session, kind, job_id, serial, now):
        urls = session.upload_urls
        self.url_wait_until = now + REQUEST_TIMEOUT
        if urls.want(kind, job_id, now):
            payload = {"serialNumber": serial, "method": "post",
                       "type": kind}
            if kind != "idle" or job_id:
                payload["jobId"] = job_id
            urls.requested(kind, job_id, now)
            self.conn.emit("getUrl", payload)

    def _start(self, request, timeout, done):
        self.busy = True

        def work():
            try:
                result, error = run("camera", request, timeout), None
            except ChildError as e:
                result, error = None, e
            except Exception as e:    # never let the upload thread die loud
                result, error = None, ChildError(str(e))
            self.conn.post(done, result, error)
        threading.Thread(target=work, name="polar_cloud_upload",
                         daemon=True).start()

    def _snapshot_done(self, result, error):
        self.busy = False
        now = time.monotonic()
        if error is None:
            if self.retry.failures:
                log.info("polar_cloud: camera works again")
            self.retry.reset()
            self.next_try = 0.
            return
        if error.kind == "upload":
            # the URL may have expired or been refused: ask for a new one
            session = self.conn.session
            if session is not None:
                session.upload_urls.clear()
            log.debug("polar_cloud: snapshot upload failed: %s", error)
            return
        first = not self.retry.failures
        self.next_try = now + self.retry.next_delay()
        if first:
            log.info("polar_cloud: camera snapshot failed (%s); retrying"
                     " with backoff, logged once", error)

    # --- timelapse --------------------------------------------------------

    def on_timelapse(self, status, path, now):
        """A moonraker-timelapse render event for the last cloud job."""
        jobs = self.conn.reporter.jobs
        if status in ("started", "running"):
            if self.timelapse is None:
                job_id = jobs.hold_postprocessing(now)
                if job_id is not None:
                    self.timelapse = {"job_id": job_id, "path": None,
                                      "since": now}
            return
        if status == "success" and path:
            if self.timelapse is None:
                job_id = jobs.hold_postprocessing(now)
                if job_id is None:
                    return
                self.timelapse = {"job_id": job_id, "since": now}
            self.timelapse["path"] = path
            self.timelapse["url_since"] = now
            return
        self._end_timelapse("render %s" % (status or "failed",))

    def _timelapse_tick(self, now, session, serial):
        tl = self.timelapse
        if tl is None or self.busy:
            return
        if now - tl["since"] > HOLD_LIMIT:
            self._end_timelapse("took too long")
            return
        if not tl.get("path"):
            return
        entry = session.upload_urls.get("timelapse", tl["job_id"], now)
        if entry is None:
            if now - tl["url_since"] > URL_WAIT:
                self._end_timelapse("no upload URL from Polar Cloud")
                return
            self._ask_url(session, "timelapse", tl["job_id"], serial, now)
            return
        request = {"action": "upload_file", "path": tl["path"],
                   "filename": "timelapse.mp4", "content_type": "video/mp4",
                   "max_size": None,
                   "upload": {"url": entry["url"], "fields": entry["fields"]}}
        self._start(request, TIMELAPSE_TIMEOUT, self._timelapse_done)

    def _timelapse_done(self, result, error):
        self.busy = False
        self._end_timelapse("uploaded" if error is None
                            else "upload failed: %s" % (error,))

    def _end_timelapse(self, outcome):
        tl, self.timelapse = self.timelapse, None
        if tl is None:
            return
        log.info("polar_cloud: timelapse for job %s: %s", tl["job_id"],
                 outcome)
        self.conn.reporter.jobs.release_postprocessing()
        self.conn.reporter.force()
