"""The printer's Polar Cloud identity on disk: key file and state file.

Both live in a private state directory (0700) outside every folder Moonraker
serves.  Every write is atomic (temp file, fsync, rename, fsync dir), so a
crash or a full disk never replaces a good file with a half-written one.
Only the connector's background thread and child processes call this.
"""
import json
import logging
import os

KEY_FILE = "polar_cloud_key.pem"
STATE_FILE = "state.json"


def ensure_private_dir(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def atomic_write(path, data, mode=0o600):
    """Write bytes to path atomically with the given permission bits."""
    dirname = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(dirname, ".%s.tmp%d" % (os.path.basename(path),
                                               os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(dirname, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class StateStore:
    """state.json: {"serial", "mac", "active_job"}; the PIN is never stored."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.key_path = os.path.join(state_dir, KEY_FILE)
        self.state_path = os.path.join(state_dir, STATE_FILE)

    def has_key(self):
        try:
            return os.path.getsize(self.key_path) > 0
        except OSError:
            return False

    def load(self):
        try:
            with open(self.state_path, "rb") as f:
                state = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # Keep the unreadable file for the owner to inspect; act as if
            # unregistered rather than crash.
            logging.warning("polar_cloud: cannot read %s: %s",
                            self.state_path, e)
            return {}
        if not isinstance(state, dict):
            return {}
        serial = state.get("serial")
        if not isinstance(serial, str) or not serial.strip():
            state.pop("serial", None)
        return state

    def save(self, state):
        ensure_private_dir(self.state_dir)
        data = json.dumps(state, indent=1, sort_keys=True).encode("utf-8")
        atomic_write(self.state_path, data, 0o600)
