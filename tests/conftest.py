import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import (  # noqa: E402
    PrinterHarness, install_into_venv, shared_printer_key)
from polar_emulator import PolarEmulator  # noqa: E402

# fast status heartbeat so end sequences take seconds, a small download cap
SESSION_POLAR_OPTIONS = "status_interval: 1\nmax_download_size: 1"
EMAIL = "owner@example.com"
PIN = "1234"


@pytest.fixture(scope="session")
def cloud():
    emu = PolarEmulator()
    emu.start()
    emu.add_account(EMAIL, PIN)
    yield emu
    emu.close()


@pytest.fixture(scope="session")
def printer_key():
    """The test printers' shared key (harness.shared_printer_key)."""
    return shared_printer_key()


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """The module and shim, installed by install.sh into this venv."""
    install_into_venv(str(tmp_path_factory.mktemp("install-data")))


@pytest.fixture(scope="session")
def printer(cloud, installed):
    """One real Klippy + Moonraker for the session (restarted by tests that
    need it); each test starts from 'unregistered'."""
    # no key seeded: the first registration makes one, as on a printer
    with PrinterHarness(cloud.url, polar_extra=SESSION_POLAR_OPTIONS,
                        seed_key=False) as h:
        yield h


def reset_cloud(cloud):
    """The emulator up and answering as it does by default."""
    cloud.start()
    cloud.hello_response = "SUCCESS"
    cloud.register_reason = None
    cloud.answer_register = True
    cloud.send_welcome = True
    cloud.welcome_data = None
    cloud.register_delay = 0.
    cloud.refuse = None


def forget_registration(printer):
    """Unregister printer locally (FORCE=1) if it is registered."""
    if printer.polar_status()["registered"]:
        printer.klippy.gcode("POLAR_UNREGISTER FORCE=1")
        printer.wait_polar(lambda s: not s["registered"])


def stop_any_print(printer):
    """A print a failed test left running would make the next test's
    print refused: each test starts with the printer idle."""
    if printer.print_state() in ("printing", "paused"):
        printer.klippy.gcode("CANCEL_PRINT")
        printer.wait_print_state(["cancelled", "complete", "standby"])


@pytest.fixture
def fresh_printer(printer, cloud):
    """The session printer, idle and unregistered, with the cloud up and
    default."""
    reset_cloud(cloud)
    stop_any_print(printer)
    forget_registration(printer)
    return printer


def register(printer, cloud, email=EMAIL, pin=PIN):
    status, body = printer.http("POST", "/server/polar/register",
                                {"email": email, "pin": pin}, timeout=120)
    assert status == 200, body
    return body["result"]


def go_online(printer, cloud):
    """Register printer through Moonraker and wait until it is online;
    returns its serial."""
    mark = cloud.mark()
    serial = register(printer, cloud)["serial"]
    printer.wait_polar(lambda s: s["connected"], what="online")
    # online means the post-hello messages have gone out too
    cloud.wait_for("customCommandList", timeout=10, start=mark,
                   pred=lambda d: d.get("serialNumber") == serial)
    return serial


@pytest.fixture
def online(fresh_printer, cloud):
    """The session printer registered and online; returns its serial."""
    return go_online(fresh_printer, cloud)


def still_obeys_a_good_command(printer, cloud, serial):
    """After junk: a valid `temperature` still reaches the heater and the
    next status; the heaters are switched off again."""
    mark = cloud.mark()
    cloud.emit("temperature", {"serialNumber": serial, "bed": 30},
               serial=serial)
    cloud.wait_for("status", lambda d: d.get("targetBed") == 30.0,
                   start=mark, timeout=10)
    printer.klippy.gcode("M140 S0\nM104 S0")


def gcode_file(moves=60, feed=6000, pause_line=False):
    """A small print: circle moves with extrusion (print_duration > 0)."""
    import math
    lines = ["G28", "G90", "M83"]
    for i in range(moves):
        a = i / 8.
        lines.append("G1 X%.2f Y%.2f E0.05 F%d" % (
            100 + 40 * math.cos(a), 100 + 40 * math.sin(a), feed))
        if pause_line and i == moves // 2:
            lines.append("PAUSE")
    lines.append("M400")
    return ("\n".join(lines) + "\n").encode()


def wait_until(pred, timeout=10., what="condition"):
    """Poll pred() until true; else fail with `what` (a text, or a callable
    that says what was seen instead)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(what() if callable(what)
                                 else what + " not reached")
        time.sleep(0.05)
