"""install.sh against a scratch home (no Klipper, Moonraker or systemd needed).

install.sh is copied into a scratch checkout next to stub sources, so the test
does not depend on the rest of the repository and cannot touch it.
"""
import configparser
import os
import shutil
import stat
import subprocess

import pytest

from install_helpers import (
    KLIPPER_EXCLUDE, MARK, MOONRAKER_CONF, ORIGIN, REPO,
    FakeSystemctl, install_polar3d, key_pem, make_home, make_repo, rsa_key,
    run, snapshot)

INSTALL_SH = REPO / "install.sh"


@pytest.fixture
def scratch(tmp_path):
    repo = make_repo(tmp_path)
    home = make_home(tmp_path)
    return repo, home


def install(repo, home, *extra):
    res = run(repo, "--home", str(home), "--no-deps", "--no-restart", *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def test_install_is_idempotent_and_uninstall_restores(scratch):
    repo, home = scratch
    before = snapshot(home)

    res = install(repo, home)
    assert "POLAR_REGISTER" in res.stdout and "printer.cfg.example" in res.stdout

    # symlinks into the repo
    klink = home / "klipper/klippy/extras/polar_cloud.py"
    mlink = home / "moonraker/moonraker/components/polar_cloud.py"
    assert klink.is_symlink() and mlink.is_symlink()
    assert os.readlink(klink) == str(repo / "klippy_extras/polar_cloud.py")
    assert os.readlink(mlink) == str(repo / "moonraker_components/polar_cloud.py")
    assert klink.read_text() == "# klippy stub\n"

    # git excludes, appended once, existing content kept
    kex = (home / "klipper/.git/info/exclude").read_text()
    assert kex == KLIPPER_EXCLUDE + "klippy/extras/polar_cloud.py\n"
    mex = (home / "moonraker/.git/info/exclude").read_text()
    assert mex == "moonraker/components/polar_cloud.py\n"

    # moonraker.conf block
    conf = (home / "printer_data/config/moonraker.conf").read_text()
    assert conf.startswith(MOONRAKER_CONF)
    block = conf[len(MOONRAKER_CONF):]
    assert block.startswith("\n" + MARK + "\n[polar_cloud]\n")
    assert block.endswith("# end polar_cloud\n")
    assert "[update_manager polar_cloud]\ntype: git_repo\n" in block
    assert f"path: {repo}\n" in block
    if shutil.which("git"):
        assert f"origin: {ORIGIN}\n" in block
    assert "primary_branch: main\n" in block
    assert "managed_services: klipper moonraker\n" in block
    assert f"virtualenv: {home / 'klippy-env'}\n" in block
    assert "requirements: requirements.txt\n" in block
    assert conf.count("[polar_cloud]") == 1

    # state dir
    state = home / "printer_data/polar_cloud"
    assert state.is_dir() and stat.S_IMODE(state.stat().st_mode) == 0o700

    # second run changes nothing
    after_first = snapshot(home)
    res = install(repo, home)
    assert snapshot(home) == after_first

    # the state dir (printer identity) survives a plain uninstall
    (state / "state.json").write_text('{"serial": "KL000123"}')
    os.chmod(state / "state.json", 0o600)
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "kept" in res.stdout and str(state) in res.stdout
    after_uninstall = snapshot(home)
    kept = {k: v for k, v in after_uninstall.items()
            if k.startswith("printer_data/polar_cloud")}
    assert set(kept) == {"printer_data/polar_cloud", "printer_data/polar_cloud/state.json"}
    assert {k: v for k, v in after_uninstall.items() if k not in kept} == before

    # uninstall is idempotent too; --purge removes the state dir
    res = run(repo, "--home", str(home), "--uninstall", "--purge", "--no-restart")
    assert res.returncode == 0, res.stdout + res.stderr
    assert snapshot(home) == before

    # the scratch checkout itself is left alone
    assert (repo / "klippy_extras/polar_cloud.py").read_text() == "# klippy stub\n"


def test_install_then_purge_leaves_pre_install_tree(scratch):
    repo, home = scratch
    before = snapshot(home)
    install(repo, home)
    res = run(repo, "--home", str(home), "--uninstall", "--purge", "--no-restart")
    assert res.returncode == 0, res.stdout + res.stderr
    assert snapshot(home) == before


def test_existing_polar_cloud_section_is_not_duplicated(scratch):
    repo, home = scratch
    conf = home / "printer_data/config/moonraker.conf"
    conf.write_text(MOONRAKER_CONF + "\n[polar_cloud]\n")
    install(repo, home)
    text = conf.read_text()
    assert text.startswith(MOONRAKER_CONF + "\n[polar_cloud]\n")
    assert text.count("[polar_cloud]") == 1
    assert text.count("[update_manager polar_cloud]") == 1
    assert_moonraker_parses(conf)
    # uninstall takes only what it added
    run(repo, "--home", str(home), "--uninstall", "--no-restart", check=True)
    assert conf.read_text() == MOONRAKER_CONF + "\n[polar_cloud]\n"


def test_missing_moonraker_conf_prints_block(scratch):
    repo, home = scratch
    (home / "printer_data/config/moonraker.conf").unlink()
    res = install(repo, home)
    assert MARK in res.stdout and "[update_manager polar_cloud]" in res.stdout
    assert not (home / "printer_data/config/moonraker.conf").exists()


def test_env_vars_and_flags_override_paths(scratch, tmp_path):
    repo, home = scratch
    other = tmp_path / "elsewhere"
    shutil.move(str(home / "klipper"), str(other))
    # env var alone
    res = run(repo, "--no-deps", "--no-restart",
              env_extra={"POLAR_HOME": str(home), "KLIPPER_DIR": str(other)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert (other / "klippy/extras/polar_cloud.py").is_symlink()
    # flag wins over env var
    res = run(repo, "--home", str(home), "--klipper", str(other), "--uninstall",
              "--no-restart", env_extra={"KLIPPER_DIR": str(tmp_path / "nope")})
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (other / "klippy/extras/polar_cloud.py").exists()


def test_uninstall_leaves_foreign_symlink(scratch, tmp_path):
    repo, home = scratch
    foreign = tmp_path / "foreign.py"
    foreign.write_text("# someone else\n")
    link = home / "moonraker/moonraker/components/polar_cloud.py"
    link.symlink_to(foreign)
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart")
    assert res.returncode == 0, res.stdout + res.stderr
    assert link.is_symlink() and os.readlink(link) == str(foreign)


def test_missing_klipper_dir_fails_clearly(scratch):
    repo, home = scratch
    shutil.rmtree(home / "klipper")
    before = snapshot(home)
    res = run(repo, "--home", str(home), "--no-deps", "--no-restart")
    assert res.returncode != 0
    assert "Klipper not found" in res.stderr
    assert str(home / "klipper") in res.stderr
    assert snapshot(home) == before


def test_help_and_bad_option():
    res = subprocess.run(["bash", str(INSTALL_SH), "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "--uninstall" in res.stdout
    res = subprocess.run(["bash", str(INSTALL_SH), "--bogus"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "unknown option" in res.stderr


def assert_moonraker_parses(conf):
    """No duplicate section or option: what makes Moonraker refuse to start."""
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.read_string(conf.read_text())
    return parser


# --- printer.cfg -----------------------------------------------------------

PRINTER_CFG = "[mcu]\nserial: /dev/null\n\n[printer]\nkinematics: none\n"
SAVE_CONFIG = ("#*# <---------------------- SAVE_CONFIG ---------------------->\n"
               "#*# DO NOT EDIT THIS BLOCK OR BELOW. The contents are auto-generated.\n"
               "#*#\n#*# [extruder]\n#*# pid_kp = 22.2\n")


@pytest.mark.parametrize("original", [
    PRINTER_CFG,
    PRINTER_CFG + "\n" + SAVE_CONFIG,
    PRINTER_CFG + SAVE_CONFIG,
    "[mcu]\nserial: /dev/null",          # no newline at the end
])
def test_printer_cfg_include_added_and_removed(scratch, original):
    repo, home = scratch
    cfg = home / "printer_data/config/printer.cfg"
    cfg.write_text(original)
    polar_cfg = home / "printer_data/config/polar_cloud.cfg"
    before = snapshot(home)
    res = install(repo, home)
    text = cfg.read_text()
    assert text.count("[include polar_cloud.cfg]") == 1
    if "SAVE_CONFIG" in original:
        # above Klipper's auto-generated block, which SAVE_CONFIG rewrites
        assert text.index("[include polar_cloud.cfg]") < text.index("#*# <---")
        assert text.endswith(SAVE_CONFIG)
    assert polar_cfg.read_text() == (repo / "printer.cfg.example").read_text()
    assert "[include polar_cloud.cfg]" in res.stdout
    after = snapshot(home)
    install(repo, home)
    assert snapshot(home) == after
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart", check=True)
    assert "removed [include polar_cloud.cfg]" in res.stdout
    restored = {k: v for k, v in snapshot(home).items()
                if not k.startswith("printer_data/polar_cloud")}
    if original.endswith("\n"):
        assert restored == before
    else:
        assert cfg.read_text() == original + "\n"


def test_changed_polar_cloud_cfg_is_kept_until_purge(scratch):
    repo, home = scratch
    cfg = home / "printer_data/config/printer.cfg"
    cfg.write_text(PRINTER_CFG)
    install(repo, home)
    polar_cfg = home / "printer_data/config/polar_cloud.cfg"
    polar_cfg.write_text("[polar_cloud]\nprinter_make: Ender 3\n")
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart", check=True)
    assert cfg.read_text() == PRINTER_CFG
    assert polar_cfg.read_text() == "[polar_cloud]\nprinter_make: Ender 3\n"
    assert "kept " + str(polar_cfg) in res.stdout
    # install again: the owner's polar_cloud.cfg is used as it is
    res = install(repo, home)
    assert "using the existing " + str(polar_cfg) in res.stdout
    assert polar_cfg.read_text() == "[polar_cloud]\nprinter_make: Ender 3\n"
    run(repo, "--home", str(home), "--uninstall", "--purge", "--no-restart",
        check=True)
    assert not polar_cfg.exists() and cfg.read_text() == PRINTER_CFG


def test_own_polar_cloud_section_commented_out_and_restored(scratch):
    repo, home = scratch
    cfg = home / "printer_data/config/printer.cfg"
    own = (PRINTER_CFG + "\n[polar_cloud]\nprinter_make: Voron 2.4\n"
           "#camera_url: /webcam/?action=stream\n\n[gcode_macro PARK]\n"
           "gcode:\n  G28\n")
    cfg.write_text(own)
    res = install(repo, home)
    assert "has its own [polar_cloud] section" in res.stdout
    assert cfg.read_text() == own
    assert not (home / "printer_data/config/polar_cloud.cfg").exists()
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart", check=True)
    text = cfg.read_text()
    assert "commented out 3 [polar_cloud] line(s)" in res.stdout
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert "polar_cloud" not in parser.sections()
    assert parser.get("gcode_macro PARK", "gcode").strip() == "G28"
    assert "#polar_cloud-uninstalled# printer_make: Voron 2.4\n" in text
    res = install(repo, home)
    assert "restored the [polar_cloud] lines" in res.stdout
    assert cfg.read_text() == own


def test_missing_printer_cfg_says_what_to_add(scratch):
    repo, home = scratch
    res = install(repo, home)
    assert "printer.cfg not found" in res.stdout
    assert not (home / "printer_data/config/polar_cloud.cfg").exists()


# --- restarts ------------------------------------------------------------

def test_restarts_only_what_changed(scratch, tmp_path):
    repo, home = scratch
    (home / "printer_data/config/printer.cfg").write_text(PRINTER_CFG)
    systemctl = FakeSystemctl(tmp_path)
    env = systemctl.env()
    args = ("--home", str(home), "--no-deps")
    # Klipper is not running, so it cannot be printing: restart both
    res = run(repo, *args, env_extra=env, check=True)
    assert systemctl.changes() == ["restart klipper", "restart moonraker"], res.stdout
    # a re-run that changes nothing restarts nothing
    systemctl.clear()
    res = run(repo, *args, env_extra=env, check=True)
    assert systemctl.changes() == []
    assert "no restart needed" in res.stdout
    # only the Moonraker side changed: only Moonraker restarts
    (home / "moonraker/moonraker/components/polar_cloud.py").unlink()
    res = run(repo, *args, env_extra=env, check=True)
    assert systemctl.changes() == ["restart moonraker"], res.stdout
    # only the Klipper side
    systemctl.clear()
    (home / "klipper/klippy/extras/polar_cloud.py").unlink()
    run(repo, *args, env_extra=env, check=True)
    assert systemctl.changes() == ["restart klipper"]
    # --no-restart: nothing, but the command to run
    systemctl.clear()
    (home / "klipper/klippy/extras/polar_cloud.py").unlink()
    res = run(repo, *args, "--no-restart", env_extra=env, check=True)
    assert systemctl.changes() == []
    assert "sudo systemctl restart klipper\n" in res.stdout
    # uninstall restarts what it changed
    systemctl.clear()
    run(repo, "--home", str(home), "--uninstall", env_extra=env, check=True)
    assert systemctl.changes() == ["restart klipper", "restart moonraker"]


def test_no_restart_when_klipper_runs_but_cannot_be_asked(scratch, tmp_path):
    repo, home = scratch
    systemctl = FakeSystemctl(tmp_path, active="klipper moonraker")
    res = run(repo, "--home", str(home), "--no-deps",
              env_extra=systemctl.env(), check=True)
    assert systemctl.changes() == []
    assert "could not ask Klipper whether it is printing" in res.stdout
    assert "sudo systemctl restart klipper moonraker" in res.stdout


def test_without_systemd_says_what_to_restart(scratch):
    repo, home = scratch
    res = run(repo, "--home", str(home), "--no-deps",
              env_extra={"POLAR_SYSTEMCTL": ""}, check=True)
    if not os.path.isdir("/run/systemd/system"):
        assert "systemd not found: restart klipper moonraker yourself" in res.stdout


# --- checks --------------------------------------------------------------

def test_zip_download_writes_no_update_entry(tmp_path):
    repo = make_repo(tmp_path, origin=None)
    home = make_home(tmp_path)
    res = install(repo, home)
    conf = (home / "printer_data/config/moonraker.conf").read_text()
    assert "[update_manager" not in conf and conf.count("[polar_cloud]") == 1
    assert "not a git clone (a ZIP download?)" in res.stdout
    assert "git clone https://github.com/polar-cloud-klipper/polar-cloud-klipper" \
        in res.stdout
    # a clone later replaces the entry-less block with the full one
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", ORIGIN],
                   check=True)
    install(repo, home)
    conf = (home / "printer_data/config/moonraker.conf")
    assert conf.read_text().count("[update_manager polar_cloud]") == 1
    assert_moonraker_parses(conf)


def test_python2_klippy_env_is_refused_with_rebuild_steps(scratch):
    repo, home = scratch
    python = home / "klippy-env/bin/python"
    python.unlink()
    python.write_text("#!/bin/sh\necho 'Python 2.7.18' >&2\n")
    python.chmod(0o755)
    before = snapshot(home)
    res = run(repo, "--home", str(home), "--no-restart")
    assert res.returncode != 0
    assert "runs Python 2.7" in res.stderr
    assert "python3 -m venv %s" % (home / "klippy-env") in res.stderr
    assert "klippy-requirements.txt" in res.stderr
    assert snapshot(home) == before


def test_root_with_klipper_of_another_user_is_refused(scratch):
    repo, home = scratch
    if os.getuid() != 0:
        pytest.skip("needs root")
    os.chown(home / "klipper", 1000, 1000)
    before = snapshot(home)
    res = run(repo, "--home", str(home), "--no-deps", "--no-restart")
    assert res.returncode != 0
    assert "runs as root" in res.stderr and "without sudo" in res.stderr
    assert snapshot(home) == before
    # sudo from a user whose Klipper is not where root looks
    shutil.rmtree(home / "klipper")
    res = run(repo, "--home", str(home), "--no-deps", "--no-restart",
              env_extra={"SUDO_USER": "pi"})
    assert res.returncode != 0 and "as pi, without sudo" in res.stderr


# --- coming from Polar3D's connector ----------------------------------------

PIN = "739164"


@pytest.fixture(scope="module")
def their_key():
    return rsa_key()


def test_polar3d_connector_is_replaced(scratch, tmp_path, their_key):
    repo, home = scratch
    pdata = home / "printer_data"
    (pdata / "config/printer.cfg").write_text(PRINTER_CFG)
    clone = install_polar3d(home, pdata, home / "moonraker", "KL000777", PIN,
                            key_pem(their_key))
    conf = pdata / "config/moonraker.conf"
    clone_before = snapshot(clone)
    systemctl = FakeSystemctl(tmp_path, units="klipper moonraker polar_cloud",
                              active="polar_cloud", enabled="polar_cloud")
    res = run(repo, "--home", str(home), "--no-deps", env_extra=systemctl.env(),
              check=True)
    out = res.stdout + res.stderr
    assert PIN not in out
    # found and reported
    assert "found Polar3D's connector" in out
    for what in ("polar_cloud.service", str(clone), str(home / "polar-cloud"),
                 "[update_manager polar_cloud] entry", "polar_cloud_key.pem"):
        assert what in out
    # one entry each, ours, and Moonraker can parse it
    parser = assert_moonraker_parses(conf)
    assert parser.get("update_manager polar_cloud", "origin") == ORIGIN
    assert parser.get("update_manager polar_cloud", "path") == str(repo)
    assert "Polar3D/polar-cloud-klipper.git" in out   # the removed entry, shown
    assert conf.read_text().startswith(MOONRAKER_CONF + "\n" + MARK + "\n")
    # its component replaced by our link; its service stopped and disabled
    comp = home / "moonraker/moonraker/components/polar_cloud.py"
    assert os.readlink(comp) == str(repo / "moonraker_components/polar_cloud.py")
    assert "stop polar_cloud" in systemctl.changes()
    assert "disable polar_cloud" in systemctl.changes()
    # identity imported, PIN gone, the rest of theirs untouched
    state = pdata / "polar_cloud"
    import json
    assert json.loads((state / "state.json").read_text())["serial"] == "KL000777"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    key = state / "polar_cloud_key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    their_conf = (pdata / "config/polar_cloud.conf").read_text()
    assert PIN not in their_conf and "serial_number = KL000777" in their_conf
    assert "username = owner@example.com" in their_conf
    assert (pdata / "config/polar_cloud_key.pem").read_bytes() == key_pem(their_key)
    assert snapshot(clone) == clone_before
    assert (home / "polar-cloud/polar_cloud.py").exists()
    assert "keeps its Polar Cloud serial KL000777" in out
    assert "POLAR_REGISTER" not in out
    # a re-run changes nothing and restarts nothing
    after = snapshot(home)
    systemctl.active = systemctl.enabled = ""
    systemctl.clear()
    res = run(repo, "--home", str(home), "--no-deps", env_extra=systemctl.env(),
              check=True)
    assert snapshot(home) == after, res.stdout
    assert systemctl.changes() == []
    assert "already in" in res.stdout
    # uninstall: theirs is not restored, but it says how
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart",
              check=True)
    assert "cd %s && ./install.sh" % (clone,) in res.stdout
    assert "[update_manager" not in conf.read_text()
    assert (pdata / "config/polar_cloud_key.pem").exists()


def test_polar3d_entry_alone_never_leaves_two_sections(scratch):
    """Moonraker refused to start on two [update_manager polar_cloud]."""
    repo, home = scratch
    conf = home / "printer_data/config/moonraker.conf"
    conf.write_text(MOONRAKER_CONF + "\n[update_manager polar_cloud]\n"
                    "type: git_repo\npath: ~/polar-cloud\n"
                    "origin: https://github.com/Polar3D/polar-cloud-klipper.git\n"
                    "managed_services: polar_cloud\n\n"
                    "# my webcam\n[webcam cam1]\nservice: mjpegstreamer\n")
    install(repo, home)
    parser = assert_moonraker_parses(conf)
    assert parser.get("update_manager polar_cloud", "origin") == ORIGIN
    assert parser.get("webcam cam1", "service") == "mjpegstreamer"
    assert "# my webcam\n[webcam cam1]" in conf.read_text()


def test_existing_registration_is_not_overwritten(scratch, their_key):
    repo, home = scratch
    pdata = home / "printer_data"
    install_polar3d(home, pdata, home / "moonraker", "KL000777", PIN,
                    key_pem(their_key, "pkcs1"))
    state = pdata / "polar_cloud"
    state.mkdir(mode=0o700)
    (state / "state.json").write_text('{"serial": "KL000500", "mac": "x"}')
    res = install(repo, home)
    assert "already registered as KL000500" in res.stdout
    assert "did not import Polar3D's serial KL000777" in res.stdout
    assert (state / "state.json").read_text() == '{"serial": "KL000500", "mac": "x"}'
    assert not (state / "polar_cloud_key.pem").exists()
    # their PIN stays (nothing of theirs was replaced), with a warning
    assert PIN in (pdata / "config/polar_cloud.conf").read_text()
    assert "still holds your Polar Cloud PIN" in res.stdout
    assert PIN not in res.stdout + res.stderr


def test_renamed_polar3d_clone_is_found(scratch, their_key):
    """README: rename their clone to make room for ours in the same folder."""
    repo, home = scratch
    pdata = home / "printer_data"
    clone = install_polar3d(home, pdata, home / "moonraker", "KL000777", PIN,
                            key_pem(their_key))
    renamed = home / "polar-cloud-klipper.polar3d"
    clone.rename(renamed)
    res = install(repo, home)
    assert "its files in %s" % (renamed,) in res.stdout
    res = run(repo, "--home", str(home), "--uninstall", "--no-restart",
              check=True)
    assert "cd %s && ./install.sh" % (renamed,) in res.stdout


def test_purge_says_plainly_when_it_cannot_unregister(scratch):
    repo, home = scratch
    install(repo, home)
    state = home / "printer_data/polar_cloud"
    (state / "state.json").write_text('{"serial": "KL000123"}')
    res = run(repo, "--home", str(home), "--uninstall", "--purge",
              "--no-restart", check=True)
    assert "COULD NOT remove printer KL000123 from Polar Cloud" in res.stdout
    assert "stays listed in your Polar Cloud account" in res.stdout
    assert not state.exists()
