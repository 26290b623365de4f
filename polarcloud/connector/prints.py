"""Cloud print jobs: `print` and `cancel` from Polar Cloud
(docs/protocol.md#print).

The download runs in the download worker (a child process) watched by a
short-lived thread, so the connector keeps reporting status 2 with
progress meanwhile; the print is started on the reactor only once the file
is complete, and a file that cannot be started is removed here, never on
the reactor.
"""
import logging
import threading
import time

from .. import protocol as P
from ..printer import ACTIVE_PRINT_STATES
from ..printfiles import (format_size, job_fields, job_filename,
                          part_path, pick_print_url, remove_quietly,
                          remove_stale_parts)
from ..text import clean
from .runner import ChildError, ChildProcess

log = logging.getLogger("polar_cloud")

PROGRESS_CONSOLE_STEP = 10  # percent between download lines in the console
READ_TIMEOUT = 30.          # connecting, and each read, in the worker
SILENCE_SLACK = 10.


class CloudPrints:
    def __init__(self, conn, settings):
        self.conn = conn
        self.settings = settings
        self.download = None    # the ChildProcess while downloading

    def remove_leftovers(self):
        """At start (connector thread): no download runs yet, so any .part
        file is one a crash left behind."""
        if self.settings.gcode_dir and self.download is None:
            for name in remove_stale_parts(self.settings.gcode_dir):
                log.info("polar_cloud: removed %s, left by a download cut"
                         " short", name)

    def stop(self):
        if self.download is not None:
            self.download.cancel()

    # --- cloud commands -------------------------------------------------

    def on_cancel(self, data):
        if self.download is not None:
            self.download.cancel()      # ends the job when the worker stops
            return
        self.conn.reporter.jobs.cancel_requested()
        self.conn.run_on_printer("cancel", data)

    def on_print(self, data):
        conn = self.conn
        jobs = conn.reporter.jobs
        job_id, name = job_fields(data)
        if job_id is None:
            self.refuse(data.get("jobId"), "the job id is not valid text")
            return
        current = jobs.job
        if current and current.get("id") == job_id:
            log.info("polar_cloud: print %s already in progress",
                     clean(job_id))
            return
        sample = conn.reporter.sample or {}
        if not self.settings.gcode_dir:
            self.refuse(job_id, "[virtual_sdcard] is not configured")
            return
        if current or sample.get("state") in ACTIVE_PRINT_STATES \
                or sample.get("klippy") != "ready":
            self.refuse(job_id, "the printer is busy or not ready")
            return
        try:
            url = pick_print_url(data)
        except ValueError as e:
            self.refuse(job_id, str(e))
            return
        filename = job_filename(name, job_id)
        jobs.begin_download(job_id, name or filename, time.monotonic(),
                            time.time())
        conn.reporter.force()
        conn.host.console("Polar Cloud: downloading job %s (%s)"
                          % (clean(job_id), filename))
        request = {"url": url, "dest_dir": self.settings.gcode_dir,
                   "filename": filename,
                   "max_bytes": self.settings.max_download_bytes,
                   "min_free_bytes": self.settings.min_free_bytes,
                   "read_timeout": READ_TIMEOUT}
        self.download = ChildProcess(
            "download", request, silence=READ_TIMEOUT + SILENCE_SLACK,
            first_silence=2 * READ_TIMEOUT + SILENCE_SLACK,
            on_message=self._progress_reporter())
        threading.Thread(target=self._wait_download, args=(self.download,),
                         name="polar_cloud_download", daemon=True).start()

    def refuse(self, job_id, why):
        conn = self.conn
        shown = clean(job_id)
        log.info("polar_cloud: print job %s refused: %s", shown, why)
        conn.host.console("Polar Cloud: print job %s refused: %s"
                          % (shown, why))
        if isinstance(job_id, str) and job_id and job_id != P.LOCAL_JOB_ID:
            # tell the cloud, so its queue never waits on this job
            conn.emit("job", P.build_job(conn.serial, job_id, "canceled"))

    # --- download -------------------------------------------------------

    def _progress_reporter(self):
        shown = [-PROGRESS_CONSOLE_STEP]

        def apply(done, total):
            percent = 100. * done / total if total else None
            self.conn.reporter.jobs.download_progress(percent)
            if percent is not None and \
                    percent >= shown[0] + PROGRESS_CONSOLE_STEP:
                shown[0] = percent - percent % PROGRESS_CONSOLE_STEP
                self.conn.host.console(
                    "Polar Cloud: downloading %.0f%% (%s of %s)" % (
                        percent, format_size(done), format_size(total)))

        def progress(message):
            # on the download thread: hand over to the connector thread
            done, total = message.get("progress"), message.get("total")
            if isinstance(done, int):
                self.conn.post(apply, done, total)
        return progress

    def _wait_download(self, child):
        """Download thread: waits on the worker process, reports back."""
        try:
            result, error = child.run(), None
        except ChildError as e:
            result, error = None, e
        if child.returncode is not None and child.returncode < 0:
            # killed: the worker could not remove its temp file
            remove_quietly(part_path(self.settings.gcode_dir,
                                     child.request["filename"]))
        if child.cancelled and child.result:
            remove_quietly(child.result["path"])  # landed just before
        self.conn.post(self._download_done, child, result, error)

    def _download_done(self, child, result, error):
        if child is not self.download:
            return
        self.download = None
        conn = self.conn
        jobs = conn.reporter.jobs
        conn.reporter.force()
        now = time.monotonic()
        if error is not None or jobs.job is None:
            if child.cancelled:
                log.info("polar_cloud: download cancelled")
                jobs.cancel_download(now)
            else:
                self.failed("download failed: %s" % (error,))
            return
        rel = "polar_cloud/" + result["filename"]
        jobs.download_done(rel, now)

        def started(error):
            # on the reactor: the file is removed on the connector thread
            if error is not None:
                conn.post(self._start_failed, result["path"], error)
        conn.host.start_print(rel, started)

    def _start_failed(self, path, error):
        remove_quietly(path)
        self.failed("could not start the print: %s" % (error,))

    def failed(self, why):
        jobs = self.conn.reporter.jobs
        job_id = clean(jobs.job.get("id")) if jobs.job else None
        log.info("polar_cloud: cloud job %s failed: %s", job_id, why)
        self.conn.host.console("Polar Cloud: job %s failed: %s"
                               % (job_id, why))
        jobs.cloud_job_failed(time.monotonic())
        self.conn.reporter.force()
