"""A worker for tests/test_runner.py (run as python -m tests.runner_worker)."""
import os
import sys
import time

from polarcloud.workers import worker_main


def handle(request, emit):
    if request.get("stderr"):
        for _ in range(request["stderr"] // 1000):
            sys.stderr.write("e" * 999 + "\n")
        sys.stderr.flush()
    for i in range(request.get("messages", 0)):
        emit({"n": i})
    if request.get("report_pid"):
        emit({"pid": os.getpid()})
    time.sleep(request.get("sleep", 0))
    if request.get("crash"):
        sys.stderr.write("boom\n")
        sys.stderr.flush()
        os._exit(7)
    if request.get("fail"):
        raise ValueError("asked to fail")
    return {"done": True, "nice": os.nice(0),
            "idle": os.sched_getscheduler(0) == os.SCHED_IDLE}


if __name__ == "__main__":
    worker_main(handle)
