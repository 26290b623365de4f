"""The printer half of issue 10's fault campaign, on a real Klippy +
Moonraker on loopback: storage faults, crashes and restarts, job events
across outages (docs/reliability.md).

Default mode runs each case once; POLAR_CAMPAIGN=full repeats the crash
cases CAMPAIGN_REPEATS times and, with POLAR_CAMPAIGN_REPORT=<file>, writes
what each run measured to that JSON file (bench/faults_printer.py).
"""
import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import SESSION_POLAR_OPTIONS, gcode_file, go_online, wait_until
from test_e2e_remote import cloud_files, job_events, start_long_print

FULL = os.environ.get("POLAR_CAMPAIGN") == "full"
CAMPAIGN_REPEATS = int(os.environ.get("POLAR_CAMPAIGN_REPEATS", "5"))
REPEATS = CAMPAIGN_REPEATS if FULL else 1
QUIET = 2.     # seconds without a second job event / print after a check
FIGURES = []

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (read-only bind mount, tmpfs)")


@pytest.fixture(scope="module", autouse=True)
def proxy(printer, cloud):
    """The session printer, for this module, with the cloud reached
    through a LinkProxy (transparent until told otherwise)."""
    link = LinkProxy(cloud.port)
    printer.cloud_url = link.url
    restart_with_options(printer, SESSION_POLAR_OPTIONS)
    yield link
    printer.cloud_url = cloud.url
    restart_with_options(printer, SESSION_POLAR_OPTIONS)
    link.close()


@pytest.fixture(scope="module", autouse=True)
def campaign_report():
    yield FIGURES
    path = os.environ.get("POLAR_CAMPAIGN_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({"full": FULL, "repeats": REPEATS, "runs": FIGURES},
                      f, indent=1)


def figure(case, **values):
    FIGURES.append(dict(values, case=case))


# --- helpers ------------------------------------------------------------

def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def state_path(printer):
    return os.path.join(printer.state_dir, "state.json")


def key_path(printer):
    return os.path.join(printer.state_dir, "polar_cloud_key.pem")


def corrupt_files(printer):
    return {n for n in os.listdir(printer.state_dir) if ".corrupt-" in n}


def records_since(cloud, event, mark):
    return [r for r in cloud.events[mark:] if r.event == event]


def wait_verified_hello(cloud, mark, timeout=60.):
    hello = cloud.wait_for("hello", start=mark, timeout=timeout)
    assert hello.verified
    return hello


def wait_online(printer, cloud, serial, mark, timeout=60.):
    """Verified hello since mark and the module says online; returns the
    seconds from now until the hello arrived (0 if it already had)."""
    start = time.monotonic()
    hello = wait_verified_hello(cloud, mark, timeout)
    printer.wait_polar(lambda s: s["connected"] and s["serial"] == serial,
                       timeout=timeout, what="online")
    return max(0., hello.t - start)


def polar_status_lines(printer):
    return "\n".join(printer.gcode_output("POLAR_STATUS"))


def endpoint_status(printer):
    return printer.http_get("/server/polar/status")


def local_print(printer, name, moves=30, cancel=False):
    """SDCARD_PRINT_FILE of a file placed in gcodes; waits for its end.
    Returns the file's size: local jobs all have the id "123", their
    `fileSize` tells them apart."""
    content = gcode_file(moves=moves)
    write(os.path.join(printer.gcodes, name), content)
    printer.klippy.gcode("SDCARD_PRINT_FILE FILENAME=%s" % (name,))
    if cancel:
        printer.wait_print_state(["printing"], timeout=30)
        printer.klippy.gcode("CANCEL_PRINT")
        printer.wait_print_state(["cancelled", "standby"], timeout=30)
    else:
        printer.wait_print_state(["complete"], timeout=60)
    return len(content)


def ours(events, job_id=None, sizes=()):
    """(jobId, state) of the events of this cloud job and these local
    files: a job of an earlier test that ended less than CONFIRM_AFTER
    before a link failure is sent again (at least once, see jobs.py)."""
    return [(e["jobId"], e["state"]) for e in events
            if e["jobId"] == job_id
            or (e["jobId"] == "123" and e["fileSize"] in sizes)]


def restart_with_options(printer, options):
    """RESTART the session printer with these [polar_cloud] options."""
    printer.write_printer_cfg(options)
    printer.restart()


class FileServer:
    """Print files served as the emulator's file server cannot: without
    Content-Length (the body ends when the connection closes) or trickled,
    so a download is still running when Klippy dies."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                spec = server.files.get(name)
                if spec is None:
                    self.send_error(404)
                    return
                content, length, step, pause = spec
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if length:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                try:
                    for i in range(0, len(content), step):
                        if server.closing.is_set():
                            return
                        self.wfile.write(content[i:i + step])
                        self.wfile.flush()
                        if pause:
                            time.sleep(pause)
                except OSError:
                    pass    # the printer went away mid-file

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % (self.httpd.server_port,)
        threading.Thread(target=self.httpd.serve_forever, daemon=True,
                         name="faults-file-server").start()

    def serve(self, name, content, content_length=True, step=65536,
              pause=0.):
        self.files[name] = (content, content_length, step, pause)
        return "%s/files/%s" % (self.url, name)

    def close(self):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def files():
    server = FileServer()
    yield server
    server.close()


def cloud_print(cloud, serial, job_id, url, name="fault"):
    mark = cloud.mark()
    cloud.emit("print", {"serialNumber": serial, "jobId": job_id,
                         "jobName": name, "gcodeFile": url}, serial=serial)
    return mark


def wait_job(cloud, job_id, mark, timeout=60.):
    return cloud.wait_for("job", lambda d: d["jobId"] == job_id, start=mark,
                          timeout=timeout)


def wait_idle(printer, cloud, timeout=30.):
    """Status 0 again (the end sequence of the last cloud job is over)."""
    mark = cloud.mark()
    cloud.wait_for("status", lambda d: d["status"] == 0, start=mark,
                   timeout=timeout)


# --- storage --------------------------------------------------------------

UNREADABLE_STATES = {
    "garbage": b"\x00\xff\xfe not json at all \x80",
    "truncated": b'{"serial": "KL000123", "mac": "02:00:00:00:',
    "list": b'["KL000123", {"serial": "KL000123"}]',
    "empty": b"",
    "serial-not-text": b'{"serial": 123, "mac": "02:00:00:00:00:01"}',
}


def test_unreadable_state_is_kept_aside_and_said(online, printer, cloud):
    """For each kind of damage: Klippy ready; state.json kept as
    .corrupt-<time>; the printer object, the status endpoint and
    POLAR_STATUS say the registration was lost and where the file is;
    nothing sent with the old serial.  Registering again keeps the key (no
    new key paired with the old serial)."""
    key = read(key_path(printer))
    for run in range(REPEATS):
        for kind in sorted(UNREADABLE_STATES):
            content = UNREADABLE_STATES[kind]
            before = corrupt_files(printer)
            printer.kill_klippy()
            write(state_path(printer), content)
            mark = cloud.mark()
            printer.start_klippy()
            st = printer.wait_polar(lambda s: s["state"] != "starting")
            assert st["state"] == "unregistered" and not st["registered"]
            new = corrupt_files(printer) - before
            assert len(new) == 1, (kind, new)
            aside = os.path.join(printer.state_dir, new.pop())
            assert read(aside) == content
            for shown in (st["last_error"],
                          endpoint_status(printer)["last_error"],
                          polar_status_lines(printer)):
                assert "registration was lost" in shown and aside in shown, \
                    (kind, shown)
            assert not records_since(cloud, "hello", mark)
            assert not records_since(cloud, "register", mark)
            assert read(key_path(printer)) == key
            figure("state.json " + kind, run=run, ok=True)
    # the owner registers again: the kept key signs the hello
    mark = cloud.mark()
    go_online(printer, cloud)
    wait_verified_hello(cloud, mark)
    assert read(key_path(printer)) == key
    assert read(aside) == content    # never overwritten by a save
    assert printer.polar_status()["last_error"] is None


def test_truncated_key_file_is_not_replaced(online, printer, cloud):
    """A truncated key with a serial: no hello signed with a new key, the
    file left as it is, the owner told which file is unreadable."""
    serial = online
    path = key_path(printer)
    key = read(path)
    printer.kill_klippy()
    write(path, key[:len(key) // 2])
    mark = cloud.mark()
    try:
        printer.start_klippy()
        st = printer.wait_polar(lambda s: s["last_error"], timeout=30)
        assert st["registered"] and st["serial"] == serial
        assert not st["connected"]
        for shown in (st["last_error"],
                      endpoint_status(printer)["last_error"],
                      polar_status_lines(printer)):
            assert path in shown and "unreadable" in shown \
                and "register again" in shown, shown
        assert read(path) == key[:len(key) // 2]
        assert not [r for r in records_since(cloud, "hello", mark)
                    if r.verified]
        assert not records_since(cloud, "register", mark)
        figure("key file truncated", ok=True)
    finally:
        printer.kill_klippy()
        write(path, key)
        mark = cloud.mark()
        printer.start_klippy()
    wait_online(printer, cloud, serial, mark)


class ReadOnly:
    """A folder made read-only with a bind mount (root ignores modes)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        subprocess.run(["mount", "--bind", self.path, self.path], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", self.path],
                           check=True)
        except subprocess.CalledProcessError:
            subprocess.run(["umount", self.path])
            raise
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", self.path], check=True)


@needs_root
def test_read_only_state_dir(online, printer, cloud):
    """Registered, state dir read-only: Klippy starts, online, a job event
    still reaches the cloud once, the status says why nothing is saved;
    unregistered: a registration is refused before the cloud pairs a key,
    nothing half-written."""
    serial = online
    files_before = sorted(os.listdir(printer.state_dir))
    with ReadOnly(printer.state_dir):
        mark = cloud.mark()
        printer.kill_klippy()
        printer.start_klippy()
        wait_online(printer, cloud, serial, mark)
        mark = cloud.mark()
        local_print(printer, "ro_local.gcode")
        wait_job(cloud, "123", mark)
        st = printer.wait_polar(lambda s: s["last_error"])
        assert "cannot write" in st["last_error"] and \
            "state.json" in st["last_error"], st
        printer.klippy.gcode("POLAR_UNREGISTER FORCE=1")
        printer.wait_polar(lambda s: not s["registered"])
        mark = cloud.mark()
        status, body = printer.http("POST", "/server/polar/register",
                                    {"email": "owner@example.com",
                                     "pin": "1234"}, timeout=60)
        assert status != 200, body
        assert printer.state_dir in json.dumps(body), body
        assert not records_since(cloud, "register", mark)
        time.sleep(QUIET)
        assert len(job_events(cloud, mark)) == 0
    assert sorted(os.listdir(printer.state_dir)) == files_before
    # the serial never left state.json (a restart brings it back)
    assert json.loads(read(state_path(printer)))["serial"] == serial
    figure("state dir read-only", ok=True)


class Tmpfs:
    def __init__(self, path, size="2m"):
        self.path, self.size = path, size

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + self.size,
                        "tmpfs", self.path], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", self.path], check=True)


@pytest.fixture
def no_reserve(online, printer, cloud):
    """The session printer online with min_free_space: 0, so a download
    really fills the disk (the default 100 MiB reserve refuses it first)."""
    mark = cloud.mark()
    restart_with_options(printer, SESSION_POLAR_OPTIONS
                         + "\nmin_free_space: 0")
    try:
        wait_online(printer, cloud, online, mark)
        yield printer
    finally:
        restart_with_options(printer, SESSION_POLAR_OPTIONS)


DISK_FULL_CASES = [("default", True), ("none", False)] + (
    [("default", False), ("none", True)] if FULL else [])


@needs_root
@pytest.mark.parametrize("reserve,length", DISK_FULL_CASES, ids=[
    "reserve-%s-%s" % (r, "content-length" if l else "no-content-length")
    for r, l in DISK_FULL_CASES])
def test_disk_full_during_download(request, online, printer, cloud, files,
                                   reserve, length):
    """A 2 MB tmpfs as gcodes/polar_cloud, mostly full: the job is refused
    (canceled once, status 12), no SDCARD_PRINT_FILE, nothing left."""
    if reserve == "none":
        request.getfixturevalue("no_reserve")
    serial = online
    folder = os.path.join(printer.gcodes, "polar_cloud")
    job_id = "KL9-disk-%s-%s" % (reserve, "cl" if length else "nocl")
    content = (gcode_file(moves=40) * 1000)[:900 * 1024]
    assert len(content) == 900 * 1024   # more than the 650 kB left
    url = files.serve(job_id + ".gcode", content, content_length=length)
    with Tmpfs(folder):
        write(os.path.join(folder, ".filler"), b"\0" * (1400 * 1024))
        start = len(printer.klippy.output)
        mark = cloud_print(cloud, serial, job_id, url, name="diskfull")
        job = wait_job(cloud, job_id, mark)
        assert job.data["state"] == "canceled"
        line = printer.klippy.wait_output(
            lambda l: job_id in l and "failed" in l, start=start)
        assert "disk" in line, line
        time.sleep(1.)
        assert sorted(os.listdir(folder)) == [".filler"]
        assert printer.print_state() in ("standby", "complete",
                                         "cancelled")
        assert printer.klippy.query(virtual_sdcard=["file_path"])[
            "virtual_sdcard"]["file_path"] is None
    codes = [r.data["status"] for r in records_since(cloud, "status", mark)]
    assert 12 in codes
    assert len(job_events(cloud, mark, job_id)) == 1
    figure("disk full, reserve %s, %s" % (
        reserve, "Content-Length" if length else "no Content-Length"),
        ok=True, message=line.split("failed: ", 1)[-1])


# --- crashes and restarts ----------------------------------------------

def crash(printer, how):
    if how == "SIGKILL":
        printer.kill_klippy()
        printer.start_klippy()
        return
    printer.restart(how)
    assert endpoint_status(printer)["serial"]    # Moonraker reaches Klippy


def start_download(printer, cloud, files, serial, job_id):
    """A cloud print whose file trickles in (about 40 s): returns mark."""
    content = gcode_file(moves=200)
    url = files.serve(job_id + ".gcode", content,
                      step=len(content) // 100, pause=0.4)
    mark = cloud_print(cloud, serial, job_id, url, name="trickle")
    cloud.wait_for("status", lambda d: d["status"] == 2
                   and d["jobId"] == job_id, start=mark, timeout=20)
    # status 2 goes out as the worker starts; the crash must find it
    # fetching (a loaded machine takes a moment to start it)
    wait_until(lambda: any(n.startswith(job_id) for n in files.requests),
               20, "the download's first request")
    return mark


CRASH_CASES = [(how, when) for how in ("SIGKILL", "RESTART",
                                       "FIRMWARE_RESTART")
               for when in ("idle", "downloading", "printing")]
DEFAULT_CRASH_CASES = [("SIGKILL", "printing"), ("SIGKILL", "downloading"),
                       ("RESTART", "downloading"),
                       ("FIRMWARE_RESTART", "idle")]


@pytest.mark.parametrize("how,when", CRASH_CASES if FULL
                         else DEFAULT_CRASH_CASES,
                         ids=["%s-%s" % c for c in (
                             CRASH_CASES if FULL else DEFAULT_CRASH_CASES)])
def test_crash_or_restart(online, printer, cloud, files, how, when):
    """Back online; a job cut short is reported `canceled` exactly once
    and never printed again; an idle restart sends no job event."""
    serial = online
    for run in range(REPEATS):
        job_id = "KL9-%s-%s-%d" % (how, when, run)
        name = "crash_%s_%s_%d" % (how.lower(), when, run)
        mark = cloud.mark()
        if when == "printing":
            start_long_print(printer, cloud, serial, job_id, name)
        elif when == "downloading":
            start_download(printer, cloud, files, serial, job_id)
        crashed = cloud.mark()
        crash(printer, how)
        online_s = wait_online(printer, cloud, serial, crashed)
        if when != "idle":
            job = wait_job(cloud, job_id, mark)
            assert job.data["state"] == "canceled"
        time.sleep(QUIET)
        # a connection that fails within CONFIRM_AFTER of an earlier job's
        # event sends that again (at least once, see jobs.py): counted
        earlier = {r.data.get("jobId") for r in cloud.events[:mark]
                   if r.event == "job"} - {job_id}
        events = [e for e in job_events(cloud, mark)
                  if e["jobId"] not in earlier]
        resent = len(job_events(cloud, mark)) - len(events)
        assert [(e["jobId"], e["state"]) for e in events] == (
            [] if when == "idle" else [(job_id, "canceled")])
        assert printer.print_state() not in ("printing", "paused")
        requests = [n for n, _h in cloud.file_requests
                    if n.startswith(name)] + [
            n for n in files.requests if n.startswith(job_id)]
        assert len(requests) == (0 if when == "idle" else 1)
        if when == "downloading":
            assert not [f for f in cloud_files(printer)
                        + cloud_files(printer, hidden=True) if job_id in f]
        assert len(cloud.authenticated_sids(serial)) == 1
        figure("%s while %s" % (how, when), run=run, ok=True,
               online_s=round(online_s, 2), job_events=len(events),
               resent_earlier=resent)
        if when != "idle":   # the end sequence is over before the next run
            cloud.wait_for("status", lambda d: d["status"] == 0,
                           start=crashed, timeout=30)


# --- job events across outages ------------------------------------------

def test_job_events_across_an_outage(online, printer, cloud):
    """A cloud print and two local prints end while the cloud is down:
    after reconnecting each job event arrives once, in order."""
    serial = online
    job_id = "KL9-outage"
    url = cloud.serve_file("outage.gcode", gcode_file(moves=100))
    mark = cloud_print(cloud, serial, job_id, url, name="outage")
    printer.wait_print_state(["printing"], timeout=30)
    cloud.stop()
    try:
        printer.wait_print_state(["complete"], timeout=60)
        # the next print starts at once, within one sample interval
        sizes = (local_print(printer, "outage_local1.gcode", moves=20),
                 local_print(printer, "outage_local2.gcode", moves=300,
                             cancel=True))
        time.sleep(1.5)      # the last end is sampled
        assert not job_events(cloud, mark)
    finally:
        cloud.start()
    back = cloud.mark()
    online_s = wait_online(printer, cloud, serial, back)
    cloud.wait_for("job", lambda d: d["state"] == "canceled", start=back,
                   timeout=30)
    time.sleep(QUIET)
    events = job_events(cloud, mark)
    assert ours(events, job_id, sizes) == [
        (job_id, "completed"), ("123", "completed"), ("123", "canceled")], \
        (sizes, [(e["jobId"], e["fileSize"], e["bytesRead"]) for e in events])
    figure("job events across an outage", ok=True,
           online_s=round(online_s, 2), job_events=3)


class LinkProxy:
    """A TCP proxy in front of the emulator whose link can go silently
    dead: while dead, bytes both ways are dropped and nothing is closed,
    refused or reset, as when a home router loses its uplink."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.dead = threading.Event()
        self.lock = threading.Lock()
        self.pairs = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = "http://127.0.0.1:%d" % (self.listener.getsockname()[1],)
        threading.Thread(target=self._accept, daemon=True,
                         name="faults-proxy").start()

    def _accept(self):
        while True:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)   # a quiet server is no dead link
            with self.lock:
                self.pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst),
                                 daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self.dead.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def heal(self):
        """The link works again; the connections that were open while it
        was dead are gone (their TCP or NAT state timed out)."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self.dead.clear()

    def close(self):
        self.listener.close()
        self.heal()


def test_job_event_sent_into_a_silently_dead_link(online, printer, cloud,
                                                  proxy):
    """A local print ends while the link drops every packet: the job event
    written into the dead socket is sent again on the next connection, so
    the cloud gets it once."""
    serial = online
    mark = cloud.mark()
    proxy.dead.set()
    try:
        size = local_print(printer, "dead_link.gcode", moves=37)
        time.sleep(1.)       # the event is written into the dead link
        assert not job_events(cloud, mark)
    finally:
        back = cloud.mark()
        proxy.heal()
    online_s = wait_online(printer, cloud, serial, back)
    cloud.wait_for("job", lambda d: d["fileSize"] == size, start=mark,
                   timeout=20)
    time.sleep(QUIET)
    assert ours(job_events(cloud, mark), sizes=(size,)) == [
        ("123", "completed")]
    figure("job event into a silently dead link", ok=True,
           online_s=round(online_s, 2), job_events=1)
