"""Where Klippy's time goes: py-spy samples of a live Klippy, summarised.

py-spy (pip install py-spy) records collapsed stacks per thread, including
idle frames; the summary keeps the busy samples and lists, per thread, the
functions that were on top of the stack (self) and on the stack at all
(inclusive).  Profiled windows are extra and never counted in the tables:
sampling slows the process it watches.
"""
import collections
import os
import shutil
import subprocess
import sys

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")


def available():
    return os.path.exists(PY_SPY) or shutil.which("py-spy") is not None


class Profiler:
    def __init__(self, outdir, name, seconds, rate=200, top=12):
        self.path = os.path.join(outdir, "pyspy-%s.txt" % (name,))
        self.seconds = seconds
        self.rate = rate
        self.top = top

    def start(self, pid):
        exe = PY_SPY if os.path.exists(PY_SPY) else "py-spy"
        return subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration",
             str(int(self.seconds)), "--rate", str(self.rate), "--format",
             "raw", "--threads", "--subprocesses", "--nonblocking",
             "--output", self.path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, proc):
        try:
            _out, err = proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        if not os.path.exists(self.path):
            return {"error": err.decode(errors="replace")[-400:]}
        return summarise(self.path, self.top)


IDLE = ("poll (", "epoll", "select (", "wait (threading", "_wait_for_tstate",
        "sleep (", "acquire (", "recv (", "read (", "readline (", "_run_once",
        "_poll (", "wait (")


def summarise(path, top=12):
    """{thread: {samples, busy, self: [(frame, %)], inclusive: [...]}}."""
    threads = collections.defaultdict(lambda: {
        "samples": 0, "busy": 0, "self": collections.Counter(),
        "incl": collections.Counter()})
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            thread = _thread_name(frames[0])
            if frames[0].startswith("process "):
                thread = frames[0].split(":")[0] + " " + _thread_name(
                    frames[1]) if len(frames) > 1 else frames[0]
            t = threads[thread]
            t["samples"] += n
            total += n
            leaf = frames[-1]
            if any(leaf.startswith(w) for w in IDLE):
                continue
            t["busy"] += n
            t["self"][_short(leaf)] += n
            for fr in set(_short(x) for x in frames[1:]):
                t["incl"][fr] += n
    out = {}
    for name, t in sorted(threads.items(), key=lambda kv: -kv[1]["busy"]):
        if not t["busy"]:
            continue
        out[name] = {
            "samples": t["samples"], "busy": t["busy"],
            "busy_pct_of_all": round(100. * t["busy"] / max(total, 1), 1),
            "self": [(f, round(100. * c / t["busy"], 1))
                     for f, c in t["self"].most_common(top)],
            "inclusive": [(f, round(100. * c / t["busy"], 1))
                          for f, c in t["incl"].most_common(top)]}
    return out


def _thread_name(frame):
    return frame.split(" ", 1)[-1] if frame.startswith("thread") else frame


def _short(frame):
    # "func (path/to/file.py:123)" -> "func (file.py:123)"
    name, _, where = frame.partition(" (")
    return "%s (%s" % (name, os.path.basename(where)) if where else name
