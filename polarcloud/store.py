"""The printer's Polar Cloud identity on disk: key file and state file.

Both live in a private state directory (0700) outside every folder Moonraker
serves.  Every write is atomic (temp file, fsync, rename, fsync dir), so a
crash or a full disk never replaces a good file with a half-written one,
and a file that cannot be read is moved aside for the owner, never
overwritten.  Only the connector thread and child processes call this.
"""
import json
import os
import time

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


def move_aside(path):
    """Rename an unreadable file to `<path>.corrupt-<time>` (`-2`, `-3`...
    when one was kept in the same second); returns it."""
    base = "%s.corrupt-%s" % (path, time.strftime("%Y%m%d-%H%M%S"))
    aside, n = base, 1
    while os.path.lexists(aside):   # never replace a file kept earlier
        n += 1
        aside = "%s-%d" % (base, n)
    os.replace(path, aside)
    return aside


class StateProblem(Exception):
    """state.json cannot be used; safe_to_save says whether writing a new
    one would destroy what is there."""

    def __init__(self, message, safe_to_save):
        Exception.__init__(self, message)
        self.safe_to_save = safe_to_save


class StateStore:
    """state.json: {"serial", "mac", "active_job", "pending_job_events"};
    the PIN is never stored."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.key_path = os.path.join(state_dir, KEY_FILE)
        self.state_path = os.path.join(state_dir, STATE_FILE)

    def has_key(self):
        try:
            return os.path.getsize(self.key_path) > 0
        except OSError:
            return False

    def write_problem(self):
        """Why a save would fail now (e.g. a read-only folder), or None."""
        probe = os.path.join(self.state_dir, ".write-test%d" % (os.getpid(),))
        try:
            ensure_private_dir(self.state_dir)
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600))
            os.unlink(probe)
        except OSError as e:
            return "cannot write in %s (%s)" % (self.state_dir,
                                                e.strerror or e)
        return None

    def load(self):
        """The saved state (a dict; {} when there is none).

        Raises StateProblem for a file that cannot be used.  One that
        cannot be parsed is moved aside first, so the next save cannot
        destroy the serial in it."""
        try:
            with open(self.state_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise StateProblem("cannot read %s (%s)" % (
                self.state_path, e.strerror), safe_to_save=False)
        try:
            state = json.loads(raw.decode("utf-8"))
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
            if not isinstance(state.get("serial"), (str, type(None))):
                # a serial we cannot use: dropping it silently would lose
                # the registration at the next save
                raise ValueError("the serial is not text")
        except ValueError as e:
            try:
                aside = move_aside(self.state_path)
            except OSError as err:
                raise StateProblem(
                    "%s is unreadable (%s) and cannot be moved aside (%s)"
                    % (self.state_path, str(e)[:80], err.strerror),
                    safe_to_save=False)
            raise StateProblem("%s was unreadable (%s); kept as %s" % (
                self.state_path, str(e)[:80], aside), safe_to_save=True)
        serial = state.get("serial")
        if not isinstance(serial, str) or not serial.strip():
            state.pop("serial", None)
        return state

    def save(self, state):
        ensure_private_dir(self.state_dir)
        data = json.dumps(state, indent=1, sort_keys=True).encode("utf-8")
        atomic_write(self.state_path, data, 0o600)
