"""Child-process workers: the code that runs in ``python -m
polarcloud.workers.<name>``, started by connector/runner.py.

Klippy's reactor shares the GIL with every thread in its process: RSA
arithmetic, image work and full-speed downloads in a thread delay it, so
they run here.  A worker reads one JSON request on stdin and writes JSON
lines on stdout: ``{"message": ...}`` as it goes (progress), then one
``{"result": ...}`` or ``{"error": text, "kind": ...}``.
"""
import json
import os
import sys
import threading

NICENESS = 10   # heavy work yields the CPU to Klippy


class WorkerError(Exception):
    """A classified failure ("camera", "upload", "image", ...)."""

    def __init__(self, kind, message):
        Exception.__init__(self, "%s: %s" % (kind, message))
        self.kind = kind


def _write(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _read_request():
    # raw reads on fd 0: a buffered reader's lock would be held by the
    # watcher thread at interpreter shutdown
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data or b"{}")


def _exit_with_parent():
    # The parent keeps our stdin open while it waits for us: end of file
    # means it is gone (Klippy killed or restarted), so stop working.
    while os.read(0, 4096):
        pass
    os._exit(3)


def lower_priority():
    """Yield the CPU (and, with it, the disk) to Klippy and Moonraker.

    SCHED_IDLE runs the worker only on otherwise idle CPU time, and Linux
    gives such a task the idle I/O class too; nice is the fallback where
    that policy is missing."""
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def worker_main(handler):
    """Run handler(request, emit) -> dict; emit(dict) sends a message line.

    The child lowers its own priority first (no preexec_fn: the parent is
    threaded).  Exceptions become an error line and exit status 1."""
    lower_priority()
    try:
        request = _read_request()
        threading.Thread(target=_exit_with_parent, daemon=True).start()
        result = handler(request, lambda obj: _write({"message": obj}))
    except Exception as e:
        _write({"error": str(e) or e.__class__.__name__,
                "kind": getattr(e, "kind", None)})
        sys.exit(1)
    _write({"result": result if isinstance(result, dict) else {}})
