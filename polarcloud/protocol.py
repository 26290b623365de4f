"""Polar Cloud protocol payloads and rules (shared/polar-cloud-protocol.md).

Pure functions over plain dicts: no I/O, no Klippy.  Choices where the
reference leaves a question open are written next to the code.
"""
import datetime

PROTOCOL = "2"
MFG = "kl"          # Polar3D's own code for generic Klipper (§3.3)
LOCAL_JOB_ID = "123"  # placeholder for a print not started by the cloud (§4.8)
IDLE_JOB_ID = "0"

IDLE, SERIAL, PREPARING, PRINTING, PAUSED = 0, 1, 2, 3, 4
POSTPROCESSING, CANCELLING, COMPLETE, UPDATING = 5, 6, 7, 8
COLDPAUSED, CHANGINGFILAMENT, TCPIP, ERROR, OFFLINE = 9, 10, 11, 12, 13

MACHINE_TYPES = {"cartesian": "Cartesian", "delta": "Delta", "belt": "Belt"}

REGISTER_REASONS = {
    "EMAIL_PIN_ERROR": "the email and PIN were not accepted by Polar Cloud;"
                       " check the PIN in your Polar Cloud account settings",
    "FORBIDDEN": "this printer is already registered to another Polar Cloud"
                 " account; remove it there first",
    "SERVER_ERROR": "Polar Cloud could not add the printer; try again later",
    "MFG_MISSING": "Polar Cloud rejected the request (no manufacturer code);"
                   " this is a bug in polar_cloud, please report it",
    "MFG_UNKNOWN": "Polar Cloud rejected the manufacturer code; this is a"
                   " bug in polar_cloud, please report it",
}

# Events whose serialNumber may be missing (the server is not known to send
# one); a *different* serial is still ignored (§6.0).
SERIAL_OPTIONAL = frozenset([
    "helloResponse", "delete", "connectPrinter", "jogPrinter",
    "capabilitiesResponse", "unregisterResponse"])
# Events that come before a serial exists.
SERIAL_EXEMPT = frozenset(["welcome", "registerResponse"])


def accepts(event, data, serial):
    """True if a cloud packet is meant for this printer (§6.0)."""
    if event in SERIAL_EXEMPT:
        return True
    if not isinstance(data, dict):
        return False
    got = data.get("serialNumber")
    if got is None and event in SERIAL_OPTIONAL:
        return True
    return bool(serial) and got == serial


def register_failure_message(response):
    """User-facing text for a failed registerResponse."""
    if not isinstance(response, dict):
        return "unexpected answer from Polar Cloud: %.80r" % (response,)
    reason = response.get("reason")
    if reason in REGISTER_REASONS:
        return REGISTER_REASONS[reason]
    return "Polar Cloud refused the registration (%s)" % (
        str(reason or response.get("status") or "no reason")[:80],)


def register_serial(response):
    """The serial from a successful registerResponse, else None.

    Success needs status SUCCESS and a non-empty serial, as Polar3D's own
    connector checks; a bare string is never success (§3.5)."""
    if not isinstance(response, dict):
        return None
    serial = response.get("serialNumber")
    if response.get("status") != "SUCCESS" or not isinstance(serial, str):
        return None
    serial = serial.strip()
    return serial or None


def build_register(email, pin, public_key, identity):
    return {
        "mfg": MFG, "email": email, "pin": pin, "publicKey": public_key,
        "mfgSn": identity["mfg_sn"],
        "myInfo": {"MAC": identity["mac"], "protocolVersion": PROTOCOL,
                   "machineType": identity["machine_type"],
                   "printerType": identity["printer_make"]},
    }


def build_hello(serial, signature, identity, camera):
    """The union of both clients' hello fields (§2.3 suggestion)."""
    hello = {
        "serialNumber": serial, "signature": signature,
        "MAC": identity["mac"], "localIP": identity["local_ip"],
        "protocol": PROTOCOL, "mfgSn": identity["mfg_sn"],
        "machineType": identity["machine_type"],
        "printerType": identity["printer_make"],
        "printerMake": identity["printer_make"],
        "version": identity["version"],
        "camOff": 0 if camera.get("cam_url") or camera.get("snapshot_url")
        else 1,
        "transformImg": camera.get("transform", 0),
    }
    if camera.get("cam_url"):
        hello["camUrl"] = camera["cam_url"]
    return hello


# Status mapping -----------------------------------------------------------

def _percent(snap):
    size = snap.get("file_size") or 0
    if size <= 0:
        return None
    return min(100., 100. * (snap.get("file_position") or 0) / size)


def base_code(snap, job):
    """Status code from Klipper's state alone (no completion overlay).

    snap: plain snapshot made on the reactor (see klippy module);
    job: the active job dict from jobs.JobTracker or None."""
    klippy = snap.get("klippy")
    if klippy in ("shutdown", "error"):
        return ERROR
    if klippy != "ready":
        return OFFLINE      # startup / MCU not connected: cloud offers CONNECT
    if job and (job.get("downloading") or job.get("starting")):
        return PREPARING
    state = snap.get("state")
    if state == "printing":
        if job and job.get("cancelling"):
            return CANCELLING
        if not snap.get("print_duration"):
            return PREPARING    # heating / homing before the first extrusion
        return PRINTING if job and job.get("cloud") else SERIAL
    if state == "paused":
        return PAUSED
    if state == "error":
        return ERROR
    # standby, complete and cancelled: the job (if any) has ended and its
    # end sequence is reported through the overlay; the printer is ready.
    return IDLE


PROGRESS_LABELS = {
    IDLE: "Idle", SERIAL: "Printing", PREPARING: "Preparing",
    PRINTING: "Printing", PAUSED: "Paused", POSTPROCESSING: "Post processing",
    CANCELLING: "Cancelling", COMPLETE: "Complete", UPDATING: "Updating",
    ERROR: "Error", OFFLINE: "Offline",
}


def _detail(code, snap, job):
    if code == ERROR:
        return (snap.get("message") or "Klipper error")[:200]
    if code == OFFLINE:
        return "Klipper is not connected to the printer"
    if code == UPDATING:
        return "Software update in progress..."
    if job and job.get("downloading"):
        pct = job.get("download_percent")
        return "Downloading file for job: %s%s" % (
            job.get("id"), "" if pct is None else " (%.0f%%)" % (pct,))
    if code in (SERIAL, PRINTING, PAUSED, PREPARING, CANCELLING) and job:
        pct = _percent(snap)
        name = job.get("name") or snap.get("filename") or ""
        if pct is None:
            return "Printing Job: %s" % (name,)
        return "Printing Job: %s Percent Complete: %.1f%%" % (name, pct)
    if code in (POSTPROCESSING, COMPLETE):
        return "Complete: 100.0%"
    if code == CANCELLING:
        return "Print was cancelled"
    return ""


def _iso_utc(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_status(serial, code, snap, job, now_epoch):
    """One status payload (§4.1).

    Types follow Polar3D's newest connector (integer status and counters,
    strings for estimatedTime/filamentUsed/startTime); every field is always
    present, with jobId "0"/"123"/cloud id as the OctoPrint plugin does."""
    active = bool(job) and code not in (IDLE, ERROR, OFFLINE)
    st = {
        "serialNumber": serial, "status": code, "protocol": PROTOCOL,
        "jobId": job["id"] if job else IDLE_JOB_ID,
        "progress": PROGRESS_LABELS.get(code, ""),
        "progressDetail": _detail(code, snap, job),
        "estimatedTime": "0", "filamentUsed": "0", "startTime": "0",
        "printSeconds": 0, "bytesRead": 0, "fileSize": 0,
    }
    if active and not job.get("downloading"):
        printed = snap.get("print_duration") or 0.
        elapsed = snap.get("total_duration") or 0.
        pct = _percent(snap)
        # estimatedTime: estimated total print time (elapsed printing time
        # scaled by byte progress) once 1% is done; "0" before that.
        if pct and pct >= 1. and printed > 0:
            st["estimatedTime"] = "%d" % (printed * 100. / pct,)
        st["filamentUsed"] = "%d" % (snap.get("filament_used") or 0.,)
        st["printSeconds"] = int(printed)
        st["bytesRead"] = int(snap.get("file_position") or 0)
        st["fileSize"] = int(snap.get("file_size") or 0)
        if elapsed > 0:
            st["startTime"] = _iso_utc(now_epoch - elapsed)
    elif active and job.get("downloading"):
        st["startTime"] = _iso_utc(job.get("started_epoch", now_epoch))
    temps = snap.get("temps") or {}
    for key, target_key in (("tool0", "targetTool0"), ("tool1", "targetTool1"),
                            ("bed", "targetBed"),
                            ("chamber", "targetChamber")):
        if key in temps:
            temp, target = temps[key]
            st[key] = round(float(temp), 1)
            st[target_key] = round(float(target), 1)
    return st


# Cadence (§4.9 suggestion) ------------------------------------------------

HOT_TEMP = 50.
ACTIVE_INTERVAL = 10.
IDLE_INTERVAL = 60.
TEMP_CHANGE_INTERVAL = 5.
TEMP_KEYS = ("tool0", "tool1", "bed", "chamber")
TARGET_KEYS = ("targetTool0", "targetTool1", "targetBed", "targetChamber")
KEY_FIELDS = ("status", "jobId") + TARGET_KEYS


def is_active(status):
    if status["status"] not in (IDLE, ERROR, OFFLINE):
        return True
    return any(status.get(k, 0) > 0 for k in TARGET_KEYS) or any(
        status.get(k, 0) > HOT_TEMP for k in TEMP_KEYS)


class StatusCadence:
    """Decides when a freshly built status must go out.

    At once when the status code, job id or a target changes (and after a
    cloud command); temperature changes of >= 1 C at most every 5 s; a
    heartbeat every 10 s while printing or hot, every 60 s otherwise."""

    def __init__(self, active_interval=ACTIVE_INTERVAL):
        self.active_interval = active_interval
        self.last = None
        self.last_time = None
        self.forced = True

    def force(self):
        self.forced = True

    def due(self, status, now):
        if self.forced or self.last is None:
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

    def sent(self, status, now):
        self.last = status
        self.last_time = now
        self.forced = False

    def reset(self):
        self.__init__(self.active_interval)
