"""The bound on cloud commands, and the inbound event table (no socket)."""
from polarcloud.connector import command_queue as Q
from polarcloud.connector.command_queue import CommandQueue
from polarcloud.connector import connection as C
from polarcloud.connector.connection import CloudConnection
from polarcloud.connector.session import Session
from polarcloud.settings import Settings

from test_connection import RecordingHost


class Printer:
    def __init__(self):
        self.batches = []
        self.urgent = []
        self.lines = []

    def run(self, batch, urgent):
        self.batches.append(batch)
        self.urgent.append(urgent)


def queue():
    p = Printer()
    return p, CommandQueue(p.run, p.lines.append)


def test_one_batch_at_a_time():
    p, q = queue()
    q.add("command", {"n": 1}, 0.)
    q.add("command", {"n": 2}, 0.)
    q.add("temperature", {"n": 3}, 0.)
    assert p.batches == [[("command", {"n": 1})]]     # one in flight
    q.batch_done()
    assert p.batches[1] == [("command", {"n": 2}), ("temperature", {"n": 3})]
    q.batch_done()
    assert len(p.batches) == 2 and not q.in_flight


def test_a_storm_is_refused_past_the_burst_with_two_lines():
    p, q = queue()
    for i in range(1000):
        q.add("command", {"n": i}, 0.)
    accepted = sum(len(b) for b in p.batches) + len(q.queue)
    assert accepted == Q.BURST
    assert q.refused == 1000 - Q.BURST
    assert len(p.lines) == 1 and "refusing" in p.lines[0]
    while q.in_flight:
        q.batch_done()
    q.tick(Q.BURST / Q.RATE + 1.)       # the bucket refilled: burst over
    assert len(p.lines) == 2 and "refused %d" % (1000 - Q.BURST,) in p.lines[1]
    q.add("command", {"n": "after"}, 20.)
    assert p.batches[-1] == [("command", {"n": "after"})]


def test_pause_and_cancel_jump_the_queue_and_are_never_refused():
    p, q = queue()
    for i in range(1000):
        q.add("command", {"n": i}, 0.)
    q.add("pause", {}, 0.)
    q.add("cancel", {}, 0.)
    q.add("cancel", {}, 0.)         # a repeat still queued is merged
    assert q.refused == 1000 - Q.BURST
    # the pause passes the routine batch waiting for the printer's sample
    assert p.urgent == [False, True]
    assert p.batches[1][0] == ("pause", {})
    assert q.queue == [("cancel", {})]
    q.batch_done()                  # the routine batch
    q.batch_done()                  # the pause
    assert p.batches[2] == [("cancel", {})] and p.urgent[2]


def test_one_urgent_batch_passes_a_waiting_routine_one_and_no_more():
    p, q = queue()
    q.add("command", {"n": 1}, 0.)
    q.add("command", {"n": 2}, 0.)
    q.add("pause", {}, 0.)
    assert p.batches == [[("command", {"n": 1})],
                         [("pause", {}), ("command", {"n": 2})]]
    assert p.urgent == [False, True]
    q.add("resume", {}, 0.)         # waits: an urgent batch is in flight
    q.add("command", {"n": 3}, 0.)
    assert len(p.batches) == 2
    q.batch_done()
    q.batch_done()
    assert p.batches[2] == [("resume", {}), ("command", {"n": 3})]
    assert p.urgent[2]
    q.batch_done()
    q.add("command", {"n": 4}, 0.)
    assert p.batches[3] == [("command", {"n": 4})] and not p.urgent[3]


def test_rate_after_the_burst():
    p, q = queue()
    for i in range(Q.BURST):
        q.add("command", {}, 0.)
    q.add("command", {}, 0.)                 # refused
    q.add("command", {}, 1. / Q.RATE)        # a token came back
    assert q.refused == 1
    assert sum(len(b) for b in p.batches) + len(q.queue) == Q.BURST + 1


class FakeClient:
    def __init__(self):
        self.sent = []

    def emit(self, event, data):
        self.sent.append((event, data))

    def disconnect(self):
        pass


def connection(tmp_path):
    c = CloudConnection(RecordingHost(), Settings(
        url="http://127.0.0.1:1", state_dir=str(tmp_path)))
    c.state = {"serial": "KL1"}
    c.loaded = True
    c.session = Session(FakeClient(), c.generation, 0.)
    c.session.authenticated = True
    return c


def test_only_cloud_events_are_dispatched(tmp_path):
    c = connection(tmp_path)
    gen = c.generation
    for args in [("snapshot", {"serialNumber": "KL1"}),
                 ("socket_event", {"serialNumber": "KL1"}),
                 ("_on_welcome", {"challenge": "x"}), ("__init__", {}),
                 ("run_on_printer", {"serialNumber": "KL1"}),
                 ({"serialNumber": "KL1"},),          # an event named "*"
                 ("pause",), (["x"], {}), (None,), (),
                 ("pause", {"serialNumber": "KL1"}, "extra", "args")]:
        deliver(c, gen, args)
    assert c.errors.last is None
    assert c.host.commands == [("pause", {"serialNumber": "KL1"})]


def test_stale_and_unauthenticated_packets_are_ignored(tmp_path):
    c = connection(tmp_path)
    deliver(c, c.generation - 1, ("pause", {"serialNumber": "KL1"}))
    c.session.authenticated = False
    deliver(c, c.generation, ("pause", {"serialNumber": "KL1"}))
    deliver(c, c.generation, ("temperature", {"serialNumber": "KL9",
                                              "bed": 60}))
    assert c.host.commands == []


def test_a_flood_waits_bounded_and_the_excess_is_counted(tmp_path, caplog):
    c = connection(tmp_path)
    flood = ("command", {"serialNumber": "KL1", "command": "M105"})
    for i in range(C.MAX_WAITING_EVENTS + 7):
        c._receive(c.generation, flood)
    assert c.inbox.qsize() == C.MAX_WAITING_EVENTS
    run_inbox(c)
    line = ("Polar Cloud: 7 cloud messages dropped (more than %d were"
            " waiting)" % C.MAX_WAITING_EVENTS)
    assert line in c.host.console_lines
    for i in range(C.MAX_WAITING_EVENTS + 3):    # the flood goes on
        c._receive(c.generation, flood)
    run_inbox(c)
    dropped = [m for m in c.host.console_lines if "dropped" in m]
    assert dropped == [line]          # one line per interval, however long
    c.next_drop_line = 0.             # the interval is over
    deliver(c, c.generation, flood)
    assert c.host.console_lines[-1].startswith("Polar Cloud: 3 cloud messages")
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) \
        == 2


def deliver(c, gen, args):
    """One event as the socket's reader hands it over, then handled."""
    c._receive(gen, args)
    run_inbox(c)


def run_inbox(c):
    while not c.inbox.empty():
        func, args = c.inbox.get_nowait()
        func(*args)
