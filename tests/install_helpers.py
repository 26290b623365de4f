"""Scratch printers for install.sh tests: a checkout copy, a Pi-style home,
a systemctl stand-in that records its calls, Polar3D's connector's files."""
import configparser
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
POLAR3D_CLONE = TESTS / "fixtures" / "polar3d-connector"
MARK = "# polar_cloud: added by polar-cloud-klipper install.sh"
END_MARK = "# end polar_cloud"
ORIGIN = "https://example.com/polar-cloud-klipper.git"
MOONRAKER_CONF = "[server]\nhost: 0.0.0.0\nport: 7125\n"
KLIPPER_EXCLUDE = "# git ls-files --others --exclude-from=.git/info/exclude\n*.pyc\n"
VENV = Path(sys.executable).parent.parent
PATH_VARS = ("POLAR_HOME", "KLIPPER_DIR", "KLIPPY_ENV", "MOONRAKER_DIR",
             "PRINTER_DATA", "KLIPPY_SOCKET", "MOONRAKER_URL",
             "POLAR_SYSTEMCTL", "SUDO_USER")


def make_repo(root: Path, stubs=True, origin=ORIGIN) -> Path:
    """A checkout copy: install.sh, polarcloud/, printer.cfg.example, and
    stub (or the real) module and shim; a git clone with origin unless
    origin is None (a ZIP download)."""
    repo = root / "polar-cloud-klipper"
    repo.mkdir(parents=True)
    for name in ("install.sh", "printer.cfg.example", "requirements.txt"):
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(REPO / "polarcloud", repo / "polarcloud",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("klippy_extras", "moonraker_components"):
        if stubs:
            (repo / folder).mkdir()
            (repo / folder / "polar_cloud.py").write_text(
                "# klippy stub\n" if folder == "klippy_extras"
                else "# shim stub\n")
        else:
            shutil.copytree(REPO / folder, repo / folder,
                            ignore=shutil.ignore_patterns("__pycache__"))
    if origin is not None:
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "remote", "add", "origin",
                        origin], check=True)
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


def klipper_tree(root: Path) -> Path:
    """A Klipper checkout for a real Klippy: this venv's klippy package,
    linked file by file, with an extras/ folder of its own (install.sh
    links into it; the venv's stays untouched)."""
    site = Path(sysconfig.get_paths()["purelib"]) / "klippy"
    top = root / "klipper"
    (top / "klippy" / "extras").mkdir(parents=True)
    for entry in os.listdir(site):
        if entry not in ("extras", "__pycache__"):
            (top / "klippy" / entry).symlink_to(site / entry)
    for entry in os.listdir(site / "extras"):
        src = site / "extras" / entry
        if entry != "__pycache__" and not src.is_symlink():
            (top / "klippy" / "extras" / entry).symlink_to(src)
    for name in os.listdir(TESTS / "klippy_extras"):
        if name.endswith(".py"):
            (top / "klippy" / "extras" / name).symlink_to(
                TESTS / "klippy_extras" / name)
    return top


FAKE_SYSTEMCTL = """#!/bin/bash
# systemctl stand-in: records its calls; units, active and enabled units
# come from the environment.
echo "$*" >> "$FAKE_SYSTEMCTL_LOG"
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
case "$1" in
    list-unit-files)
        unit=${@: -1}; unit=${unit%.service}
        if has "$FAKE_UNITS" "$unit"; then echo "$unit.service enabled enabled"; fi ;;
    is-active) has "$FAKE_ACTIVE" "${@: -1}" || exit 3 ;;
    is-enabled) has "$FAKE_ENABLED" "${@: -1}" || exit 1 ;;
esac
exit 0
"""


class FakeSystemctl:
    def __init__(self, root: Path, units="klipper moonraker", active="",
                 enabled=""):
        self.path = root / "fake-systemctl"
        self.log = root / "systemctl.log"
        self.path.write_text(FAKE_SYSTEMCTL)
        self.path.chmod(0o755)
        self.log.write_text("")
        self.units, self.active, self.enabled = units, active, enabled

    def env(self):
        return {"POLAR_SYSTEMCTL": str(self.path),
                "FAKE_SYSTEMCTL_LOG": str(self.log), "FAKE_UNITS": self.units,
                "FAKE_ACTIVE": self.active, "FAKE_ENABLED": self.enabled}

    def calls(self):
        return self.log.read_text().splitlines()

    def changes(self):
        """The calls that change something (restart, stop, disable...)."""
        return [c for c in self.calls() if c.split()[0] in
                ("restart", "stop", "start", "disable", "enable")]

    def clear(self):
        self.log.write_text("")


def run(repo: Path, *args, env_extra=None, check=False):
    env = {k: v for k, v in os.environ.items() if k not in PATH_VARS}
    # never ask a Klipper or Moonraker that a test did not start
    env.update({"KLIPPY_SOCKET": "/nonexistent/klippy.sock",
                "MOONRAKER_URL": "http://127.0.0.1:9"})
    env.update(env_extra or {})
    res = subprocess.run(["bash", str(repo / "install.sh"), *args],
                         capture_output=True, text=True, env=env, timeout=180)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


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


# --- Polar3D's connector, as its installer and service leave it ---------

def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key, fmt="pkcs8"):
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8 if fmt == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())


def public_pem(key):
    from cryptography.hazmat.primitives import serialization
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


POLAR3D_MOONRAKER = """
[polar_cloud]
# Polar Cloud plugin configuration

[update_manager polar_cloud]
type: git_repo
channel: stable
path: {path}
origin: https://github.com/Polar3D/polar-cloud-klipper.git
primary_branch: main
managed_services: polar_cloud
install_script: install.sh
"""


def their_conf_text(serial, pin, email="owner@example.com"):
    """polar_cloud.conf as that connector writes it (configparser)."""
    import io
    conf = configparser.ConfigParser()
    conf["polar_cloud"] = {
        "server_url": "https://printer4.polar3d.com", "username": email,
        "pin": pin, "serial_number": serial, "machine_type": "Cartesian",
        "printer_type": "Cartesian", "manufacturer": "kl",
        "max_image_size": "150000", "webcam_enabled": "true",
        "verbose": "false", "status_interval": "60"}
    out = io.StringIO()
    conf.write(out)
    return out.getvalue()


def install_polar3d(home: Path, pdata: Path, moonraker: Path, serial, pin,
                    pem: bytes):
    """Lay out what Polar3D's installer and service leave on a printer."""
    clone = home / "polar-cloud-klipper"
    shutil.copytree(POLAR3D_CLONE, clone)
    installed = home / "polar-cloud"
    (installed / "web").mkdir(parents=True)
    shutil.copy2(clone / "src" / "polar_cloud.py", installed / "polar_cloud.py")
    (installed / "web" / "index.html").write_text("<html></html>\n")
    component = moonraker / "moonraker" / "components" / "polar_cloud.py"
    shutil.copy2(clone / "src" / "polar_cloud_moonraker.py", component)
    config = pdata / "config"
    config.mkdir(parents=True, exist_ok=True)
    moon_conf = config / "moonraker.conf"
    with open(moon_conf, "a") as f:
        f.write(POLAR3D_MOONRAKER.format(path=installed))
    (config / "polar_cloud.conf").write_text(their_conf_text(serial, pin))
    key_file = config / "polar_cloud_key.pem"
    key_file.write_bytes(pem)
    key_file.chmod(0o600)
    return clone
