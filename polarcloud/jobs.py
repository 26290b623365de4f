"""Job lifecycle from Klipper snapshots: exactly one `job` event per job.

Klipper has no job events, so jobs are derived from successive snapshots of
print_stats (see klipper-integration-notes §3.7): a job starts when printing
or paused is seen, or when an end state appears with a new file load between
two snapshots (short jobs can skip `printing`), and ends on complete,
cancelled, error, a return to standby, or Klippy leaving `ready`.

Completion sequence: a cloud job reports 5,5,5 then 7,7,7 (one per status
sent, about 10 s apart) and a cancelled or failed one 6,6,6, as the OctoPrint
plugin that Polar's specification names as its reference does.  The repeats
make sure the cloud sees the end even if one status is lost, and the 5 phase
is where a timelapse upload belongs.  Local jobs go straight back to the
normal mapping.  The `job` event itself is sent at once, for cloud jobs with
their id and for local jobs with "123".
"""
from . import protocol as P

COMPLETE_SEQUENCE = (P.POSTPROCESSING,) * 3 + (P.COMPLETE,) * 3
CANCEL_SEQUENCE = (P.CANCELLING,) * 3
FAILED_DOWNLOAD_SEQUENCE = (P.ERROR,)
START_GRACE = 30.    # a started cloud file must show up printing by then
TIMELAPSE_WINDOW = 1800.   # a render this long after a cloud job is its
END_STATES = ("complete", "cancelled", "error")


class JobTracker:
    def __init__(self, restored_job=None, pending_events=None):
        self.job = dict(restored_job) if restored_job else None
        self.restored = bool(restored_job)
        self.overlay = []
        self.overlay_job = None
        self.events = list(pending_events or [])
        self.last_state = None
        self.last_seq = None
        self.held = False
        self.last_cloud = None
        self.now = 0.
        self.changed = False   # persistent state changed since last save

    # --- what the connection asks ---------------------------------------

    def hold_postprocessing(self, now):
        """Report 5 while a timelapse of the last cloud job renders and
        uploads (if that job ended recently); returns its id or None."""
        last = self.last_cloud
        if last is None or self.job is not None \
                or now - last["ended"] > TIMELAPSE_WINDOW:
            return None
        self.held = True
        self.overlay_job = last
        return last["id"]

    def release_postprocessing(self):
        """Always called after a hold, whatever happened to the upload."""
        if not self.held:
            return
        self.held = False
        if not self.overlay:
            self.overlay = [P.COMPLETE] * 3

    def status_job(self):
        """The job shown in status: the ended job during its end sequence."""
        if self.overlay or self.held:
            return self.overlay_job
        return self.job

    def status_code(self, snap):
        if self.held:
            return P.POSTPROCESSING
        if self.overlay:
            return self.overlay[0]
        return P.base_code(snap, self.job)

    def status_sent(self):
        if self.overlay and not self.held:
            self.overlay.pop(0)
            if not self.overlay and not self.held:
                self.overlay_job = None

    def take_events(self):
        events, self.events = self.events, []
        return events

    def persistent(self):
        """What must survive a restart: (active job, unsent job events)."""
        job = None
        if self.job:
            job = {k: self.job[k] for k in ("id", "cloud", "filename", "name")
                   if k in self.job}
        return job, list(self.events)

    def is_busy(self):
        return self.job is not None

    # --- cloud job phases -----------------------------------------------

    def begin_download(self, job_id, name, now, now_epoch):
        self._set_job({"id": job_id, "cloud": True, "name": name,
                       "filename": None, "downloading": True,
                       "download_percent": None, "since": now,
                       "started_epoch": now_epoch})
        self.overlay = []

    def download_progress(self, percent):
        if self.job and self.job.get("downloading"):
            self.job["download_percent"] = percent

    def download_done(self, filename, now):
        if self.job and self.job.get("downloading"):
            self.job.update(downloading=False, filename=filename, since=now,
                            starting=True)
            self.changed = True

    def cloud_job_failed(self):
        """Download or start failed: 12 once, then the normal state."""
        if self.job and self.job.get("cloud"):
            self._end("canceled", FAILED_DOWNLOAD_SEQUENCE)

    def cancel_download(self):
        """The cloud cancelled the job while its file was downloading."""
        if self.job and self.job.get("downloading"):
            self._end("canceled", CANCEL_SEQUENCE)

    def cancel_requested(self):
        if self.job:
            self.job["cancelling"] = True

    # --- snapshots ------------------------------------------------------

    def update(self, snap, now):
        self.now = now
        klippy = snap.get("klippy")
        if klippy == "startup":
            return
        state = snap.get("state")
        seq = snap.get("file_loads")
        new_load = self.last_seq is not None and seq != self.last_seq
        prev_state, self.last_state, self.last_seq = self.last_state, state, seq
        job = self.job
        if job and self.restored:
            self.restored = False
            if not (klippy == "ready" and state in ("printing", "paused")
                    and snap.get("filename") == job.get("filename")):
                # Klippy restarted (or the host rebooted) during this job.
                self._end("canceled", CANCEL_SEQUENCE)
                return
        if klippy != "ready":
            if job and not job.get("downloading"):
                self._end("canceled", CANCEL_SEQUENCE)
            return
        if job and job.get("downloading"):
            return
        if job and job.get("starting"):
            if state in ("printing", "paused") and (
                    snap.get("filename") == job["filename"]):
                job["starting"] = False
            elif state in END_STATES and new_load and (
                    snap.get("filename") == job["filename"]):
                job["starting"] = False   # fast job: ended between snapshots
            elif now - job["since"] > START_GRACE:
                self.cloud_job_failed()
                return
            else:
                return
        if state in ("printing", "paused"):
            if job and snap.get("filename") != job.get("filename"):
                self._end("canceled", CANCEL_SEQUENCE)
                job = None
            if job is None:
                self._start_local(snap)
            self._record_stats(snap)
            return
        if state in END_STATES:
            if job is None and (new_load or prev_state not in (
                    None, state)) and prev_state not in END_STATES:
                self._start_local(snap)     # short job never seen printing
            if self.job:
                self._record_stats(snap)
                if state == "complete":
                    self._end("completed", COMPLETE_SEQUENCE)
                else:
                    self._end("canceled", CANCEL_SEQUENCE)
            return
        # standby: a job that vanished (reset by a cancel macro) was cancelled
        if job:
            self._end("canceled", CANCEL_SEQUENCE)

    # --- internals ------------------------------------------------------

    def _set_job(self, job):
        self.job = job
        self.changed = True

    def _start_local(self, snap):
        self._set_job({"id": P.LOCAL_JOB_ID, "cloud": False,
                       "filename": snap.get("filename"),
                       "name": snap.get("filename")})
        self.overlay = []
        self.overlay_job = None

    def _record_stats(self, snap):
        self.job["stats"] = {
            "printSeconds": int(snap.get("print_duration") or 0),
            "filamentUsed": int(snap.get("filament_used") or 0),
            "bytesRead": int(snap.get("file_position") or 0),
            "fileSize": int(snap.get("file_size") or 0)}

    def _end(self, state, sequence):
        job = self.job
        stats = job.get("stats") or {"printSeconds": 0, "filamentUsed": 0,
                                     "bytesRead": 0, "fileSize": 0}
        event = {"jobId": job["id"], "state": state}
        event.update(stats)
        self.events.append(event)
        if job.get("cloud"):
            self.overlay = list(sequence)
            self.overlay_job = self.last_cloud = {
                "id": job["id"], "cloud": True, "name": job.get("name"),
                "ended": self.now}
        self.job = None
        self.changed = True
