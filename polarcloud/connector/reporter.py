"""Printer state -> what the cloud hears: `status`, `job` and
`sendNextPrint` (docs/protocol.md#status, #job-events).

Works on the connector thread without a socket: `send` takes the emit
function of the current connection, which returns False when sending
failed (the connection then drops and the next one sends again).
"""
import logging
import time

from .. import protocol as P
from ..jobs import JobTracker
from ..status import StatusCadence, build_status

log = logging.getLogger("polar_cloud")

UPDATE_STATUS_TIME = 600.   # report 8 this long after an update started
SNAPSHOT_CODES = (P.PREPARING, P.PRINTING, P.PAUSED)


class StatusReporter:
    def __init__(self, settings):
        self.send_next_print = settings.send_next_print
        self.cadence = StatusCadence(settings.status_interval)
        self.jobs = JobTracker()
        self.sample = None
        self.last_status = None
        self.updating_until = 0.
        self.recheck_at = 0.      # nothing can be due before, unless new input

    def restore(self, saved):
        self.jobs = JobTracker(saved)

    # --- inputs ---------------------------------------------------------

    def on_sample(self, sample, now, force=False):
        self.sample = sample
        self.jobs.update(sample, now)
        self.recheck_at = 0.
        if force:
            self.cadence.force()

    def force(self):
        self.cadence.force()
        self.recheck_at = 0.

    def set_updating(self, running, now):
        self.updating_until = now + UPDATE_STATUS_TIME if running else 0.
        self.force()

    def link_failed(self):
        self.jobs.link_failed()

    def new_connection(self):
        self.cadence.reset()
        self.recheck_at = 0.

    # --- output ---------------------------------------------------------

    def send(self, serial, emit, now):
        """Send queued job events, then a status if one is due.

        Returns the status sent, or None."""
        self.jobs.confirm(now)
        event = self.jobs.next_event()
        while event is not None:
            if not emit("job", P.build_job(serial, event["jobId"],
                                           event["state"], event)):
                return None     # kept: the next connection sends it
            log.info("polar_cloud: job %s %s", event["jobId"],
                     event["state"])
            self.jobs.event_sent(now)
            self.cadence.force()
            event = self.jobs.next_event()
        if self.sample is None or now < self.recheck_at:
            return None     # nothing new since the last look
        job = self.jobs.status_job()
        code = self.jobs.status_code(self.sample)
        if now < self.updating_until and code == P.IDLE:
            code = P.UPDATING
        status = build_status(serial, code, self.sample, job, time.time())
        if not self.cadence.due(status, now):
            self.recheck_at = self.cadence.next_due(status)
            return None
        if not emit("status", status):
            return None
        self.cadence.sent(status, now)
        self.jobs.status_sent()
        self.last_status = status
        if code == P.COMPLETE and job and job.get("cloud") \
                and not job.get("next_asked") and self.send_next_print:
            job["next_asked"] = True   # continuous printing (#send-next-print)
            emit("sendNextPrint", {"serialNumber": serial})
        return status

    def next_wakeup(self):
        """When something may be due without new input (0: now, None:
        nothing until a sample arrives)."""
        if self.jobs.next_event() is not None:
            return 0.
        if self.sample is None:
            return None
        return self.recheck_at

    def cloud_job_in_progress(self):
        """The cloud job's id while the last status showed it preparing,
        printing or paused (snapshots are then taken for that job)."""
        job = self.jobs.job
        if job and job.get("cloud") and self.last_status and \
                self.last_status["status"] in SNAPSHOT_CODES:
            return job["id"]
        return None
