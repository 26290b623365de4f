"""Every packet from the cloud is untrusted: malformed commands never shut
Klippy down, never crash the connector, and the printer stays online."""
import time

from conftest import still_obeys_a_good_command

GARBAGE = [None, 1, "x", [], [1, 2], {"x": {"y": []}}, True, 1e308, -1,
           "\x00\x01", "A" * 5000]

COMMANDS = ["print", "pause", "resume", "cancel", "command", "temperature",
            "jogPrinter", "customCommand", "connectPrinter", "update",
            "getUrlResponse", "capabilitiesResponse", "unregisterResponse",
            "registerResponse", "helloResponse", "welcome",
            "sendNextPrintResponse", "message", "keyPair"]


def payloads(serial):
    for junk in GARBAGE:
        yield junk
        yield {"serialNumber": serial, "command": junk, "jobId": junk,
               "gcodeFile": junk, "jobName": junk, "bed": junk,
               "tool0": junk, "jogPrinter": junk, "fileToPrint": junk,
               "status": junk, "type": junk, "url": junk, "fields": junk,
               "expires": junk, "challenge": junk}
    yield {"serialNumber": serial, "jogPrinter": {"command": "jog",
                                                  "x": "1e9"}}
    yield {"serialNumber": serial, "command": "M104 S99999"}
    yield {"serialNumber": serial, "command": "NOT_A_COMMAND"}
    yield {"serialNumber": serial, "tool1": 200}
    yield {"serialNumber": serial, "jobId": "../../x", "jobName": "../..",
           "gcodeFile": "file:///etc/passwd"}


def test_malformed_cloud_packets_are_harmless(online, printer, cloud):
    serial = online
    for event in COMMANDS:
        for payload in payloads(serial):
            cloud.emit(event, payload, serial=serial)
    time.sleep(3.)
    info = printer.klippy.call("info")
    assert info["state"] == "ready"
    st = printer.wait_polar(lambda s: s["connected"], what="still online")
    assert st["registered"] and st["serial"] == serial
    log = printer.log_text()
    assert "Internal error" not in log
    assert "polar_cloud: internal error" not in log
    # only the one valid target among the junk (1 C) may have been set
    assert printer.klippy.query(extruder=["target"])["extruder"]["target"] \
        in (0., 1.)
    assert printer.print_state() in ("standby", "complete", "cancelled")
    # and it still obeys a good command afterwards
    still_obeys_a_good_command(printer, cloud, serial)
