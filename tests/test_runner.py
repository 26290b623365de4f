"""The one child-process runner (connector/runner.py) with a test worker."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from polarcloud.connector.runner import ChildError, ChildGroup, ChildProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerForTests(ChildProcess):
    PACKAGE = "tests."


def child(request, **kw):
    return WorkerForTests("runner_worker", request, **kw)


def test_result_messages_and_lower_priority():
    seen = []
    result = child({"messages": 3}, on_message=seen.append).run()
    assert result["done"] and seen == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert result["nice"] >= os.nice(0) + 10 or result["nice"] == 19
    assert result["idle"]       # SCHED_IDLE: only otherwise idle CPU time


def test_stderr_is_drained_while_running():
    # 1 MB on stderr would fill the pipe and stall a child nobody reads
    assert child({"stderr": 10 ** 6}, timeout=60).run()["done"]


def test_errors_and_crashes_are_reported():
    with pytest.raises(ChildError, match="asked to fail"):
        child({"fail": True}).run()
    with pytest.raises(ChildError, match=r"exit 7\): boom") as e:
        child({"crash": True}).run()
    assert e.value.kind == "crashed"


def test_watchdogs():
    with pytest.raises(ChildError, match="stalled") as e:
        child({"sleep": 30}, silence=0.5).run()
    assert e.value.kind == "timeout"
    with pytest.raises(ChildError, match="timed out after 0.5 s"):
        child({"messages": 1, "sleep": 30}, timeout=0.5).run()


def test_a_closed_group_cancels_its_children_and_any_later_one():
    group = ChildGroup()
    running = child({"sleep": 60})
    threading.Timer(0.5, group.close).start()
    with pytest.raises(ChildError) as e:
        group.run(running)
    assert e.value.kind == "cancelled" and running.returncode < 0
    later = child({})
    with pytest.raises(ChildError, match="cancelled"):
        group.run(later)
    assert later.returncode is None     # never started


def test_cancel_from_another_thread():
    c = child({"sleep": 30})
    threading.Timer(0.5, c.cancel).start()
    with pytest.raises(ChildError) as e:
        c.run()
    assert e.value.kind == "cancelled" and c.cancelled


PARENT = """
import sys
sys.path.insert(0, %r)
from tests.test_runner import child
child({"report_pid": True, "sleep": 60},
      on_message=lambda m: print(m["pid"], flush=True)).run()
"""


def test_a_worker_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT % (ROOT,)],
                              stdout=subprocess.PIPE, cwd=ROOT)
    pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)    # Klippy killed mid-download
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open("/proc/%d/stat" % (pid,)) as f:
            if f.read().split()[2] == "Z":
                return      # exited; only its zombie waits for init
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("worker outlived its parent")
