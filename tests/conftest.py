import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import PrinterHarness, install_into_venv  # noqa: E402
from polar_emulator import PolarEmulator  # noqa: E402

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
def installed(tmp_path_factory):
    """The module and shim, installed by install.sh into this venv."""
    install_into_venv(str(tmp_path_factory.mktemp("install-data")))


@pytest.fixture(scope="session")
def printer(cloud, installed):
    """One real Klippy + Moonraker for the session (restarted by tests that
    need it); each test starts from 'unregistered'."""
    with PrinterHarness(cloud.url) as h:
        yield h


@pytest.fixture
def fresh_printer(printer, cloud):
    """The session printer, unregistered, with the cloud up and default."""
    cloud.start()
    cloud.hello_response = "SUCCESS"
    cloud.register_reason = None
    cloud.answer_register = True
    st = printer.polar_status()
    if st["registered"]:
        printer.klippy.gcode("POLAR_UNREGISTER FORCE=1")
        printer.wait_polar(lambda s: not s["registered"])
    return printer


def register(printer, cloud, email=EMAIL, pin=PIN):
    status, body = printer.http("POST", "/server/polar/register",
                                {"email": email, "pin": pin}, timeout=120)
    assert status == 200, body
    return body["result"]
