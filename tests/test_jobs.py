"""Job tracking and status reporting without a socket (pure logic)."""
from polarcloud import protocol as P
from polarcloud.connector.reporter import StatusReporter
from polarcloud.jobs import JobTracker
from polarcloud.settings import Settings

from test_protocol import snap

FILE = "polar_cloud/fast_cloud_J1.gcode"


def sample(state="standby", loads=0, **kw):
    s = {"klippy": "ready", "state": state, "filename": FILE,
         "print_duration": 1., "total_duration": 1., "filament_used": 5.,
         "file_position": 100, "file_size": 100, "file_loads": loads,
         "temps": {"tool0": (25., 0.)}}
    s.update(kw)
    return s


def drain(tracker):
    events = []
    while tracker.next_event() is not None:
        events.append(tracker.next_event())
        tracker.event_sent()
    return events


def test_cloud_print_done_within_a_second_is_completed():
    """SDCARD_PRINT_FILE: the sample right after it still says standby
    (with the new load); the next one already says complete."""
    t = JobTracker()
    t.update(sample(loads=3), 0.)
    t.begin_download("J1", "fast", 0., 0.)
    t.download_done(FILE, 1.)
    t.update(sample("standby", loads=4), 1.1)     # just after the start
    t.update(sample("complete", loads=4), 2.)
    t.update(sample("complete", loads=4), 40.)    # long after START_GRACE
    assert [(e["jobId"], e["state"]) for e in drain(t)] == [
        ("J1", "completed")]
    codes = []
    for _ in range(7):
        codes.append(t.status_code(sample("complete", loads=4)))
        t.status_sent()
    assert codes == [5, 5, 5, 7, 7, 7, 0]


def test_started_cloud_file_that_never_runs_fails_once():
    t = JobTracker()
    t.update(sample(loads=1), 0.)
    t.begin_download("J2", "x", 0., 0.)
    t.download_done(FILE, 1.)
    t.update(sample("standby", loads=2), 2.)
    t.update(sample("standby", loads=2), 40.)
    assert [(e["jobId"], e["state"]) for e in drain(t)] == [
        ("J2", "canceled")]


def test_a_reset_file_is_not_a_job():
    t = JobTracker()
    t.update(sample("complete", loads=1), 0.)
    t.update(sample("standby", loads=2), 1.)      # SDCARD_RESET_FILE
    t.update(sample("standby", loads=2), 2.)
    assert drain(t) == []


def test_events_survive_a_restart_until_acknowledged():
    t = JobTracker()
    t.update(sample(loads=0), 0.)
    for n in range(3):      # three local jobs end while nothing is sent
        t.update(sample("printing", loads=n + 1), 1. + n)
        t.update(sample("complete", loads=n + 1), 1.5 + n)
    saved = t.saved_state()
    assert len(saved["pending_job_events"]) == 3
    restored = JobTracker(saved)
    assert [e["state"] for e in drain(restored)] == ["completed"] * 3


def test_the_cloud_sees_one_start_time_per_job():
    # each sample's start (wall clock - total_duration) jitters by the
    # time between reading the two; the job keeps the first
    r = StatusReporter(Settings(status_interval=1.))
    r.on_sample(sample(loads=0), 0.)
    sent = []

    def emit(event, data):
        sent.append(data)
        return True
    for i, start in enumerate((1_700_000_000.9, 1_700_000_001.2,
                               1_700_000_000.1)):
        r.on_sample(sample("printing", loads=1, start_epoch=start), 1. + i)
        r.send("KL1", emit, 1. + i)
    assert [s["startTime"] for s in sent] == ["2023-11-14T22:13:20Z"] * 3
    r.on_sample(sample("printing", loads=2, filename="b.gcode",
                       start_epoch=1_700_000_100.), 5.)
    r.send("KL1", emit, 5.)
    assert sent[-1]["startTime"] == "2023-11-14T22:15:00Z"   # the next job


def reporter_with_events(n):
    r = StatusReporter(Settings(status_interval=1.))
    r.on_sample(sample(loads=0), 0.)
    for i in range(n):
        r.on_sample(sample("printing", loads=i + 1), 1. + i)
        r.on_sample(sample("complete", loads=i + 1), 1.5 + i)
    return r


def test_a_failed_send_loses_no_job_event():
    r = reporter_with_events(3)
    sent, fail_at = [], [1]

    def emit(event, data):
        if event == "job" and len(sent) == fail_at[0]:
            fail_at[0] = None      # the connection drops once, here
            return False
        sent.append((event, data))
        return True
    assert r.send("KL1", emit, 10.) is None          # dropped mid-queue
    assert r.send("KL1", emit, 11.)["status"] == P.IDLE  # next connection
    jobs = [d for e, d in sent if e == "job"]
    assert len(jobs) == 3 and all(j["serialNumber"] == "KL1" for j in jobs)
    assert r.jobs.next_event() is None


def test_send_next_print_once_at_the_first_complete():
    r = StatusReporter(Settings(status_interval=1., send_next_print=True))
    r.on_sample(sample(loads=0), 0.)
    r.jobs.begin_download("J9", "x", 0., 0.)
    r.jobs.download_done(FILE, 1.)
    r.on_sample(sample("printing", loads=1), 2.)
    r.on_sample(sample("complete", loads=1), 3.)
    events = []
    for i in range(8):
        r.force()
        r.send("KL1", lambda e, d: events.append((e, d)) or True, 4. + i)
    codes = [d["status"] for e, d in events if e == "status"]
    assert codes == [5, 5, 5, 7, 7, 7, 0, 0]
    assert [e for e, d in events].count("sendNextPrint") == 1


def run(tracker, states, t0=0.):
    for i, s in enumerate(states):
        tracker.update(s, t0 + i)


def codes_until_idle(tracker, s):
    out = []
    for _ in range(10):
        out.append(tracker.status_code(s))
        tracker.status_sent()
    return out


def test_local_job_completes_once():
    t = JobTracker()
    run(t, [snap(), snap(state="printing"), snap(state="printing"),
            snap(state="complete"), snap(state="complete")])
    events = drain(t)
    assert [(e["jobId"], e["state"]) for e in events] == [("123", "completed")]
    assert events[0]["printSeconds"] == 10 and events[0]["bytesRead"] == 500
    assert codes_until_idle(t, snap(state="complete"))[0] == P.IDLE


def test_cloud_job_sequence_and_one_event():
    t = JobTracker()
    t.update(snap(), 0.)
    t.begin_download("KL1-9", "part", 0., 0.)
    assert t.status_code(snap()) == P.PREPARING
    t.download_done("polar_cloud/part.gcode", 1.)
    run(t, [snap(), snap(state="printing", filename="polar_cloud/part.gcode"),
            snap(state="complete", filename="polar_cloud/part.gcode")], 2.)
    assert [e["state"] for e in drain(t)] == ["completed"]
    assert codes_until_idle(t, snap(state="complete")) == \
        [5, 5, 5, 7, 7, 7, 0, 0, 0, 0]


def test_fast_job_never_seen_printing():
    t = JobTracker()
    t.update(snap(file_loads=1), 0.)
    t.update(snap(state="complete", file_loads=2), 1.)
    assert [e["state"] for e in drain(t)] == ["completed"]


def test_cancel_macro_to_standby_and_shutdown():
    t = JobTracker()
    run(t, [snap(), snap(state="printing"), snap(state="standby")])
    assert [e["state"] for e in drain(t)] == ["canceled"]
    run(t, [snap(state="printing"), snap(klippy="shutdown", state=None)])
    assert [e["state"] for e in drain(t)] == ["canceled"]


def test_restored_job_after_restart_is_cancelled_once():
    t = JobTracker({"active_job": {"id": "KL1-5", "cloud": True,
                                   "filename": "polar_cloud/x.gcode"}})
    t.update(snap(klippy="startup", state=None), 0.)
    assert drain(t) == []
    t.update(snap(), 1.)
    t.update(snap(), 2.)
    events = drain(t)
    assert [(e["jobId"], e["state"]) for e in events] == [("KL1-5",
                                                           "canceled")]
    assert codes_until_idle(t, snap())[:4] == [6, 6, 6, 0]


def test_failed_download_reports_error_once_then_idle():
    t = JobTracker()
    t.begin_download("KL1-3", "x", 0., 0.)
    t.cloud_job_failed(1.)
    assert [(e["jobId"], e["state"]) for e in drain(t)] == [
        ("KL1-3", "canceled")]
    assert codes_until_idle(t, snap())[:2] == [P.ERROR, P.IDLE]


def test_no_new_input_builds_no_status(monkeypatch):
    """A storm that changes nothing costs no status work until the next
    heartbeat; a new sample is looked at at once."""
    from polarcloud.connector import reporter as R
    built = []
    real = R.build_status
    monkeypatch.setattr(R, "build_status",
                        lambda *a: built.append(1) or real(*a))
    r = StatusReporter(Settings(status_interval=10.))
    r.on_sample(sample(loads=0), 0.)
    sent = []
    emit = lambda e, d: sent.append(d) or True   # noqa: E731
    r.send("KL1", emit, 0.)
    for i in range(1000):
        r.send("KL1", emit, 1. + i * 0.01)
    assert len(built) == 2 and len(sent) == 1   # looked once more, then slept
    assert r.next_wakeup() == 60.               # the idle heartbeat
    r.on_sample(sample(loads=0, temps={"tool0": (25., 200.)}), 20.)
    assert r.send("KL1", emit, 20.)["targetTool0"] == 200.


def test_an_event_written_into_a_dead_link_is_sent_again():
    """No acknowledgement exists: an event stays queued until its
    connection outlived the library's dead-link detection; a connection
    that failed before that has it sent again on the next one."""
    from polarcloud.jobs import CONFIRM_AFTER
    r = reporter_with_events(2)
    sent = []

    def emit(event, data):
        sent.append((event, data))
        return True
    r.send("KL1", emit, 10.)
    assert [d["jobId"] for e, d in sent if e == "job"] == ["123", "123"]
    assert r.jobs.saved_state()["pending_job_events"] == []
    r.link_failed()                     # the link was silently dead
    r.new_connection()
    del sent[:]
    r.send("KL1", emit, 20.)
    assert len([e for e, _d in sent if e == "job"]) == 2    # once more
    del sent[:]
    r.send("KL1", emit, 20. + CONFIRM_AFTER)   # the link stayed up
    assert r.jobs.events == [] and not [e for e, _d in sent if e == "job"]
    r.link_failed()                     # a later drop resends nothing
    r.send("KL1", emit, 200.)
    assert not [e for e, _d in sent if e == "job"]


def test_a_planned_reconnect_does_not_resend():
    r = reporter_with_events(1)
    sent = []
    r.send("KL1", lambda e, d: sent.append(e) or True, 10.)
    r.new_connection()                  # e.g. after a camera change
    r.send("KL1", lambda e, d: sent.append(e) or True, 11.)
    assert sent.count("job") == 1


def test_stats_of_a_job_never_go_down():
    """The sample taken as the next file loads has virtual_sdcard's
    position and size already reset to 0."""
    t = JobTracker()
    t.update(sample(loads=0), 0.)
    t.update(sample("printing", loads=1), 1.)
    t.update(sample("complete", loads=1, file_position=0, file_size=0), 2.)
    event = drain(t)[0]
    assert event["state"] == "completed"
    assert event["bytesRead"] == 100 and event["fileSize"] == 100


def test_a_sent_event_is_not_saved_for_the_next_start_after_a_drop():
    """Klippy's RESTART drops the connection (a failed link) and then
    saves the job it ends: an event sent before must not come back."""
    r = reporter_with_events(1)
    r.send("KL1", lambda e, d: True, 10.)
    r.link_failed()
    r.on_sample(sample("printing", loads=5), 11.)
    r.on_sample(sample(klippy="shutdown", loads=5), 12.)
    pending = r.jobs.saved_state()["pending_job_events"]
    assert [e["state"] for e in pending] == ["canceled"]
    assert r.jobs.next_event()["state"] == "completed"   # resent if online
