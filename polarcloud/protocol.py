"""Polar Cloud wire facts: status codes and the payloads we send.

Pure functions over plain dicts: no I/O, no Klippy.  docs/protocol.md
describes the protocol; section names below point there.
"""
from .text import clean

PROTOCOL = "2"
MFG = "kl"            # Polar3D's own code for generic Klipper (#registration)
LOCAL_JOB_ID = "123"  # a print not started by the cloud (#job-ids)
IDLE_JOB_ID = "0"
MAX_COMMAND_LIST = 12  # macro buttons offered to the cloud (#custom-commands)

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

# How an inbound event must carry `serialNumber` (#serial-numbers)
NO_SERIAL = "none"          # sent before a serial exists
SERIAL_OPTIONAL = "optional"  # the cloud is not known to tag it; a wrong one is refused
SERIAL_REQUIRED = "required"


def serial_ok(rule, data, serial):
    """True if a packet with this rule is meant for this printer."""
    if rule == NO_SERIAL:
        return True
    if not isinstance(data, dict):
        return False
    got = data.get("serialNumber")
    if got is None and rule == SERIAL_OPTIONAL:
        return True
    return bool(serial) and got == serial


def answer_status(data):
    """(status, message) of a helloResponse/unregisterResponse, which may
    be an object or a bare string (#hello)."""
    if isinstance(data, dict):
        return data.get("status"), data.get("message")
    return data, None


def register_failure_message(response):
    """User-facing text for a failed registerResponse."""
    if not isinstance(response, dict):
        return "unexpected answer from Polar Cloud: %s" % (
            clean(response, 80),)
    reason = response.get("reason")
    if reason in REGISTER_REASONS:
        return REGISTER_REASONS[reason]
    return "Polar Cloud refused the registration (%s)" % (
        clean(reason or response.get("status") or "no reason", 80),)


def register_serial(response):
    """The serial from a successful registerResponse, else None.

    Success needs status SUCCESS and a non-empty serial, as Polar3D's own
    connector checks; a bare string is never success (#registration)."""
    if not isinstance(response, dict):
        return None
    serial = response.get("serialNumber")
    if response.get("status") != "SUCCESS" or not isinstance(serial, str):
        return None
    serial = serial.strip()
    if not serial or len(serial) > 64 or not serial.isprintable():
        return None
    return serial


def build_register(email, pin, public_key, identity):
    return {
        "mfg": MFG, "email": email, "pin": pin, "publicKey": public_key,
        "mfgSn": identity["mfg_sn"],
        "myInfo": {"MAC": identity["mac"], "protocolVersion": PROTOCOL,
                   "machineType": identity["machine_type"],
                   "printerType": identity["printer_make"]},
    }


def build_hello(serial, signature, identity, camera_fields):
    """The union of both production clients' hello fields (#hello)."""
    hello = {
        "serialNumber": serial, "signature": signature,
        "MAC": identity["mac"], "localIP": identity["local_ip"],
        "protocol": PROTOCOL, "mfgSn": identity["mfg_sn"],
        "machineType": identity["machine_type"],
        "printerType": identity["printer_make"],
        "printerMake": identity["printer_make"],
        "version": identity["version"],
    }
    hello.update(camera_fields)
    return hello


def build_job(serial, job_id, state, stats=None):
    """A `job` event: state "completed" or "canceled" (#job-events)."""
    event = {"serialNumber": serial, "jobId": job_id, "state": state,
             "printSeconds": 0, "filamentUsed": 0, "bytesRead": 0,
             "fileSize": 0}
    event.update(stats or {})
    return event


def build_set_version(serial, running, klipper_version):
    """setVersion without `latestVersion`: we do not know the newest
    release, and claiming it would tell the cloud we are up to date."""
    return {"serialNumber": serial, "runningVersion": running,
            "klipperVersion": klipper_version}
