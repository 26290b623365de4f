"""Cloud print jobs: `print` and `cancel` from Polar Cloud (reference §6.1).

Owned by the connector thread (CloudConnection).  The download runs in the
download worker (a child process) watched by a short-lived thread, so the
connector keeps reporting status 2 with progress meanwhile; the print is
started on the reactor only once the file is complete.
"""
import logging
import threading
import time

from . import download
from . import protocol as P

log = logging.getLogger("polar_cloud")

PROGRESS_CONSOLE_STEP = 10  # percent between download lines in the console


def job_fields(data):
    """(job id, job name) from a print command, tolerating snake_case."""
    job_id = data.get("jobId", data.get("job_id"))
    job_id = str(job_id).strip()[:64] if isinstance(job_id, (str, int)) \
        and not isinstance(job_id, bool) else ""
    name = data.get("jobName", data.get("job_name"))
    return job_id or P.LOCAL_JOB_ID, name if isinstance(name, str) else ""


class CloudPrints:
    def __init__(self, conn):
        self.conn = conn
        self.download = None

    def stop(self):
        if self.download is not None:
            self.download.cancel()

    # --- cloud commands -------------------------------------------------

    def on_cancel(self, data):
        conn = self.conn
        if self.download is not None:
            self.download.cancel()      # ends the job when the worker stops
            return
        conn.jobs.cancel_requested()
        conn.host.cloud_command("cancel", data)
        conn.cadence.force()

    def on_print(self, data):
        conn = self.conn
        if not isinstance(data, dict):
            return
        job_id, name = job_fields(data)
        current = conn.jobs.job
        if current and current.get("id") == job_id:
            log.info("polar_cloud: print %s already in progress", job_id)
            return
        snap = conn.snapshot or {}
        if not conn.settings.get("gcode_dir"):
            self.refuse(job_id, "[virtual_sdcard] is not configured")
            return
        if current or snap.get("state") in ("printing", "paused") \
                or snap.get("klippy") != "ready":
            self.refuse(job_id, "the printer is busy or not ready")
            return
        try:
            _key, url = download.pick_print_url(data)
        except ValueError as e:
            self.refuse(job_id, str(e))
            return
        filename = download.job_filename(name, job_id)
        conn.jobs.begin_download(job_id, name or filename, time.monotonic(),
                                 time.time())
        conn.cadence.force()
        conn.host.console("Polar Cloud: downloading job %s (%s)"
                          % (job_id, filename))
        self.download = download.Download(
            url, conn.settings["gcode_dir"], filename,
            conn.settings["max_download_bytes"],
            min_free_bytes=conn.settings["min_free_bytes"],
            on_progress=self._progress_reporter())
        threading.Thread(target=self._run_download, args=(self.download,),
                         name="polar_cloud_download", daemon=True).start()

    def refuse(self, job_id, why):
        conn = self.conn
        log.info("polar_cloud: print job %s refused: %s", job_id, why)
        conn.host.console("Polar Cloud: print job %s refused: %s"
                          % (job_id, why))
        if job_id != P.LOCAL_JOB_ID:
            # tell the cloud, so its queue never waits on this job (§6.1)
            conn.emit("job", {"serialNumber": conn.serial, "jobId": job_id,
                               "state": "canceled", "printSeconds": 0,
                               "filamentUsed": 0, "bytesRead": 0,
                               "fileSize": 0})

    # --- download -------------------------------------------------------

    def _progress_reporter(self):
        shown = [-PROGRESS_CONSOLE_STEP]

        def apply(done, total):
            percent = 100. * done / total if total else None
            self.conn.jobs.download_progress(percent)
            if percent is not None and \
                    percent >= shown[0] + PROGRESS_CONSOLE_STEP:
                shown[0] = percent - percent % PROGRESS_CONSOLE_STEP
                self.conn.host.console(
                    "Polar Cloud: downloading %.0f%% (%s of %s)" % (
                        percent, download.format_size(done),
                        download.format_size(total)))

        def progress(done, total):
            # runs on the download thread: hand over to the connector thread
            self.conn.post("call", lambda: apply(done, total))
        return progress

    def _run_download(self, job_download):
        """Download thread: waits on the worker process, reports back."""
        try:
            result, error = job_download.run(), None
        except download.DownloadError as e:
            result, error = None, str(e)
        self.conn.post("call", lambda: self._download_done(
            job_download, result, error))

    def _download_done(self, job_download, result, error):
        if job_download is not self.download:
            return
        self.download = None
        conn = self.conn
        job = conn.jobs.job
        conn.cadence.force()
        if error is not None or job is None:
            if job_download.cancelled:
                log.info("polar_cloud: download cancelled")
                conn.jobs.cancel_download()
            else:
                self.failed("download failed: %s" % (error,))
            return
        rel = "polar_cloud/" + result["filename"]
        conn.jobs.download_done(rel, time.monotonic())

        def started(error):
            if error is not None:
                download.remove_quietly(result["path"])
                conn.post("call", lambda: self.failed(
                    "could not start the print: %s" % (error,)))
        conn.host.start_print(rel, started)

    def failed(self, why):
        conn = self.conn
        job = conn.jobs.job
        job_id = job.get("id") if job else None
        log.info("polar_cloud: cloud job %s failed: %s", job_id, why)
        conn.host.console("Polar Cloud: job %s failed: %s" % (job_id, why))
        conn.jobs.cloud_job_failed()
        conn.cadence.force()
