"""scripts/demo.py stops cleanly: SIGTERM (a service manager, `kill`) or a
terminal's Ctrl-C (SIGINT to the whole process group) leaves no Klippy,
Moonraker or worker process and no temporary folder behind."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "scripts", "demo.py")
# a stop takes about 0.5 s here, up to 3.3 s when Moonraker's shutdown
# hangs on a metadata extraction; a hang of our own does not pass
STOP_WITHIN = 8


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % (entry,)) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Demo:
    def __init__(self):
        # a session of its own, as a terminal gives it a process group
        self.proc = subprocess.Popen(
            [sys.executable, DEMO], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pred, count=1, timeout=90.):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [line for line in self.lines if pred(line)]
            if len(hits) >= count:
                return hits[-1]
            assert self.proc.poll() is None, "\n".join(self.lines)
            time.sleep(0.1)
        raise AssertionError("not shown:\n" + "\n".join(self.lines))

    def kill_all(self):
        for pid in [self.proc.pid] + descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


def check_clean_stop(demo, send):
    tmp = re.search(r" in (/tmp/ph-\S+) ", demo.wait_line(
        lambda l: l.startswith("demo: starting Klippy"))).group(1)
    children = descendants(demo.proc.pid)
    assert len(children) >= 2      # Klippy and Moonraker at least
    send(demo.proc.pid)
    try:
        demo.proc.wait(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        os.kill(demo.proc.pid, signal.SIGUSR1)     # its threads' stacks
        time.sleep(1.)
        demo.kill_all()
        raise AssertionError("the demo did not stop within %d s:\n%s" % (
            STOP_WITHIN, "\n".join(demo.lines[-80:])))
    demo.wait_line(lambda l: l.startswith("demo: stopped"), timeout=2)
    assert demo.proc.returncode == 0, "\n".join(demo.lines)
    assert [pid for pid in children if alive(pid)] == []
    assert not os.path.exists(tmp)


def test_sigterm_after_first_statuses():
    demo = Demo()
    try:
        demo.wait_line(lambda l: l.startswith("cloud <- status"), count=2)
        check_clean_stop(demo, lambda pid: os.kill(pid, signal.SIGTERM))
    finally:
        if demo.proc.poll() is None:
            demo.kill_all()


def test_ctrl_c_while_registering():
    # Ctrl-C reaches the whole foreground process group; stopping while
    # the printer still makes its key also ends Klippy's key worker
    demo = Demo()
    try:
        demo.wait_line(lambda l: l.startswith("demo: registering"))
        time.sleep(0.5)
        check_clean_stop(demo, lambda pid: os.killpg(pid, signal.SIGINT))
    finally:
        if demo.proc.poll() is None:
            demo.kill_all()
