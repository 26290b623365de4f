"""Download worker (a child process): one cloud print file.

``python -m polarcloud.workers.download``: a full-speed download in Klippy's
process would delay its reactor, so the transfer runs here and the
connector only waits on the pipe (connector/prints.py).

Request: {"url", "dest_dir", "filename", "max_bytes", "min_free_bytes",
"read_timeout"} (the timeout of the connection and of each read).  Messages: {"progress": bytes,
"total": bytes or None}.  Result: {"path", "filename", "bytes"}.

A partial download never becomes a print: the body streams into a hidden
``.<name>.part`` file (fsynced), renamed only once complete, under a name
that does not exist yet; free space is checked before and while writing.
"""
import errno
import http.client
import os
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request

from ..printfiles import (DownloadError, check_filename, format_size,
                          is_http_url, part_path, remove_quietly,
                          unused_path)
from . import worker_main

READ_TIMEOUT = 30.0
CHUNK_BYTES = 1024 * 1024
SPACE_CHECK_BYTES = 8 * 1024 * 1024
PROGRESS_INTERVAL = 0.5
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _network_reason(exc):
    # Messages may embed the URL, which carries signed tokens: say what
    # happened without repeating it.
    if isinstance(exc, urllib.error.URLError) and not isinstance(
            exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, Exception) else exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, (http.client.IncompleteRead,
                        http.client.RemoteDisconnected,
                        ConnectionResetError, BrokenPipeError)):
        return "connection closed early"
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return "connection failed"
    return exc.__class__.__name__


def _content_length(response):
    try:
        n = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    # A compressed body's size differs from Content-Length (we ask for
    # none, but a server may send it anyway): count without comparing.
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


def _stream_body(response, out, req, total, progress):
    """Copy the body into `out`; returns the byte count.  Enforces the caps."""
    max_bytes = req["max_bytes"]
    done, next_space_check = 0, SPACE_CHECK_BYTES
    try:
        while True:
            chunk = response.read(CHUNK_BYTES)
            if not chunk:
                break
            done += len(chunk)
            if done > max_bytes:
                raise _too_large(max_bytes)
            out.write(chunk)
            if done >= next_space_check:
                next_space_check += SPACE_CHECK_BYTES
                _check_free_space(req["dest_dir"], max((total or 0) - done, 0),
                                  req["min_free_bytes"])
            progress.report(done)
    except (OSError, http.client.HTTPException) as e:
        if getattr(e, "errno", None) in DISK_FULL:
            raise
        got = "after %d of %s bytes" % (done, total if total is not None else "?")
        raise DownloadError("download interrupted %s: %s" % (got, _network_reason(e)))
    if total is not None and done != total:
        raise DownloadError("download incomplete: got %d of %d bytes" % (done, total))
    return done


def _open_response(req):
    """The response to a GET of req["url"] (redirects followed)."""
    request = urllib.request.Request(req["url"], headers={
        "Accept-Encoding": "identity", "User-Agent": "polar-cloud-klipper"})
    try:
        # one timeout for the connection and for each read
        return urllib.request.urlopen(request, timeout=req["read_timeout"])
    except urllib.error.HTTPError as e:
        e.close()
        raise DownloadError("HTTP %d downloading the print file" % (e.code,))
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DownloadError("could not reach the print file server: %s"
                            % (_network_reason(e),))


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
    """Worker handler (request described in the module docstring)."""
    check_filename(req.get("filename"))
    if not is_http_url(req.get("url")):
        raise DownloadError("invalid print file URL")
    req = dict(req, read_timeout=req.get("read_timeout") or READ_TIMEOUT,
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
        if e.errno in DISK_FULL:
            raise DownloadError("disk full while saving the print file")
        raise
    finally:
        remove_quietly(tmp_path)  # no-op after the rename
    _fsync_dir(dest_dir)
    return {"path": final_path, "filename": os.path.basename(final_path), "bytes": done}


if __name__ == "__main__":
    worker_main(download)
