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
        return summarise(self.path, self.top, self.rate, self.seconds)


# leaf frames that are waiting, not working (py-spy drops most idle
# samples itself; a reactor polling every millisecond looks busy to it)
IDLE = {"_dispatch_loop", "poll", "select", "wait", "sleep", "acquire",
        "recv", "_recv", "recv_into", "readinto", "read", "readline",
        "accept"}


def summarise(path, top=12, rate=200, seconds=None):
    """{process/thread: {samples, busy, core_pct, self: [(frame, %)],
    inclusive: [...]}}; % are of that thread's busy samples."""
    threads = collections.defaultdict(lambda: {
        "samples": 0, "busy": 0, "self": collections.Counter(),
        "incl": collections.Counter()})
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            if len(frames) < 3 or not count.isdigit():
                continue
            t = threads["%s / %s" % (_process(frames[0]),
                                     frames[1].split(": ", 1)[-1])]
            n = int(count)
            t["samples"] += n
            stack = [_short(x) for x in frames[2:]]
            if stack[-1].split(" (")[0].rsplit(".", 1)[-1] in IDLE:
                continue
            t["busy"] += n
            t["self"][stack[-1]] += n
            for fr in set(stack):
                t["incl"][fr] += n
    out = {}
    for name, t in sorted(threads.items(), key=lambda kv: -kv[1]["busy"]):
        if not t["busy"]:
            continue
        out[name] = {
            "samples": t["samples"], "busy": t["busy"],
            "core_pct": round(100. * t["busy"] / (rate * seconds), 1)
            if seconds else None,
            "self": [(f, round(100. * c / t["busy"], 1))
                     for f, c in t["self"].most_common(top)],
            "inclusive": [(f, round(100. * c / t["busy"], 1))
                          for f, c in t["incl"].most_common(top + 8)
                          if c < t["busy"]][:top]}
    return out


def _process(frame):
    # 'process 123:"python -m klippy.klippy ..."' -> "klippy"
    cmd = frame.partition(":")[2].strip('"').split()
    if "-m" in cmd:
        name = cmd[cmd.index("-m") + 1]
        return "klippy" if name.startswith("klippy") else name
    return cmd[0] if cmd else frame


def _short(frame):
    # "func (path/to/file.py:123)" -> "func (file.py:123)"
    name, _, where = frame.partition(" (")
    return "%s (%s" % (name, os.path.basename(where)) if where else name
