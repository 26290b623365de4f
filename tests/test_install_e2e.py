"""install.sh with a real Klippy: no restart during a print, an uninstall
that leaves a Klipper that starts, the move from Polar3D's connector (the
same cloud printer comes back online) and --purge's unregister.

Each test has its own Klipper tree (this venv's Klippy, linked file by file)
so install.sh and --uninstall never touch the session's installed module.
"""
import json
import os
import signal
import stat
import threading
from pathlib import Path

import pytest
import rsa
import socketio

from conftest import gcode_file
from harness import PrinterHarness
from install_helpers import (
    VENV, FakeSystemctl, install_polar3d, key_pem, klipper_tree, make_repo,
    public_pem, rsa_key, run)
from polar_emulator import PolarEmulator
from polarcloud.installer.migrate import their_mac

EMAIL = "maker@example.com"
PIN = "582094"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A checkout, a home, a Klipper tree Klippy runs from, a Moonraker
    components folder and a systemctl stand-in."""
    class Site:
        repo = make_repo(tmp_path, stubs=False)
        home = tmp_path / "home"
        klipper = klipper_tree(tmp_path)
        moonraker = tmp_path / "moonraker"
        systemctl = FakeSystemctl(tmp_path)

        def install(self, printer, *extra, extra_env=None):
            env = dict(self.systemctl.env(), KLIPPY_SOCKET=printer.uds,
                       MOONRAKER_URL=printer.base_url)
            env.update(extra_env or {})
            return run(self.repo, "--home", str(self.home),
                       "--klipper", str(self.klipper),
                       "--moonraker", str(self.moonraker),
                       "--klippy-env", str(VENV),
                       "--printer-data", printer.data, "--no-deps", *extra,
                       env_extra=env, check=True)

    s = Site()
    s.home.mkdir()
    (s.moonraker / "moonraker" / "components").mkdir(parents=True)
    # Klippy (started by the harness) imports klippy from this tree
    monkeypatch.setenv("PYTHONPATH", str(s.klipper))
    return s


def restart_klippy(printer):
    """As `systemctl restart klipper` would: a new Klippy process."""
    proc = printer.procs.pop("klippy")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    printer.start()


def test_no_restart_while_printing_or_paused(installed, cloud, site):
    """Asked through Klippy's socket and through Moonraker."""
    printer = PrinterHarness(cloud.url)
    try:
        res = site.install(printer)
        # Klipper not running yet, so not printing: both restart
        assert site.systemctl.changes() == ["restart klipper",
                                            "restart moonraker"], res.stdout
        printer.start()
        assert printer.polar_status()["registered"] is False
        with open(os.path.join(printer.gcodes, "long.gcode"), "wb") as f:
            f.write(gcode_file(moves=800, feed=600))
        printer.klippy.gcode("SDCARD_PRINT_FILE FILENAME=long.gcode")
        printer.wait_print_state(["printing"], timeout=30)
        site.systemctl.active = "klipper moonraker"
        site.systemctl.clear()

        # the harness wrote its own moonraker.conf: our entry goes back in
        res = site.install(printer)
        assert "Klipper is printing: not restarting moonraker now" in res.stdout
        assert site.systemctl.changes() == []
        res = site.install(printer)
        assert "no restart needed" in res.stdout
        assert site.systemctl.changes() == []

        klippy_link = site.klipper / "klippy/extras/polar_cloud.py"
        moon_link = site.moonraker / "moonraker/components/polar_cloud.py"
        klippy_link.unlink()
        moon_link.unlink()
        res = site.install(printer)
        assert "Klipper is printing: not restarting klipper moonraker now" \
            in res.stdout
        assert "  sudo systemctl restart klipper moonraker\n" in res.stdout
        assert site.systemctl.changes() == []

        klippy_link.unlink()
        res = site.install(printer, extra_env={"KLIPPY_SOCKET": "/nonexistent"})
        assert "Klipper is printing: not restarting klipper now" in res.stdout
        assert site.systemctl.changes() == []

        printer.klippy.gcode("PAUSE", timeout=60)
        printer.wait_print_state(["paused"])
        res = site.install(printer, "--uninstall")
        assert "Klipper is paused: not restarting klipper moonraker now" \
            in res.stdout
        assert site.systemctl.changes() == []
        assert printer.print_state() == "paused"
        printer.klippy.gcode("CANCEL_PRINT", timeout=60)
    finally:
        printer.stop()


@pytest.mark.parametrize("layout", ["include", "own section"])
def test_uninstall_leaves_a_klipper_that_starts(cloud, site, layout):
    printer = PrinterHarness(cloud.url, moonraker=False)
    try:
        cfg = Path(printer.printer_cfg)
        if layout == "include":
            text = cfg.read_text()
            cfg.write_text(text[:text.index("[polar_cloud]")])
        site.install(printer)
        if layout == "include":
            polar_cfg = Path(printer.config_dir) / "polar_cloud.cfg"
            assert "[include polar_cloud.cfg]" in cfg.read_text()
            with open(polar_cfg, "a") as f:
                f.write("url: %s\n" % (cloud.url,))   # never the real cloud
        printer.start()
        assert printer.polar_status()["registered"] is False

        site.systemctl.clear()
        res = site.install(printer, "--uninstall")
        # idle, asked through Klippy's socket: restarted at once
        assert site.systemctl.changes() == ["restart klipper",
                                            "restart moonraker"], res.stdout
        restart_klippy(printer)
        assert printer.info["state"] == "ready"
        config = printer.klippy.query(configfile=["config"])["configfile"]
        assert "polar_cloud" not in config["config"]
        assert printer.klippy.query(polar_cloud=None).get("polar_cloud") \
            in (None, {})

        # installing again brings it back
        site.install(printer)
        restart_klippy(printer)
        assert printer.polar_status()["registered"] is False
    finally:
        printer.stop()


def register_like_polar3d(cloud, key, mac):
    """What Polar3D's connector does once: register its own key."""
    sio = socketio.Client(reconnection=False)
    answer = {}
    done = threading.Event()

    @sio.on("welcome")
    def welcome(data):
        sio.emit("register", {"mfg": "kl", "email": EMAIL, "pin": PIN,
                              "publicKey": public_pem(key),
                              "myInfo": {"MAC": mac}})

    @sio.on("registerResponse")
    def register_response(data):
        answer.update(data)
        done.set()

    sio.connect(cloud.url, transports=["websocket"])
    try:
        assert done.wait(20), "no registerResponse"
    finally:
        sio.disconnect()
    assert answer["status"] == "SUCCESS", answer
    return answer["serialNumber"]


@pytest.fixture
def own_cloud():
    emu = PolarEmulator()
    emu.start()
    emu.add_account(EMAIL, PIN)
    yield emu
    emu.close()


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1"])
def test_printer_moves_over_from_polar3d(own_cloud, site, fmt):
    cloud = own_cloud
    key = rsa_key()
    mac = their_mac() or "AA:BB:CC:00:11:22"
    serial = register_like_polar3d(cloud, key, mac)
    printer = PrinterHarness(cloud.url, moonraker=False)
    try:
        pdata = Path(printer.data)
        clone = install_polar3d(site.home, pdata, site.moonraker, serial, PIN,
                                key_pem(key, fmt))
        site.systemctl.units = "klipper moonraker polar_cloud"
        site.systemctl.active = site.systemctl.enabled = "polar_cloud"
        res = site.install(printer)
        out = res.stdout + res.stderr
        assert "imported serial %s" % (serial,) in out
        assert ["stop polar_cloud", "disable polar_cloud", "restart klipper",
                "restart moonraker"] == site.systemctl.changes()
        state = json.loads((pdata / "polar_cloud/state.json").read_text())
        assert state["serial"] == serial
        assert state.get("mac") == their_mac()
        our_key = pdata / "polar_cloud/polar_cloud_key.pem"
        assert stat.S_IMODE(our_key.stat().st_mode) == 0o600
        imported = rsa.PrivateKey.load_pkcs1(our_key.read_bytes())
        assert imported.n == key.private_numbers().public_numbers.n
        assert PIN not in (pdata / "config/polar_cloud.conf").read_text()

        mark = cloud.mark()
        printer.start()
        hello = cloud.wait_for("hello", start=mark, timeout=30)
        assert hello.data["serialNumber"] == serial
        assert hello.verified
        printer.wait_polar(lambda s: s["connected"] and s["serial"] == serial,
                           what="online with the old serial")
        assert not [r for r in cloud.events[mark:] if r.event == "register"]
        assert list(cloud.printers) == [serial]

        # --purge takes it off the owner's account first
        site.systemctl.active = ""
        res = site.install(printer, "--uninstall", "--purge")
        assert "removed printer %s from your Polar Cloud account" % (serial,) \
            in res.stdout
        assert cloud.printers == {}
        assert not (pdata / "polar_cloud").exists()
        assert "cd %s && ./install.sh" % (clone,) in res.stdout
        for text in (out, res.stdout, res.stderr, printer.log_text()):
            assert PIN not in text
    finally:
        printer.stop()
