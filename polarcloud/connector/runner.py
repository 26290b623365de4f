"""Run a worker (polarcloud/workers/) in a child process and wait for it.

The calling thread (the connector thread or a short-lived thread of its)
only waits on pipes: messages are streamed as the worker writes them,
stderr is drained as it goes (a full pipe would stall the child), a
watchdog kills a worker that stays silent or runs too long, and `cancel()`
works from any thread.  The child's stdin stays open while it runs, so a
worker whose parent dies sees end-of-file and exits.
"""
import json
import os
import select
import subprocess
import sys
import threading
import time

from .. import ROOT

STDERR_TAIL = 2000


class ChildError(Exception):
    """A worker failed.  kind: the worker's own classification ("camera",
    "upload", ...), or "cancelled", "timeout", "crashed"."""

    def __init__(self, message, kind=None):
        Exception.__init__(self, message)
        self.kind = kind


def child_env():
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = ROOT + (os.pathsep + path if path else "")
    return env


class ChildProcess:
    """One run of `python -m polarcloud.workers.<worker>`.

    timeout: limit on the whole run; silence: limit between two lines
    (first_silence for the first one, e.g. a connect); on_message(dict) is
    called on the waiting thread for every message line."""

    PACKAGE = "polarcloud.workers."

    def __init__(self, worker, request, timeout=None, silence=None,
                 first_silence=None, on_message=None):
        self.worker = worker
        self.request = request
        self.timeout = timeout
        self.silence = silence
        self.first_silence = first_silence or silence
        self.on_message = on_message
        self.result = None      # the worker's result, also if cancelled
        self.returncode = None
        self._lock = threading.Lock()
        self._proc = None
        self._stopped = None    # why we killed it: "cancelled" or a text

    @property
    def cancelled(self):
        with self._lock:
            return self._stopped == "cancelled"

    def cancel(self):
        self._stop("cancelled")

    def run(self):
        """Wait for the worker; its result dict, else raise ChildError."""
        with self._lock:
            if self._stopped:
                raise ChildError("%s cancelled" % (self.worker,), "cancelled")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.PACKAGE + self.worker],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=child_env(), cwd=ROOT,
                close_fds=True)
        proc = self._proc
        try:
            proc.stdin.write(json.dumps(self.request).encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            pass    # it died at once: its stderr says why
        try:
            final, err = self._pump(proc)
        finally:
            self._reap(proc)
        return self._outcome(final, err)

    def _pump(self, proc):
        """Read both pipes until the worker closes them; (final, stderr)."""
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        started = last_line = time.monotonic()
        limit = self.first_silence
        open_fds, buf, err, final = {out_fd, err_fd}, b"", b"", None
        while open_fds:
            now = time.monotonic()
            wait = self._wait(now, started, last_line, limit)
            if wait is not None and wait <= 0.:
                self._stop(self._why(now, started))
                wait = None
            ready, _, _ = select.select(list(open_fds), [], [], wait)
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    open_fds.discard(fd)
                elif fd == err_fd:
                    err = (err + data)[-STDERR_TAIL:]
                else:
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        last_line, limit = time.monotonic(), self.silence
                        final = self._line(line) or final
        return final, err

    def _wait(self, now, started, last_line, limit):
        if self._stopped:
            return None     # killed: wait for the pipes to close
        ends = []
        if self.timeout:
            ends.append(started + self.timeout)
        if limit:
            ends.append(last_line + limit)
        return min(ends) - now if ends else None

    def _why(self, now, started):
        if self.timeout and now - started >= self.timeout:
            return "%s worker timed out after %g s" % (self.worker,
                                                       self.timeout)
        return "%s worker stalled (no progress for %g s)" % (
            self.worker, self.silence or self.first_silence)

    def _line(self, line):
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        if not isinstance(msg, dict):
            return None
        if "message" in msg:
            if self.on_message is not None and isinstance(msg["message"],
                                                          dict):
                self.on_message(msg["message"])
            return None
        return msg

    def _stop(self, why):
        with self._lock:
            if self._stopped is None:
                self._stopped = why
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()

    def _reap(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self.returncode = proc.returncode
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass

    def _outcome(self, final, err):
        if final is not None and isinstance(final.get("result"), dict):
            self.result = final["result"]
        with self._lock:
            stopped = self._stopped
        if stopped == "cancelled":
            raise ChildError("%s cancelled" % (self.worker,), "cancelled")
        if stopped:
            raise ChildError(stopped, "timeout")
        if self.result is not None and self.returncode == 0:
            return self.result
        if final is not None and final.get("error"):
            raise ChildError(str(final["error"]), final.get("kind"))
        raise ChildError("%s worker failed (exit %s): %s" % (
            self.worker, self.returncode,
            err.decode("utf-8", "replace").strip()[-300:]), "crashed")


class ChildGroup:
    """The children a thread waits on, cancelled together by close() from
    any thread, and so is any started after it.

    A connector told to stop must not wait for a hello signature or a key
    that a starved SCHED_IDLE child has not made yet: RESTART would go on
    without it and the old connection would linger beside the new one."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running = set()
        self._closed = False

    def run(self, child):
        """child.run(), cancelled if the group is (or gets) closed."""
        with self._lock:
            if self._closed:
                child.cancel()
            self._running.add(child)
        try:
            return child.run()
        finally:
            with self._lock:
                self._running.discard(child)

    def close(self):
        with self._lock:
            self._closed = True
            running = list(self._running)
        for child in running:
            child.cancel()


def run(worker, request, timeout=None, group=None):
    """Run a worker to completion (in group, if given); its result dict,
    else ChildError."""
    child = ChildProcess(worker, request, timeout=timeout)
    return child.run() if group is None else group.run(child)
