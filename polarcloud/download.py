"""Cloud print download: a child-process worker and its parent-side runner.

A full-speed download in Klippy's process delays the reactor (see
shared/reactor-measurements.md), so the transfer runs in
``python -m polarcloud.download`` (polarcloud.child convention); the
connector's background thread only waits on the pipe through `Download`.

Safety rules: a partial download never becomes a print (it streams into a
hidden ``.<name>.part`` file, renamed only once complete), and nothing the
cloud sends can overwrite a user's file or leave the target folder.
"""
import errno
import json
import os
import re
import select
import shutil
import threading
import time

from . import child

MiB = 1024 * 1024
DEFAULT_MIN_FREE_BYTES = 100 * MiB
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
CHUNK_BYTES = 64 * 1024
SPACE_CHECK_BYTES = 8 * MiB
PROGRESS_INTERVAL = 0.5
MAX_NAME_CHARS = 80
MAX_ID_CHARS = 40
MAX_NAME_VARIANTS = 999
WATCHDOG_SLACK = 10.0
PRINT_FILE_KEYS = ("gcodeFile", "stlFile", "threemfFile")
NO_GCODE = "Polar Cloud job has no G-code (STL/3MF slicing is not supported on Klipper)"


class DownloadError(Exception):
    pass


# ---------------------------------------------------------------- pure helpers

def _clean_name_part(text, max_chars):
    # Every run of characters outside [A-Za-z0-9_-] (spaces, dots, slashes)
    # becomes one "_", so "../../printer.cfg" -> "printer_cfg".
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", "" if text is None else str(text))
    text = re.sub(r"([_-])\1+", r"\1", text)
    return text.strip("_-")[:max_chars].strip("_-")


def job_filename(job_name, job_id):
    """`<name>_cloud_<id>.gcode`; safe as a single file name in any folder."""
    name = _clean_name_part(job_name, MAX_NAME_CHARS)
    job = _clean_name_part(job_id, MAX_ID_CHARS) or "job"
    return "%s_cloud_%s.gcode" % (name, job) if name else "polar_cloud_%s.gcode" % (job,)


def pick_print_url(payload):
    """(key, url) of the file a `print` command asks for; ValueError if unusable."""
    if not isinstance(payload, dict):
        raise ValueError("Polar Cloud print command has no payload")
    key = payload.get("fileToPrint") or "gcodeFile"
    if key not in PRINT_FILE_KEYS:
        raise ValueError("Polar Cloud job names an unknown file to print: %.40r" % (key,))
    if not any(payload.get(k) for k in PRINT_FILE_KEYS):
        raise ValueError("Polar Cloud job has no file to print")
    if key != "gcodeFile" or not payload.get("gcodeFile"):
        raise ValueError(NO_GCODE)
    url = payload["gcodeFile"]
    if not is_http_url(url):
        raise ValueError("Polar Cloud job has an invalid G-code URL")
    return key, url


def is_http_url(url):
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def check_filename(filename):
    """Refuse anything but a plain, visible file name (no folders, no '..')."""
    if (not isinstance(filename, str) or not filename or filename.startswith(".")
            or "/" in filename or "\\" in filename or "\0" in filename
            or os.path.basename(filename) != filename):
        raise DownloadError("invalid download file name: %.100r" % (filename,))


def part_path(dest_dir, filename):
    return os.path.join(dest_dir, ".%s.part" % (filename,))


def unused_path(dest_dir, filename):
    """dest_dir/filename, or `<stem>_2<ext>`, `_3`... if taken: never overwrite."""
    stem, ext = os.path.splitext(filename)
    for n in range(1, MAX_NAME_VARIANTS + 1):
        name = filename if n == 1 else "%s_%d%s" % (stem, n, ext)
        path = os.path.join(dest_dir, name)
        if not os.path.lexists(path):  # lexists: a dangling symlink is taken too
            return path
    raise DownloadError("too many files named like %s" % (filename,))


def format_size(n):
    if n >= MiB:
        return "%d MB" % (n // MiB)
    return "%d kB" % (max(n, 0) // 1024)


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------- worker

def _network_reason(exc):
    # requests' messages embed the URL, which may carry signed tokens: say
    # what happened without repeating it.
    import requests
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS/certificate error"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed early"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc).lower()
        if "timed out" in text:
            return "timed out"
        return "connection failed"
    return exc.__class__.__name__


def _content_length(response):
    try:
        n = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    # A compressed body's decoded size differs from Content-Length; urllib3
    # still detects truncation of the raw stream.
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    return n if n >= 0 else None


def _too_large(max_bytes):
    return DownloadError("file is larger than the %s limit" % (format_size(max_bytes),))


def _check_free_space(dest_dir, needed_bytes, min_free_bytes):
    free = shutil.disk_usage(dest_dir).free
    if free < needed_bytes + min_free_bytes:
        raise DownloadError("not enough free disk space: need %s plus %s reserve, %s free" % (
            format_size(needed_bytes), format_size(min_free_bytes), format_size(free)))


def _open_part_file(path):
    # O_EXCL: never write through a file or symlink already there.  A .part
    # file is ours by name; one left over from a killed run is removed first
    # (the connector runs one download at a time).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o644)
    return os.fdopen(fd, "wb")


def _fsync_dir(path):
    # Make the rename itself durable (power loss right after a print starts).
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Progress:
    """Rate-limited progress lines: at most one every PROGRESS_INTERVAL."""

    def __init__(self, emit, total):
        self.emit, self.total = emit, total
        self.last_time, self.last_done = None, None

    def report(self, done, force=False):
        now = time.monotonic()
        due = self.last_time is None or now - self.last_time >= PROGRESS_INTERVAL
        if (force or due) and done != self.last_done:
            self.last_time, self.last_done = now, done
            self.emit({"progress": done, "total": self.total})


def _pace(started, done, rate_limit):
    if rate_limit:
        ahead = done / float(rate_limit) - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def _stream_body(response, out, req, total, progress):
    """Copy the body into `out`; returns the byte count.  Enforces the caps."""
    import requests
    max_bytes, started = req["max_bytes"], time.monotonic()
    done, next_space_check = 0, SPACE_CHECK_BYTES
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            done += len(chunk)
            if done > max_bytes:
                raise _too_large(max_bytes)
            out.write(chunk)
            if done >= next_space_check:
                next_space_check += SPACE_CHECK_BYTES
                _check_free_space(req["dest_dir"], max((total or 0) - done, 0),
                                  req["min_free_bytes"])
            progress.report(done)
            _pace(started, done, req.get("rate_limit"))
    except requests.exceptions.RequestException as e:
        got = "after %d of %s bytes" % (done, total if total is not None else "?")
        raise DownloadError("download interrupted %s: %s" % (got, _network_reason(e)))
    if total is not None and done != total:
        raise DownloadError("download incomplete: got %d of %d bytes" % (done, total))
    return done


def _open_response(req):
    import requests
    try:
        # identity: the byte count must be comparable with Content-Length.
        response = requests.get(
            req["url"], stream=True, headers={"Accept-Encoding": "identity"},
            timeout=(req["connect_timeout"], req["read_timeout"]))
    except requests.exceptions.RequestException as e:
        raise DownloadError("could not reach the print file server: %s" % (_network_reason(e),))
    if response.status_code != 200:
        response.close()
        raise DownloadError("HTTP %d downloading the print file" % (response.status_code,))
    return response


def _download_to_part(req, tmp_path, emit):
    """Fetch req['url'] into tmp_path (fsynced); returns the byte count."""
    response = _open_response(req)
    with response:
        total = _content_length(response)
        if total is not None and total > req["max_bytes"]:
            raise _too_large(req["max_bytes"])
        _check_free_space(req["dest_dir"], total or 0, req["min_free_bytes"])
        progress = _Progress(emit, total)
        with _open_part_file(tmp_path) as out:
            progress.report(0, force=True)
            done = _stream_body(response, out, req, total, progress)
            out.flush()
            os.fsync(out.fileno())
        progress.report(done, force=True)
        return done


def download(req, emit):
    """Worker handler: Download.request -> {"path", "filename", "bytes"}."""
    check_filename(req.get("filename"))
    if not is_http_url(req.get("url")):
        raise DownloadError("invalid print file URL")
    req = dict(req, connect_timeout=req.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT,
               read_timeout=req.get("read_timeout") or DEFAULT_READ_TIMEOUT,
               min_free_bytes=req.get("min_free_bytes") or 0)
    dest_dir, filename = req["dest_dir"], req["filename"]
    os.makedirs(dest_dir, 0o755, exist_ok=True)
    tmp_path = part_path(dest_dir, filename)
    try:
        done = _download_to_part(req, tmp_path, emit)
        # Name chosen last, so a file the user added meanwhile is not replaced.
        final_path = unused_path(dest_dir, filename)
        os.replace(tmp_path, final_path)
    except OSError as e:
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise DownloadError("disk full while saving the print file")
        raise
    finally:
        remove_quietly(tmp_path)  # no-op after the rename
    _fsync_dir(dest_dir)
    return {"path": final_path, "filename": os.path.basename(final_path), "bytes": done}


# ----------------------------------------------------------------- parent side

class Download:
    """Runs the download worker from a background thread.

    run() blocks and returns {"path", "filename", "bytes"} or raises
    DownloadError; cancel() may be called from any thread.
    """

    def __init__(self, url, dest_dir, filename, max_bytes,
                 min_free_bytes=DEFAULT_MIN_FREE_BYTES, on_progress=None,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 read_timeout=DEFAULT_READ_TIMEOUT, rate_limit=None):
        self.request = {
            "url": url, "dest_dir": dest_dir, "filename": filename,
            "max_bytes": max_bytes, "min_free_bytes": min_free_bytes,
            "connect_timeout": connect_timeout, "read_timeout": read_timeout,
            "rate_limit": rate_limit}
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._proc = None
        self._cancelled = False
        self._killed_reason = None
        self._stderr_tail = ""

    @property
    def cancelled(self):
        with self._lock:
            return self._cancelled

    def cancel(self):
        with self._lock:
            self._cancelled = True
            if self._proc is not None:
                self._proc.kill()

    def run(self, timeout=None):
        check_filename(self.request["filename"])
        with self._lock:
            if self._cancelled:
                raise DownloadError("download cancelled")
            self._proc = proc = child.start("download", self.request)
        try:
            result = self._read_result(proc, timeout)
        finally:
            self._stop(proc)
        return self._outcome(proc, result)

    def _read_result(self, proc, timeout):
        """Feed progress lines to on_progress; returns the last other JSON line."""
        deadline = time.monotonic() + timeout if timeout else None
        # First line may wait for connect + first byte; later ones only for a read.
        stall = self.request["connect_timeout"] + self.request["read_timeout"] + WATCHDOG_SLACK
        last_line, result = time.monotonic(), None
        for line in self._lines(proc):  # None: a second without output
            now = time.monotonic()
            if line is not None:
                last_line = now
                stall = self.request["read_timeout"] + WATCHDOG_SLACK
                result = self._handle_line(line) or result
            if now - last_line > stall:
                self._kill(proc, "download stalled: no data for %g s" % (stall,))
            elif deadline is not None and now > deadline:
                self._kill(proc, "download timed out after %g s" % (timeout,))
        return result

    def _handle_line(self, line):
        """Progress goes to on_progress; any other JSON object is returned."""
        msg = _parse_line(line)
        if "progress" in msg:
            if self.on_progress:
                self.on_progress(msg["progress"], msg.get("total"))
            return None
        return msg or None

    @staticmethod
    def _lines(proc):
        # Raw fd + select so the watchdog runs while the worker is silent.
        fd, buf = proc.stdout.fileno(), b""
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                yield None
                continue
            data = os.read(fd, 65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line

    def _kill(self, proc, reason):
        with self._lock:
            self._killed_reason = self._killed_reason or reason
            proc.kill()

    def _stop(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        self._stderr_tail = err.strip()[-300:]
        if proc.returncode < 0:
            # Killed by a signal: the worker could not remove its temp file.
            remove_quietly(part_path(self.request["dest_dir"], self.request["filename"]))

    def _outcome(self, proc, result):
        with self._lock:
            cancelled, killed_reason = self._cancelled, self._killed_reason
        if cancelled:
            if result and "path" in result:
                remove_quietly(result["path"])  # landed just before the cancel: ours
            raise DownloadError("download cancelled")
        if killed_reason:
            raise DownloadError(killed_reason)
        if result and "error" in result:
            raise DownloadError(result["error"])
        if proc.returncode != 0 or not result or "path" not in result:
            raise DownloadError("download worker failed (exit %s): %s" % (
                proc.returncode, self._stderr_tail))
        return result


def _parse_line(line):
    try:
        msg = json.loads(line)
    except ValueError:
        return {}
    return msg if isinstance(msg, dict) else {}


if __name__ == "__main__":
    child.worker_main(download)
