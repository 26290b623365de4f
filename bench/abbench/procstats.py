"""CPU time and memory of a process and, separately, its descendants (/proc)."""
import os
import threading

TICK = float(os.sysconf("SC_CLK_TCK"))


def _stat(pid):
    """(ppid, own cpu s, reaped children's cpu s) or None if it is gone."""
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state) of proc(5)
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime) / TICK, (cutime + cstime) / TICK


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % (pid,)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                parents.setdefault(st[0], []).append(int(name))
    out, todo = [], list(parents.get(pid, ()))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(parents.get(child, ()))
    return out


def cpu(pid):
    """(process cpu s, descendants cpu s): descendants are the reaped ones
    plus the live ones' own time, so a delta over a window counts children
    that started or ended inside it."""
    st = _stat(pid)
    if st is None:
        return 0., 0.
    kids = st[2]
    for child in descendants(pid):
        cst = _stat(child)
        if cst is not None:
            kids += cst[1]
    return st[1], kids


class Sampler:
    """Samples RSS of a process and of its descendants while running."""

    def __init__(self, pid, interval=.5):
        self.pid = pid
        self.interval = interval
        self.rss_max = self.kids_rss_max = 0
        self.kids_seen = 0
        self._stop = threading.Event()
        self._seen = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.cpu0 = cpu(self.pid)
        self._thread.start()
        return self

    def _run(self):
        while True:
            self.rss_max = max(self.rss_max, rss_kb(self.pid))
            kids = descendants(self.pid)
            self._seen.update(kids)
            self.kids_rss_max = max(self.kids_rss_max,
                                    sum(rss_kb(k) for k in kids))
            if self._stop.wait(self.interval):
                return

    def stop(self, seconds):
        self._stop.set()
        self._thread.join()
        own, kids = cpu(self.pid)
        return {"cpu_pct": 100. * (own - self.cpu0[0]) / seconds,
                "children_cpu_pct": 100. * (kids - self.cpu0[1]) / seconds,
                "rss_mib": rss_kb(self.pid) / 1024.,
                "rss_max_mib": self.rss_max / 1024.,
                "children_rss_max_mib": self.kids_rss_max / 1024.,
                "children_seen": len(self._seen)}
