"""Job lifecycle from printer samples: exactly one `job` event per job.

Klipper has no job events, so jobs are derived from successive samples of
print_stats: a job starts when printing or paused is seen, or when an end
state appears after a file load that no job has accounted for yet (a short
job can go from load to `complete` between two samples), and it ends on
complete, cancelled, error, a return to standby, or Klippy leaving `ready`.

End sequence (docs/protocol.md#end-of-job): a cloud job reports 5,5,5 then
7,7,7 (one per status sent) and a cancelled or failed one 6,6,6, as the
OctoPrint plugin that Polar's specification names as its reference does.
The repeats make sure the cloud sees the end even if one status is lost, and
the 5 phase is where a timelapse upload belongs.  Local jobs go straight
back to the normal mapping.  The `job` event is queued at once, for cloud
jobs with their id and for local jobs with "123"; it leaves the queue only
when the connection says it was sent (`event_sent`), so nothing is lost to
an outage or a restart (the queue is saved with the active job).

Every method that depends on time takes `now` (monotonic seconds).
"""
from . import protocol as P
from . import status as S
from .printer import ACTIVE_PRINT_STATES, END_PRINT_STATES

COMPLETE_SEQUENCE = (P.POSTPROCESSING,) * 3 + (P.COMPLETE,) * 3
CANCEL_SEQUENCE = (P.CANCELLING,) * 3
FAILED_SEQUENCE = (P.ERROR,)
START_GRACE = 30.    # a started cloud file must show up printing by then
TIMELAPSE_WINDOW = 1800.   # a render this long after a cloud job is its
MAX_QUEUED_EVENTS = 100    # job events kept while the cloud is unreachable
# A job event is only written into the socket: the protocol has no
# acknowledgement, and into a link that silently drops packets the write
# succeeds all the same.  The library notices such a link when the
# server's pings stop (Engine.IO's defaults: 25 s interval + 20 s timeout),
# so an event whose connection is still up this long after it was sent
# has arrived; one whose connection failed before is sent again.
CONFIRM_AFTER = 60.
SAVED_JOB_KEYS = ("id", "cloud", "filename", "name")
NO_STATS = {"printSeconds": 0, "filamentUsed": 0, "bytesRead": 0,
            "fileSize": 0}


class JobTracker:
    def __init__(self, saved=None):
        """saved: what saved_state() returned before a restart, or None."""
        saved = saved if isinstance(saved, dict) else {}
        job = saved.get("active_job")
        self.job = dict(job) if isinstance(job, dict) and job.get("id") \
            else None
        self.restored = self.job is not None
        events = saved.get("pending_job_events")
        self.events = [e for e in events if isinstance(e, dict)
                       and e.get("jobId") and e.get("state")] \
            if isinstance(events, list) else []
        self.unconfirmed = []    # send times of the first events (sent)
        self.sent_count = 0      # first events sent at least once
        self.overlay = []        # end sequence still to report
        self.overlay_job = None  # the ended job it belongs to
        self.held = False        # status 5 held for a timelapse
        self.last_cloud = None   # the last cloud job that ended
        self.last_state = None
        self.accounted_loads = None  # file_loads when a job was last seen
        self.needs_save = False

    # --- what the connection asks ---------------------------------------

    def next_event(self):
        """The oldest unsent job event (without the serial), or None."""
        n = len(self.unconfirmed)
        return self.events[n] if len(self.events) > n else None

    def event_sent(self, now=0.):
        """The event next_event() returned was written to the socket; it
        stays queued until confirm() or link_failed()."""
        if len(self.events) > len(self.unconfirmed):
            self.unconfirmed.append(now)
            self.sent_count = max(self.sent_count, len(self.unconfirmed))
            self.needs_save = True

    def confirm(self, now):
        """Events sent CONFIRM_AFTER ago on a connection still up have
        arrived: they leave the queue."""
        while self.unconfirmed and now - self.unconfirmed[0] >= \
                CONFIRM_AFTER:
            self.unconfirmed.pop(0)
            self.events.pop(0)
            self.sent_count -= 1
            self.needs_save = True

    def link_failed(self):
        """The connection dropped without our asking: what it may have
        swallowed is sent again on the next one."""
        self.unconfirmed = []

    def saved_state(self):
        """What must survive a restart (kept in state.json).  Events sent
        at least once are not resent after a restart: a connection most
        likely delivered them, and a restart is no sign of a dead link
        (Klippy's restart itself drops the connection)."""
        job = None
        if self.job:
            job = {k: self.job[k] for k in SAVED_JOB_KEYS if k in self.job}
        return {"active_job": job, "pending_job_events":
                self.events[self.sent_count:]}

    def saved(self):
        self.needs_save = False

    def status_job(self):
        """The job shown in status: the ended job during its end sequence."""
        if self.overlay or self.held:
            return self.overlay_job
        return self.job

    def status_code(self, sample):
        if self.held:
            return P.POSTPROCESSING
        if self.overlay:
            return self.overlay[0]
        return S.base_code(sample, self.job)

    def status_sent(self):
        """One status went out: the end sequence moves on by one."""
        if self.overlay and not self.held:
            self.overlay.pop(0)
            if not self.overlay:
                self.overlay_job = None

    # --- timelapse hold -------------------------------------------------

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
            self.needs_save = True

    def cloud_job_failed(self, now):
        """Download or start failed: 12 once, then the normal state."""
        if self.job and self.job.get("cloud"):
            self._end("canceled", FAILED_SEQUENCE, now)

    def cancel_download(self, now):
        """The cloud cancelled the job while its file was downloading."""
        if self.job and self.job.get("downloading"):
            self._end("canceled", CANCEL_SEQUENCE, now)

    def cancel_requested(self):
        if self.job:
            self.job["cancelling"] = True

    # --- samples --------------------------------------------------------

    def update(self, sample, now):
        klippy = sample.get("klippy")
        if klippy == "startup":
            return
        state = sample.get("state")
        loads = sample.get("file_loads")
        if self.accounted_loads is None:
            self.accounted_loads = loads   # earlier loads belong to no job
        unaccounted_load = loads != self.accounted_loads
        prev_state, self.last_state = self.last_state, state
        job = self.job
        if job and self.restored:
            self.restored = False
            if not (klippy == "ready" and state in ACTIVE_PRINT_STATES
                    and sample.get("filename") == job.get("filename")):
                # Klippy restarted (or the host rebooted) during this job.
                self._end("canceled", CANCEL_SEQUENCE, now)
                return
        if klippy != "ready":
            if job and not job.get("downloading"):
                self._end("canceled", CANCEL_SEQUENCE, now)
            return
        if job and job.get("downloading"):
            return
        if job and job.get("starting"):
            ours = sample.get("filename") == job["filename"]
            if ours and (state in ACTIVE_PRINT_STATES or (
                    state in END_PRINT_STATES and unaccounted_load)):
                job["starting"] = False   # a fast job may already be over
            elif now - job["since"] > START_GRACE:
                self.cloud_job_failed(now)
                return
            else:
                return
        if state in ACTIVE_PRINT_STATES:
            if job and sample.get("filename") != job.get("filename"):
                self._end("canceled", CANCEL_SEQUENCE, now)
                job = None
            if job is None:
                self._start_local(sample)
            self.accounted_loads = loads
            self._record_stats(sample)
            return
        if state in END_PRINT_STATES:
            if job is None and prev_state not in END_PRINT_STATES and (
                    unaccounted_load or prev_state is not None):
                self._start_local(sample)     # short job never seen printing
            self.accounted_loads = loads
            if self.job:
                self._record_stats(sample)
                if state == "complete":
                    self._end("completed", COMPLETE_SEQUENCE, now)
                else:
                    self._end("canceled", CANCEL_SEQUENCE, now)
            return
        # standby: a job that vanished (reset by a cancel macro) was cancelled
        if job:
            self._end("canceled", CANCEL_SEQUENCE, now)

    # --- internals ------------------------------------------------------

    def _set_job(self, job):
        self.job = job
        self.needs_save = True

    def _start_local(self, sample):
        self._set_job({"id": P.LOCAL_JOB_ID, "cloud": False,
                       "filename": sample.get("filename"),
                       "name": sample.get("filename")})
        self.overlay = []
        self.overlay_job = None

    def _record_stats(self, sample):
        # A job's counters never go down: the sample taken as the next
        # file loads (reactor/sampler.py) already has virtual_sdcard's
        # position and size reset to 0, but print_stats not yet.
        old = self.job.get("stats") or NO_STATS
        new = {"printSeconds": int(sample.get("print_duration") or 0),
               "filamentUsed": int(sample.get("filament_used") or 0),
               "bytesRead": int(sample.get("file_position") or 0),
               "fileSize": int(sample.get("file_size") or 0)}
        self.job["stats"] = {k: max(old[k], new[k]) for k in new}
        if sample.get("start_epoch"):
            # the first one stays: the cloud sees one start time per job
            self.job.setdefault("print_start_epoch", sample["start_epoch"])

    def _end(self, state, sequence, now):
        job = self.job
        event = {"jobId": job["id"], "state": state}
        event.update(job.get("stats") or NO_STATS)
        self.events.append(event)
        dropped = max(0, len(self.events) - MAX_QUEUED_EVENTS)
        del self.events[:dropped]
        del self.unconfirmed[:dropped]
        self.sent_count = max(0, self.sent_count - dropped)
        if job.get("cloud"):
            self.overlay = list(sequence)
            self.overlay_job = self.last_cloud = {
                "id": job["id"], "cloud": True, "name": job.get("name"),
                "ended": now}
        self.job = None
        self.needs_save = True
