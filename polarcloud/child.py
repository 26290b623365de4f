"""Run CPU- or bulk-I/O-heavy work in a child Python process.

Klippy's reactor shares the GIL with every thread in its process: RSA, image
work and full-speed downloads in a thread delay it (see
shared/reactor-measurements.md).  Workers are modules of this package run as
``python -m polarcloud.<worker>``; they read a JSON request on stdin and write
JSON lines on stdout.  The calling thread only waits on a pipe.
"""
import json
import os
import subprocess
import sys

from . import ROOT


class ChildError(Exception):
    """A worker failed; kind classifies it when the worker said ("camera",
    "upload", "image", ...)."""

    def __init__(self, message, kind=None):
        Exception.__init__(self, message)
        self.kind = kind


class WorkerError(Exception):
    """Raised inside a worker to report a classified failure."""

    def __init__(self, kind, message):
        Exception.__init__(self, "%s: %s" % (kind, message))
        self.kind = kind


def child_env():
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = ROOT + (os.pathsep + path if path else "")
    return env


def _lower_priority():
    # Keep heavy work from competing with Klippy for the CPU.
    try:
        os.nice(10)
    except OSError:
        pass


def start(worker, request=None):
    """Start worker; returns the Popen (stdout line-buffered text)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "polarcloud." + worker],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=child_env(), cwd=ROOT, preexec_fn=_lower_priority,
        text=True, bufsize=1, close_fds=True)
    proc.stdin.write(json.dumps(request or {}))
    proc.stdin.close()
    proc.stdin = None  # so communicate() does not touch it again
    return proc


def run(worker, request=None, timeout=None):
    """Run worker to completion; returns its last JSON line (a dict).

    Raises ChildError with the worker's own message on failure or timeout.
    """
    proc = start(worker, request)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ChildError("%s worker timed out" % (worker,))
    lines = [l for l in out.splitlines() if l.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
    if proc.returncode != 0 or not isinstance(result, dict):
        if isinstance(result, dict) and result.get("error"):
            raise ChildError(result["error"], result.get("kind"))
        raise ChildError("%s worker failed (exit %s): %s" % (
            worker, proc.returncode, err.strip()[-300:]))
    if "error" in result:
        raise ChildError(result["error"], result.get("kind"))
    return result


def worker_main(handler):
    """Entry point for a worker module: handler(request, emit) -> dict.

    emit(dict) writes an intermediate JSON line (progress).  Exceptions become
    {"error": message} and exit status 1.
    """
    def emit(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    try:
        request = json.loads(sys.stdin.read() or "{}")
        result = handler(request, emit)
    except Exception as e:
        emit({"error": "%s" % (e,) or e.__class__.__name__,
              "kind": getattr(e, "kind", None)})
        sys.exit(1)
    emit(result if isinstance(result, dict) else {"result": result})
