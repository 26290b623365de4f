"""Load drivers: what the cloud (module windows) or, in "matched" mode, the
same Klippy-side work over the API socket (bare windows) does to a printer.

Module windows get the cloud events; bare windows get the G-code those
events end in (M105, SDCARD_PRINT_FILE, CANCEL_PRINT) through Klippy's API,
and for a cloud print the same bytes fetched by curl from the same server
into the same folder, so the ratio shows what the module adds beyond the
G-code and the download themselves.  With
bare_load="none" bare windows get nothing (the issue's first measurement).
"""
import itertools
import json
import math
import os
import socket
import subprocess
import threading
import time

BIG_NAME = "bench_100MB.gcode"
FETCHED_NAME = "bench_fetched.gcode"   # bare windows' copy of a cloud print
LONG_NAME = "bench_long.gcode"
_jobs = itertools.count(1)


def move_lines(seg=1., feed=3000, radius=40.):
    """A real print, endless: homing, then circle segments of `seg` mm with
    extrusion (at F3000 a 1 mm segment takes 20 ms in real time)."""
    yield "G28\nG90\nM83\nG1 X%.1f Y100 F%d\n" % (100 + radius, feed)
    step = seg / radius
    for i in itertools.count():
        a = i * step
        yield "G1 X%.2f Y%.2f E0.03\n" % (100 + radius * math.cos(a),
                                          100 + radius * math.sin(a))


def write_gcode(path, size=None, seconds=None):
    """A file of exactly `size` bytes, or of `seconds` of real-time moves."""
    if os.path.exists(path):
        return path
    written = 0
    with open(path + ".tmp", "w") as f:
        for i, line in enumerate(move_lines()):
            if (size and written + len(line) > size - 1) or \
                    (seconds and i * .02 > seconds):
                break
            f.write(line)
            written += len(line)
        if size:
            f.write(";" * (size - written - 1) + "\n")
    os.rename(path + ".tmp", path)
    return path


def big_gcode(root, mb):
    """The download cycles' file of `mb` MiB, made once in the bench cache
    (another size is another cache file; the name served stays BIG_NAME)."""
    cache = os.path.join(root, ".venv", "bench-cache")
    os.makedirs(cache, exist_ok=True)
    name = ("" if mb == 100 else "%d-" % (mb,)) + BIG_NAME
    return write_gcode(os.path.join(cache, name), size=mb * 1024 * 1024)


def curl_fsync(url, path, keep=False):
    """Seconds to fetch url with curl and fsync the file."""
    t0 = time.monotonic()
    subprocess.run(["curl", "-sSf", "-o", path, url], check=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    took = time.monotonic() - t0
    if not keep:
        os.unlink(path)
    return took


class Driver(threading.Thread):
    """Runs step() until stopped; counts what it did."""

    def __init__(self, printer, cloud, matched):
        super().__init__(daemon=True)
        self.p = printer
        self.cloud = cloud
        self.matched = matched
        self.stopping = threading.Event()
        self.done = 0
        self.errors = []
        self.stats = {}

    @property
    def acts(self):
        """False when this window should get no load at all."""
        return self.p.has_module or self.matched

    def run(self):
        if not self.acts:
            return
        try:
            self.loop()
        except Exception as e:       # reported with the window, never hidden
            self.errors.append("%s: %s" % (type(self).__name__, e))

    def stop(self, timeout=60.):
        self.stopping.set()
        self.join(timeout)
        return self.result()

    def result(self):
        out = dict(self.stats, done=self.done)
        if self.errors:
            out["errors"] = self.errors
        return out


class GcodeSender:
    """Sends gcode/script requests on a connection of its own without
    waiting for the answers, as the cloud sends events: Klippy queues both
    the same way when its G-code mutex is busy (e.g. while printing)."""

    def __init__(self, uds):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(uds)
        self.ids = itertools.count(1)
        self.answered = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.answered += data.count(b"\x03")

    def send(self, script):
        msg = {"id": next(self.ids), "method": "gcode/script",
               "params": {"script": script}}
        self.sock.sendall(json.dumps(msg).encode() + b"\x03")

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class CommandStorm(Driver):
    """`command` events with one M105 each, `rate` a second."""

    def __init__(self, printer, cloud, matched, rate=100.):
        super().__init__(printer, cloud, matched)
        self.rate = rate
        self.stats["rate"] = rate

    def loop(self):
        period = 1. / self.rate
        nxt = time.monotonic()
        late = 0
        sender = None if self.p.has_module else GcodeSender(self.p.h.uds)
        try:
            self._loop(sender, period, nxt, late)
        finally:
            if sender is not None:
                self.stats["answered"] = sender.answered
                sender.close()

    def _loop(self, sender, period, nxt, late):
        while not self.stopping.is_set():
            if sender is None:
                self.cloud.emit("command", {"serialNumber": self.p.serial,
                                            "command": "M105"},
                                serial=self.p.serial)
            else:
                sender.send("M105")
            self.done += 1
            nxt += period
            left = nxt - time.monotonic()
            if left > 0:
                time.sleep(left)
            elif left < -period:      # fell behind: skip, don't burst
                late += 1
                nxt = time.monotonic()
        self.stats["behind"] = late


class DownloadCycles(Driver):
    """print -> download -> started -> hold -> cancel, one cycle every
    `period` s; bare windows fetch the same 100 MB file with curl + fsync
    into their SD folder and print it (bare_load="none": nothing)."""
    period = 6.
    hold = 1.

    def __init__(self, printer, cloud, matched, url, cancel_over_api=False):
        super().__init__(printer, cloud, matched)
        self.url = url
        self.cancel_over_api = cancel_over_api
        self.started = []

    def loop(self):
        nxt = time.monotonic()
        while not self.stopping.is_set():
            self.cycle()
            self.done += 1
            nxt += self.period
            left = nxt - time.monotonic()
            if left > 0 and self.stopping.wait(left):
                break
            nxt = max(nxt, time.monotonic())
        if self.started:
            self.stats["to_started_s"] = sorted(self.started)[
                len(self.started) // 2]

    def cycle(self):
        p = self.p
        since = p.events_next()
        t0 = time.monotonic()
        # wall-clock phase marks: place the probe's worst firings (`wall`)
        marks = self.stats.setdefault("marks", [])
        marks.append(("print", time.time()))
        if p.has_module:
            job = "BENCH-%d" % (next(_jobs),)
            mark = self.cloud.mark()
            self.cloud.emit("print", {"serialNumber": p.serial, "jobId": job,
                                      "jobName": "bench",
                                      "gcodeFile": self.url},
                            serial=p.serial)
        else:
            fetched = os.path.join(p.h.gcodes, FETCHED_NAME)
            curl_fsync(self.url, fetched, keep=True)
            p.gcode('SDCARD_PRINT_FILE FILENAME="%s"' % (FETCHED_NAME,))
        ev, since = p.wait_event(since, "state", ["printing"],
                                 timeout=120.)
        self.started.append(p.to_bench(ev[0]) - t0)
        marks.append(("started", time.time()))
        time.sleep(self.hold)
        marks.append(("cancel", time.time()))
        if p.has_module and not self.cancel_over_api:
            self.cloud.emit("cancel", {"serialNumber": p.serial},
                            serial=p.serial)
        else:
            p.gcode("CANCEL_PRINT")
        p.wait_event(since, "state", ["cancelled", "standby"],
                     timeout=60.)
        marks.append(("cancelled", time.time()))
        if p.has_module:        # the job is over for the module too
            self.cloud.wait_for("job", lambda d: d.get("jobId") == job,
                                start=mark, timeout=30.)
        marks.append(("job", time.time()))


def start_long_print(printer):
    """The real-time SD print of the "while printing" scenarios."""
    printer.gcode('SDCARD_PRINT_FILE FILENAME="%s"' % (LONG_NAME,))
    printer.h.wait_print_state(["printing"], timeout=30.)
