"""Cloud print download: file naming, URL choice, and the worker end to end
against a loopback HTTP server (real child processes)."""
import errno
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from polarcloud.connector.runner import ChildError, ChildProcess
from polarcloud.printfiles import (
    NO_GCODE, DownloadError, job_fields, job_filename, pick_print_url,
    remove_stale_parts)
from polarcloud.workers import download as download_module

BODY = os.urandom(300 * 1024)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _headers(self, code=200, length=None, chunked=False):
        self.send_response(code)
        self.send_header("Content-Type", "text/x-gcode")
        self.send_header("Connection", "close")
        if length is not None:
            self.send_header("Content-Length", str(length))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def do_GET(self):
        route = getattr(self, "route_" + self.path.strip("/"), None)
        try:
            if route:
                route()
            else:
                self._headers(404, length=0)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as several cases expect

    def route_ok(self):
        self._headers(length=len(BODY))
        self.wfile.write(BODY)

    def route_truncated(self):
        self._headers(length=100000)
        self.wfile.write(b"x" * 50000)
        self.wfile.flush()
        self.close_connection = True

    def route_chunked(self):
        self._headers(chunked=True)
        for _ in range(20):
            self._chunk(b"G1 X1\n" * 2000)
        self.wfile.write(b"0\r\n\r\n")

    def route_huge(self):
        self._headers(length=10 ** 9)
        self.wfile.write(b"x" * 1024)

    def route_slow(self):
        self._headers(chunked=True)
        for _ in range(200):  # ~20 s at most, until the client disconnects
            self._chunk(b"y" * 65536)
            self.wfile.flush()
            time.sleep(0.1)
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % (httpd.server_address[1],)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dest(tmp_path):
    return str(tmp_path / "gcodes")


def download(server, dest, path, filename="job_cloud_1.gcode",
             max_bytes=10 ** 6, min_free_bytes=0, timeout=30, **kwargs):
    """The download worker as connector/prints.py runs it."""
    request = {"url": server + path, "dest_dir": dest, "filename": filename,
               "max_bytes": max_bytes, "min_free_bytes": min_free_bytes,
               "read_timeout": 5}
    return ChildProcess("download", request, timeout=timeout, silence=15,
                        **kwargs)


def fetch(server, dest, path, **kwargs):
    return download(server, dest, path, **kwargs).run()


def listing(dest):
    return sorted(os.listdir(dest)) if os.path.isdir(dest) else []


# ------------------------------------------------------------------ job_filename

@pytest.mark.parametrize("name, job_id, expected", [
    ("Benchy", "abc123", "Benchy_cloud_abc123.gcode"),
    ("my part v2", "OP1-2", "my_part_v2_cloud_OP1-2.gcode"),
    ("../../printer.cfg", "OP1-2", "printer_cfg_cloud_OP1-2.gcode"),
    ("..", "7", "polar_cloud_7.gcode"),
    ("", "7", "polar_cloud_7.gcode"),
    (None, "7", "polar_cloud_7.gcode"),
    (".hidden", "7", "hidden_cloud_7.gcode"),
    ("a//b\\c\0d", "7", "a_b_c_d_cloud_7.gcode"),
    ("x", "../../etc/passwd", "x_cloud_etc_passwd.gcode"),
    ("x", "", "x_cloud_job.gcode"),
    ("x", None, "x_cloud_job.gcode"),
    ("x", "/..//", "x_cloud_job.gcode"),
    ("x", 42, "x_cloud_42.gcode"),
    ("a   b___c--d", "1", "a_b_c-d_cloud_1.gcode"),
])
def test_job_filename(name, job_id, expected):
    assert job_filename(name, job_id) == expected


def test_job_filename_lengths_and_safety():
    name = job_filename("n" * 500, "i" * 500)
    assert name == "n" * 80 + "_cloud_" + "i" * 40 + ".gcode"
    for tricky in ["../x", "./.", "..\\..", "/abs/path", "\u00e9t\u00e9", " . "]:
        result = job_filename(tricky, tricky)
        assert "/" not in result and ".." not in result
        assert not result.startswith(".")


# ---------------------------------------------------------------- pick_print_url

@pytest.mark.parametrize("payload", [
    {"gcodeFile": "https://h/a"},
    {"fileToPrint": "gcodeFile", "gcodeFile": "https://h/a",
     "stlFile": "http://h/b.stl"},
    # the service sends several files; the G-code is printed whenever
    # there is one, whatever fileToPrint names (as Polar3D's connector)
    {"fileToPrint": "threemfFile", "gcodeFile": "https://h/a",
     "threemfFile": "https://h/a.3mf"},
    {"fileToPrint": "stlFile", "gcodeFile": "https://h/a",
     "stlFile": "https://h/a.stl"},
    {"fileToPrint": "configFile", "gcodeFile": "https://h/a"},
    {"gcode_file": "https://h/a"},
])
def test_pick_print_url_takes_the_gcode(payload):
    assert pick_print_url(payload) == "https://h/a"


@pytest.mark.parametrize("payload, message", [
    ({"stlFile": "https://h/a.stl", "configFile": "https://h/a.ini"}, NO_GCODE),
    ({"threemfFile": "https://h/a.gcode.3mf"}, NO_GCODE),
    ({"fileToPrint": "stlFile", "stlFile": "https://h/a.stl"}, NO_GCODE),
    ({"jobId": "1"}, "no file to print"),
    ({"gcodeFile": "file:///etc/passwd"}, "invalid G-code URL"),
    ({"gcodeFile": "ftp://h/a.gcode"}, "invalid G-code URL"),
    ({"gcodeFile": 12}, "invalid G-code URL"),
])
def test_pick_print_url_rejects(payload, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pick_print_url(payload)


# ---------------------------------------------------------------------- download

@pytest.mark.parametrize("data, job_id, name", [
    ({"jobId": "OP1-2", "jobName": "cube"}, "OP1-2", "cube"),
    ({"job_id": 77, "job_name": "x"}, "77", "x"),
    ({}, "123", ""),
    ({"jobId": "  "}, "123", ""),
    ({"jobId": "A\udfff"}, None, ""),          # not text: refused
    ({"jobId": "x" * 65}, None, ""),
    ({"jobId": ["1"]}, None, ""),
    ({"jobId": "1", "jobName": "bad\ud800\n"}, "1", "bad\\ud800\\n"),
])
def test_job_fields(data, job_id, name):
    assert job_fields(data) == (job_id, name)


def test_download_ok(server, dest):
    seen = []
    result = fetch(server, dest, "/ok", on_message=lambda m: seen.append(
        (m["progress"], m["total"])))
    path = os.path.join(dest, "job_cloud_1.gcode")
    assert result == {"path": path, "filename": "job_cloud_1.gcode", "bytes": len(BODY)}
    with open(path, "rb") as f:
        assert f.read() == BODY
    assert listing(dest) == ["job_cloud_1.gcode"]
    assert seen and seen[-1] == (len(BODY), len(BODY))
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644 & ~current_umask())


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_existing_file_is_not_overwritten(server, dest):
    os.makedirs(dest)
    for name in ("job_cloud_1.gcode", "job_cloud_1_2.gcode"):
        with open(os.path.join(dest, name), "w") as f:
            f.write("user file")
    result = fetch(server, dest, "/ok")
    assert result["filename"] == "job_cloud_1_3.gcode"
    for name in ("job_cloud_1.gcode", "job_cloud_1_2.gcode"):
        with open(os.path.join(dest, name)) as f:
            assert f.read() == "user file"


def test_http_404(server, dest):
    with pytest.raises(ChildError, match="HTTP 404 downloading the print file"):
        fetch(server, dest, "/missing")
    assert listing(dest) == []


def test_truncated_body_leaves_nothing(server, dest):
    with pytest.raises(ChildError, match="interrupted|incomplete"):
        fetch(server, dest, "/truncated")
    assert listing(dest) == []


def test_chunked_body_over_cap_leaves_nothing(server, dest):
    with pytest.raises(ChildError, match="larger than the 100 kB limit"):
        fetch(server, dest, "/chunked", max_bytes=100 * 1024)
    assert listing(dest) == []


def test_content_length_over_cap_writes_nothing(server, dest):
    with pytest.raises(ChildError, match="larger than the 1 MB limit"):
        fetch(server, dest, "/huge", max_bytes=1024 * 1024)
    assert listing(dest) == []


def test_not_enough_disk_space(server, dest):
    os.makedirs(dest)
    too_much = shutil.disk_usage(dest).free + 10 ** 12
    with pytest.raises(ChildError, match="not enough free disk space"):
        fetch(server, dest, "/ok", min_free_bytes=too_much)
    assert listing(dest) == []


def test_filename_with_path_is_refused(server, dest):
    for bad in ("../x.gcode", "a/b.gcode", ".x.gcode", ""):
        with pytest.raises(ChildError, match="invalid download file name"):
            fetch(server, dest, "/ok", filename=bad)
    assert listing(dest) == []


def test_cancel_mid_download_leaves_nothing(server, dest):
    started = threading.Event()

    def on_progress(message):
        if message["progress"] > 0:
            started.set()

    dl = download(server, dest, "/slow", "slow.gcode", 10 ** 9,
                  on_message=on_progress)
    errors = []
    runner = threading.Thread(target=lambda: errors.append(run_catching(dl)))
    runner.start()
    assert started.wait(10)
    assert ".slow.gcode.part" in listing(dest)
    dl.cancel()
    runner.join(10)
    assert not runner.is_alive()
    assert errors == ["download cancelled"] and dl.cancelled
    # killed mid-write: prints.py removes the worker's temp file
    assert listing(dest) == [] or listing(dest) == [".slow.gcode.part"]


def test_cancel_before_run(server, dest):
    dl = download(server, dest, "/ok", "x.gcode")
    dl.cancel()
    with pytest.raises(ChildError, match="download cancelled"):
        dl.run()
    assert listing(dest) == []


def run_catching(dl):
    try:
        dl.run()
    except ChildError as e:
        return str(e)
    return "finished"


def test_overall_timeout_kills_worker(server, dest):
    dl = download(server, dest, "/slow", "slow.gcode", 10 ** 9, timeout=1.5)
    with pytest.raises(ChildError, match="download worker timed out after"
                       " 1.5 s"):
        dl.run()
    assert dl.returncode < 0     # killed


def test_unreachable_server(dest):
    with pytest.raises(ChildError, match="could not reach the print file server"):
        fetch("http://127.0.0.1:1", dest, "/x.gcode")
    assert listing(dest) == []


def test_disk_full_while_writing_leaves_nothing(server, dest, monkeypatch):
    # In-process worker call: a write failing with ENOSPC is reported as such.
    class FullDisk:
        def __init__(self, path):
            self.file = real_open(path)

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    real_open = download_module._open_part_file
    monkeypatch.setattr(download_module, "_open_part_file", FullDisk)
    request = {"url": server + "/ok", "dest_dir": dest, "filename": "full.gcode",
               "max_bytes": 10 ** 6, "min_free_bytes": 0}
    with pytest.raises(DownloadError, match="disk full"):
        download_module.download(request, lambda msg: None)
    assert listing(dest) == []


def test_remove_stale_parts_only_touches_our_part_files(tmp_path):
    keep = ["a_cloud_1.gcode", ".user.gcode.part", "x.part", ".notes"]
    stale = [".a_cloud_1.gcode.part", ".polar_cloud_7.gcode.part"]
    for name in keep + stale:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(remove_stale_parts(str(tmp_path))) == sorted(stale)
    assert sorted(os.listdir(str(tmp_path))) == sorted(keep)
    assert remove_stale_parts(str(tmp_path / "missing")) == []
