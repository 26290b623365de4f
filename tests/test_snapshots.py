"""Snapshot scheduling and upload-URL bookkeeping (pure logic, no I/O)."""
import pytest

from polarcloud.backoff import Backoff
from polarcloud.camera import DEFAULT_MAX_SIZE, SnapshotCadence, UploadUrls
from polarcloud.connector.uploads import CAMERA_RETRY

OK = {"status": "SUCCESS", "type": "printing", "url": "https://s3/bucket",
      "fields": {"key": "a", "Policy": "p", "X-Amz-Signature": "s"},
      "expires": 60, "maxSize": 100000, "jobID": "J1"}


def test_url_is_asked_once_and_again_after_a_lost_answer():
    urls = UploadUrls()
    assert urls.want("printing", "J1", 0.)
    urls.requested("printing", "J1", 0.)
    assert not urls.want("printing", "J1", 5.)      # in flight
    assert urls.want("printing", "J2", 5.)          # but not for this job
    assert not urls.want("printing", "J1", 30.)
    assert urls.want("printing", "J1", 31.)         # lost answer: ask again


def test_stored_url_keeps_field_order_and_expires_with_margin():
    urls = UploadUrls()
    urls.requested("printing", "J1", 0.)
    assert urls.store(OK, 0.)
    entry = urls.get("printing", "J1", 10.)
    assert entry["url"] == "https://s3/bucket"
    assert entry["fields"] == [["key", "a"], ["Policy", "p"],
                               ["X-Amz-Signature", "s"]]
    assert entry["max_size"] == 100000
    assert not urls.want("printing", "J1", 10.)
    assert urls.get("printing", "J1", 29.9) is not None
    assert urls.get("printing", "J1", 30.) is None  # 60 s - 30 s margin
    assert urls.want("printing", "J1", 30.)


def test_printing_url_is_bound_to_its_job_idle_is_not():
    urls = UploadUrls()
    assert urls.store(OK, 0.)
    assert urls.get("printing", "J2", 1.) is None
    assert urls.want("printing", "J2", 1.)
    assert urls.store(dict(OK, type="idle", jobID="0"), 0.)
    assert urls.get("idle", "123", 1.) is not None


def test_job_id_spelling_and_type():
    urls = UploadUrls()
    no_id = {k: v for k, v in OK.items() if k != "jobID"}
    assert urls.store(dict(no_id, jobId=42), 0.)       # lower-case d, int
    assert urls.get("printing", "42", 1.) is not None
    urls.requested("timelapse", "J7", 0.)
    assert urls.store(dict(no_id, type="timelapse"), 0.)  # no id at all:
    assert urls.get("timelapse", "J7", 1.) is not None   # the one asked for
    assert urls.get("timelapse", "J8", 1.) is None


def test_asking_again_drops_the_old_url():
    urls = UploadUrls()
    assert urls.store(OK, 0.)
    urls.requested("printing", "J1", 5.)
    assert urls.get("printing", "J1", 6.) is None   # never a stale policy


@pytest.mark.parametrize("bad", [
    "SUCCESS", None, dict(OK, status="FAILED"), dict(OK, type="other"),
    {k: v for k, v in OK.items() if k != "url"}, dict(OK, url="ftp://x"),
    dict(OK, url=5), dict(OK, fields=[["key", "a"]]),
    dict(OK, fields={"key": {"nested": 1}}), dict(OK, expires=0),
    dict(OK, expires=-5), dict(OK, expires="soon"), dict(OK, expires=True),
    {k: v for k, v in OK.items() if k != "expires"},
])
def test_invalid_or_failed_answers_are_refused(bad):
    urls = UploadUrls()
    assert urls.store(bad, 0.) is False
    assert urls.get("printing", "J1", 1.) is None


def test_refused_answer_is_asked_again_only_after_the_timeout():
    urls = UploadUrls()
    urls.requested("idle", "0", 0.)
    assert not urls.store({"status": "FAILED", "type": "idle",
                           "message": "no"}, 1.)
    assert not urls.want("idle", "0", 2.)           # no getUrl storm
    assert urls.want("idle", "0", 31.)


@pytest.mark.parametrize("max_size,want", [
    (50000, 50000), (None, DEFAULT_MAX_SIZE), (0, DEFAULT_MAX_SIZE),
    ("big", DEFAULT_MAX_SIZE), (True, DEFAULT_MAX_SIZE),
    (1.5e5, DEFAULT_MAX_SIZE)])
def test_max_size_defaults_to_150000(max_size, want):
    urls = UploadUrls()
    assert urls.store(dict(OK, maxSize=max_size), 0.)
    assert urls.get("printing", "J1", 1.)["max_size"] == want


def test_clear_forgets_urls_and_requests():
    urls = UploadUrls()
    assert urls.store(OK, 0.)
    urls.requested("idle", "0", 0.)
    urls.clear()
    assert urls.get("printing", "J1", 1.) is None
    assert urls.want("idle", "0", 1.)


def test_failing_camera_is_retried_from_30_s_up_to_10_min():
    retry = Backoff(*CAMERA_RETRY, jitter=False)
    assert [retry.next_delay() for _ in range(7)] == [
        30., 60., 120., 240., 480., 600., 600.]
    retry.reset()                                    # camera works again
    assert retry.next_delay() == 30.


def test_snapshot_cadence():
    c = SnapshotCadence(idle_interval=300.)
    assert c.due(0., False) and c.due(0., True)      # first one at once
    c.taken(0.)
    assert not c.due(9.9, True) and c.due(10., True)
    assert not c.due(299., False) and c.due(300., False)
    c = SnapshotCadence(idle_interval=60.)
    c.taken(0.)
    assert not c.due(59., False) and c.due(60., False)
