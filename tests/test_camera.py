"""Camera helpers and the snapshot worker's image work (no network)."""
import io

import pytest
from PIL import Image

from polarcloud import camera
from polarcloud.child import WorkerError
from polarcloud.snapshots import CameraHealth, SnapshotCadence, UploadUrls
from imagetools import colour_at, dominant, pattern_jpeg


@pytest.mark.parametrize("h,v,rot,mask", [
    (False, False, 0, 0), (True, False, 0, 1), (False, True, 0, 2),
    (True, True, 0, 3), (False, False, 90, 4), (False, False, 180, 3),
    (False, False, 270, 7), (True, False, 90, 5), (True, False, 180, 2),
])
def test_transform_bitmask(h, v, rot, mask):
    assert camera.transform_bitmask(h, v, rot) == mask


@pytest.mark.parametrize("url,want", [
    ("/webcam/?action=stream", "http://10.0.0.5/webcam/?action=stream"),
    ("webcam/?action=stream", "http://10.0.0.5/webcam/?action=stream"),
    ("http://localhost:8080/?action=stream",
     "http://10.0.0.5:8080/?action=stream"),
    ("http://127.0.0.1/x", "http://10.0.0.5/x"),
    ("http://cam.lan:8080/s", "http://cam.lan:8080/s"),
    ("//cam.lan/s", "http://cam.lan/s"),
    ("", None), (None, None),
])
def test_absolute_url(url, want):
    assert camera.absolute_url(url, "10.0.0.5") == want


def test_big_noisy_image_fits_and_rotates_clockwise():
    out = camera.fit_image(pattern_jpeg(), False, False, 90, 150000)
    assert len(out) <= 150000
    img = Image.open(io.BytesIO(out))
    assert img.width < img.height          # landscape became portrait
    # rotated clockwise: the green top band is now on the right
    assert dominant(colour_at(out, 0.95, 0.5)) == "g"
    assert dominant(colour_at(out, 0.3, 0.2)) == "r"


def test_small_untransformed_image_is_sent_as_is():
    small = pattern_jpeg(320, 240, noise=False)
    assert camera.fit_image(small, False, False, 0, 150000) is small


def test_without_pillow_only_fitting_untransformed_images_go():
    small = pattern_jpeg(320, 240, noise=False)
    assert camera.fit_image(small, False, False, 0, 150000,
                            pillow=False) is small
    with pytest.raises(WorkerError) as e:
        camera.fit_image(small, True, False, 0, 150000, pillow=False)
    assert e.value.kind == "image" and "Pillow" in str(e.value)


def test_upload_urls_expiry_job_binding_and_bad_answers():
    urls = UploadUrls()
    ok = {"status": "SUCCESS", "type": "printing", "url": "https://s3/x",
          "fields": {"key": "a", "Policy": "p"}, "expires": 60,
          "maxSize": 100000, "jobID": "J1"}
    assert urls.want("printing", "J1", 0.)
    urls.requested("printing", "J1", 0.)
    assert not urls.want("printing", "J1", 5.)     # in flight
    assert urls.want("printing", "J1", 31.)        # lost answer: ask again
    assert urls.store(ok, 0.)
    entry = urls.get("printing", "J1", 10.)
    assert entry["fields"] == [["key", "a"], ["Policy", "p"]]
    assert urls.get("printing", "J1", 30.) is None  # 30 s margin
    assert urls.get("printing", "J2", 10.) is None  # other job
    urls.requested("printing", "J1", 11.)
    assert urls.get("printing", "J1", 12.) is None  # dropped when re-asked
    for bad in ("x", dict(ok, status="FAILED"), dict(ok, url="ftp://x"),
                dict(ok, fields=[1]), dict(ok, expires="soon"),
                dict(ok, type="other")):
        assert not urls.store(bad, 0.)


def test_camera_health_logs_once_and_backs_off():
    h = CameraHealth()
    assert h.failed(0., "down") is True
    assert not h.may_try(10.) and h.may_try(30.)
    assert h.failed(30., "down") is False
    assert not h.may_try(80.) and h.may_try(90.)
    for i in range(10):
        h.failed(1000. * i, "down")
    assert h.next_try - 9000. == 600.
    assert h.ok(9999.) is True and h.may_try(9999.)


def test_snapshot_cadence():
    c = SnapshotCadence(printing_interval=10., idle_interval=300.)
    assert c.due(0., False)
    c.taken(0.)
    assert not c.due(299., False) and c.due(300., False)
    assert c.due(10., True)
