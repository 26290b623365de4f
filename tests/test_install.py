"""install.sh against a scratch home (no Klipper, Moonraker or systemd needed).

install.sh is copied into a scratch checkout next to stub sources, so the test
does not depend on the rest of the repository and cannot touch it.
"""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL_SH = REPO / "install.sh"
MARK = "# polar_cloud: added by polar-cloud-klipper install.sh"
ORIGIN = "https://example.com/polar-cloud-klipper.git"
MOONRAKER_CONF = "[server]\nhost: 0.0.0.0\nport: 7125\n"
KLIPPER_EXCLUDE = "# git ls-files --others --exclude-from=.git/info/exclude\n*.pyc\n"


def make_repo(root: Path) -> Path:
    repo = root / "polar-cloud-klipper"
    (repo / "klippy_extras").mkdir(parents=True)
    (repo / "moonraker_components").mkdir()
    shutil.copy2(INSTALL_SH, repo / "install.sh")
    (repo / "klippy_extras" / "polar_cloud.py").write_text("# klippy stub\n")
    (repo / "moonraker_components" / "polar_cloud.py").write_text("# shim stub\n")
    (repo / "requirements.txt").write_text("rsa\n")
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", ORIGIN],
                       check=True)
    return repo


def make_home(root: Path) -> Path:
    home = root / "home"
    (home / "klipper" / "klippy" / "extras").mkdir(parents=True)
    (home / "klipper" / "klippy" / "extras" / "heaters.py").write_text("# heaters\n")
    (home / "klipper" / ".git" / "info").mkdir(parents=True)
    (home / "klipper" / ".git" / "info" / "exclude").write_text(KLIPPER_EXCLUDE)
    (home / "moonraker" / "moonraker" / "components").mkdir(parents=True)
    (home / "moonraker" / ".git" / "info").mkdir(parents=True)
    (home / "klippy-env" / "bin").mkdir(parents=True)
    (home / "klippy-env" / "bin" / "python").symlink_to(sys.executable)
    (home / "printer_data" / "config").mkdir(parents=True)
    (home / "printer_data" / "config" / "moonraker.conf").write_text(MOONRAKER_CONF)
    return home


def snapshot(root: Path) -> dict:
    """path -> (type, content or link target, mode) for everything under root."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ("link", os.readlink(p), None)
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir", None, stat.S_IMODE(st.st_mode))
            else:
                snap[rel] = ("file", p.read_bytes(), stat.S_IMODE(st.st_mode))
    return snap


def run(repo: Path, *args: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("POLAR_HOME", "KLIPPER_DIR", "KLIPPY_ENV", "MOONRAKER_DIR",
                        "MOONRAKER_ENV", "PRINTER_DATA")}
    env.update(env_extra or {})
    return subprocess.run(["bash", str(repo / "install.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


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
