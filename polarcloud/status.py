"""Printer samples -> Polar Cloud `status` payloads, and when to send one.

A *sample* is a plain dict of printer state made on Klippy's reactor
(polarcloud/reactor/sampler.py).  Pure functions, no I/O.
"""
import datetime

from . import protocol as P
from .printer import HEATERS

PROGRESS_LABELS = {
    P.IDLE: "Idle", P.SERIAL: "Printing", P.PREPARING: "Preparing",
    P.PRINTING: "Printing", P.PAUSED: "Paused",
    P.POSTPROCESSING: "Post processing", P.CANCELLING: "Cancelling",
    P.COMPLETE: "Complete", P.UPDATING: "Updating", P.ERROR: "Error",
    P.OFFLINE: "Offline",
}
NOT_ACTIVE = (P.IDLE, P.ERROR, P.OFFLINE)


def percent(sample):
    size = sample.get("file_size") or 0
    if size <= 0:
        return None
    return min(100., 100. * (sample.get("file_position") or 0) / size)


def base_code(sample, job):
    """Status code from Klipper's state alone (no end-of-job overlay).

    job: the active job dict of jobs.JobTracker, or None."""
    klippy = sample.get("klippy")
    if klippy in ("shutdown", "error"):
        return P.ERROR
    if klippy != "ready":
        return P.OFFLINE   # startup / MCU not connected: the cloud offers CONNECT
    if job and (job.get("downloading") or job.get("starting")):
        return P.PREPARING
    state = sample.get("state")
    if state == "printing":
        if job and job.get("cancelling"):
            return P.CANCELLING
        if not sample.get("print_duration"):
            return P.PREPARING    # heating / homing before the first extrusion
        return P.PRINTING if job and job.get("cloud") else P.SERIAL
    if state == "paused":
        return P.PAUSED
    if state == "error":
        return P.ERROR
    # standby, complete and cancelled: the job (if any) has ended and its
    # end sequence is reported through the overlay; the printer is ready.
    return P.IDLE


def _detail(code, sample, job):
    if code == P.ERROR:
        return (sample.get("message") or "Klipper error")[:200]
    if code == P.OFFLINE:
        return "Klipper is not connected to the printer"
    if code == P.UPDATING:
        return "Software update in progress..."
    if job and job.get("downloading"):
        pct = job.get("download_percent")
        return "Downloading file for job: %s%s" % (
            job.get("id"), "" if pct is None else " (%.0f%%)" % (pct,))
    if code in (P.SERIAL, P.PRINTING, P.PAUSED, P.PREPARING,
                P.CANCELLING) and job:
        pct = percent(sample)
        name = job.get("name") or sample.get("filename") or ""
        if pct is None:
            return "Printing Job: %s" % (name,)
        return "Printing Job: %s Percent Complete: %.1f%%" % (name, pct)
    if code in (P.POSTPROCESSING, P.COMPLETE):
        return "Complete: 100.0%"
    if code == P.CANCELLING:
        return "Print was cancelled"
    return ""


def _iso_utc(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_status(serial, code, sample, job, now_epoch):
    """One status payload (docs/protocol.md#status).

    Types follow Polar3D's newest connector (integer status and counters,
    strings for estimatedTime/filamentUsed/startTime); every field is always
    present, with jobId "0"/"123"/cloud id as the OctoPrint plugin does."""
    active = bool(job) and code not in NOT_ACTIVE
    st = {
        "serialNumber": serial, "status": code, "protocol": P.PROTOCOL,
        "jobId": job["id"] if job else P.IDLE_JOB_ID,
        "progress": PROGRESS_LABELS.get(code, ""),
        "progressDetail": _detail(code, sample, job),
        "estimatedTime": "0", "filamentUsed": "0", "startTime": "0",
        "printSeconds": 0, "bytesRead": 0, "fileSize": 0,
    }
    if active and not job.get("downloading"):
        printed = sample.get("print_duration") or 0.
        pct = percent(sample)
        # estimatedTime: estimated total print time (elapsed printing time
        # scaled by byte progress) once 1% is done; "0" before that.
        if pct and pct >= 1. and printed > 0:
            st["estimatedTime"] = "%d" % (printed * 100. / pct,)
        st["filamentUsed"] = "%d" % (sample.get("filament_used") or 0.,)
        st["printSeconds"] = int(printed)
        st["bytesRead"] = int(sample.get("file_position") or 0)
        st["fileSize"] = int(sample.get("file_size") or 0)
        if job.get("print_start_epoch"):
            st["startTime"] = _iso_utc(job["print_start_epoch"])
    elif active and job.get("downloading"):
        st["startTime"] = _iso_utc(job.get("started_epoch", now_epoch))
    temps = sample.get("temps") or {}
    for key, _heater, target_key in HEATERS:
        if key in temps:
            temp, target = temps[key]
            st[key] = round(float(temp), 1)
            st[target_key] = round(float(target), 1)
    return st


# Cadence (docs/protocol.md#cadence) ----------------------------------------

HOT_TEMP = 50.
ACTIVE_INTERVAL = 10.
IDLE_INTERVAL = 60.
TEMP_CHANGE_INTERVAL = 5.
MIN_GAP = .5    # statuses closer than this are coalesced into one
TEMP_KEYS = tuple(key for key, _heater, _target in HEATERS)
TARGET_KEYS = tuple(target for _key, _heater, target in HEATERS)
KEY_FIELDS = ("status", "jobId") + TARGET_KEYS


def is_active(status):
    if status["status"] not in NOT_ACTIVE:
        return True
    return any(status.get(k, 0) > 0 for k in TARGET_KEYS) or any(
        status.get(k, 0) > HOT_TEMP for k in TEMP_KEYS)


class StatusCadence:
    """Decides when a freshly built status must go out.

    At once when the status code, job id or a target changes (so a cloud
    command's visible effect, too); temperature changes of >= 1 C at most
    every 5 s; a heartbeat every 10 s while printing or hot, every 60 s
    otherwise.  Two statuses are never closer than MIN_GAP: what comes
    sooner waits and goes out as one status with the newest state (a
    burst of cloud commands costs one status, not one each)."""

    def __init__(self, active_interval=ACTIVE_INTERVAL):
        self.active_interval = active_interval
        self.last = None
        self.last_time = None
        self.forced = True

    def force(self):
        self.forced = True

    def due(self, status, now):
        if self.last is None:
            return True
        if not self._wanted(status, now):
            return False
        if now - self.last_time < MIN_GAP:
            self.forced = True      # wanted, but wait for the gap
            return False
        return True

    def _wanted(self, status, now):
        if self.forced:
            return True
        since = now - self.last_time
        if any(status.get(k) != self.last.get(k) for k in KEY_FIELDS):
            return True
        if since >= (self.active_interval if is_active(status)
                     or is_active(self.last) else IDLE_INTERVAL):
            return True
        if since >= TEMP_CHANGE_INTERVAL and any(
                abs(status.get(k, 0) - self.last.get(k, 0)) >= 1.
                for k in TEMP_KEYS):
            return True
        return False

    def heartbeat(self):
        """Seconds between statuses when nothing changes."""
        if self.last is not None and is_active(self.last):
            return self.active_interval
        return IDLE_INTERVAL

    def next_due(self, status):
        """When `status` (just found not due) becomes due if nothing else
        changes: the end of the gap, a temperature change's 5 s, or the
        heartbeat."""
        if self.last is None:
            return 0.
        if self.forced:
            return self.last_time + MIN_GAP
        if any(abs(status.get(k, 0) - self.last.get(k, 0)) >= 1.
               for k in TEMP_KEYS):
            return self.last_time + TEMP_CHANGE_INTERVAL
        return self.last_time + self.heartbeat()

    def sent(self, status, now):
        self.last = status
        self.last_time = now
        self.forced = False

    def reset(self):
        self.last = None
        self.last_time = None
        self.forced = True
