"""Camera end to end: a webcam configured in real Moonraker, snapshots and a
timelapse uploaded to the emulator's S3-style endpoint."""
import io
import os
import time

import pytest
from PIL import Image

from conftest import EMAIL, PIN, gcode_file
from harness import PrinterHarness
from imagetools import colour_at, dominant, pattern_jpeg

SNAPSHOT = "cam_snapshot.jpg"


@pytest.fixture(scope="module")
def cam(cloud, installed, printer, tmp_path_factory):
    # printers on one host share a serial: keep the session printer away
    printer.klippy.gcode("POLAR_UNREGISTER FORCE=1")
    cloud.start()
    snap_url = cloud.serve_file(SNAPSHOT, pattern_jpeg())
    timelapse_dir = str(tmp_path_factory.mktemp("timelapse"))
    webcam = ("[webcam cam1]\nstream_url: /webcam/?action=stream\n"
              "snapshot_url: %s\nflip_horizontal: True\n\n"
              "[polar_test_timelapse]\noutput_path: %s\n"
              % (snap_url, timelapse_dir))
    with PrinterHarness(cloud.url, moonraker_extra=webcam, polar_extra=(
            "status_interval: 1\nidle_snapshot_interval: 5")) as h:
        h.timelapse_dir = timelapse_dir
        h.mark0 = cloud.mark()
        status, body = h.http("POST", "/server/polar/register",
                              {"email": EMAIL, "pin": PIN}, timeout=120)
        assert status == 200, body
        h.serial = body["result"]["serial"]
        h.wait_polar(lambda s: s["connected"] and s["camera_url"],
                     what="online with camera")
        yield h
        h.klippy.gcode("POLAR_UNREGISTER FORCE=1")


def snapshot_uploads(cloud, after_t=0.):
    return [u for u in cloud.uploads if u.t >= after_t
            and u.filename == "image.jpg"]


def wait_upload(cloud, after_t, timeout=20.):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ups = snapshot_uploads(cloud, after_t)
        if ups:
            return ups[0]
        time.sleep(0.2)
    raise AssertionError("no snapshot upload")


def test_hello_carries_camera_from_moonraker_webcam(cam, cloud):
    hello = cloud.wait_for("hello", lambda d: d.get("camUrl"),
                           start=cam.mark0, timeout=20)
    assert hello.data["camUrl"] == "http://127.0.0.1/webcam/?action=stream"
    assert hello.data["transformImg"] == 1 and hello.data["camOff"] == 0
    # the webcam was known before the first hello: no reconnect to fix it
    assert [r.data.get("camUrl") for r in cloud.records("hello")
            if r.t >= cloud.events[cam.mark0].t] == [hello.data["camUrl"]]


def test_snapshot_fits_is_flipped_and_fields_come_first(cam, cloud):
    up = wait_upload(cloud, 0.)
    assert up.problems == []
    assert up.order[-1] == "file" and up.content_type == "image/jpeg"
    assert len(up.data) <= 150000
    Image.open(io.BytesIO(up.data)).verify()
    # flipped horizontally: blue now on the left, red on the right
    assert dominant(colour_at(up.data, 0.25, 0.6)) == "b"
    assert dominant(colour_at(up.data, 0.75, 0.6)) == "r"
    assert dominant(colour_at(up.data, 0.5, 0.05)) == "g"
    geturls = cloud.records("getUrl")
    assert geturls and geturls[0].data["type"] == "idle"


def test_expired_url_is_asked_again_never_reused(cam, cloud):
    cloud.geturl_expires = 31          # valid ~1 s after the 30 s margin
    try:
        t0 = time.monotonic()
        mark = cloud.mark()
        cloud.disconnect_all(abrupt=True)   # new connection, new URLs
        cam.wait_polar(lambda s: not s["connected"], what="offline")
        cam.wait_polar(lambda s: s["connected"], timeout=30, what="online")
        time.sleep(12.)
        asks = [r for r in cloud.events[mark:] if r.event == "getUrl"]
        assert len(asks) >= 2
        for up in snapshot_uploads(cloud, t0):
            assert not [p for p in up.problems if "expired" in p], up.problems
    finally:
        cloud.geturl_expires = 3600


@pytest.mark.parametrize("content", [b"<html>login</html>", b""])
def test_camera_failure_logged_once_no_upload(cam, cloud, content):
    cloud.serve_file(SNAPSHOT, content)
    try:
        time.sleep(1.)
        t0 = time.monotonic()
        time.sleep(8.)
        assert snapshot_uploads(cloud, t0) == []
        log = cam.log_text()
        assert log.count("camera snapshot failed") == 1
        assert cam.polar_status()["connected"]
    finally:
        cloud.serve_file(SNAPSHOT, pattern_jpeg(800, 600, noise=False))


def test_timelapse_uploaded_and_status_leaves_5(cam, cloud):
    url = cloud.serve_file("tl.gcode", gcode_file(moves=20))
    mark = cloud.mark()
    cloud.emit("print", {"serialNumber": cam.serial, "jobId": "KL1-TL1",
                         "jobName": "tl", "gcodeFile": url},
               serial=cam.serial)
    cloud.wait_for("job", lambda d: d["jobId"] == "KL1-TL1", start=mark,
                   timeout=60)
    cam.http("POST", "/server/polar_test/timelapse", {"status": "started"})
    time.sleep(3.)
    assert cloud.records("status")[-1].data["status"] == 5
    with open(os.path.join(cam.timelapse_dir, "tl.mp4"), "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 5000)
    cloud.upload_status = 500         # the upload fails...
    try:
        cam.http("POST", "/server/polar_test/timelapse",
                 {"status": "success", "filename": "tl.mp4"})
        cloud.wait_for("getUrl", lambda d: d["type"] == "timelapse"
                       and d["jobId"] == "KL1-TL1", start=mark, timeout=15)
        deadline = time.monotonic() + 20
        while not [u for u in cloud.uploads if u.filename == "timelapse.mp4"]:
            assert time.monotonic() < deadline, "no timelapse upload"
            time.sleep(0.2)
        # ...and the status still leaves 5, through 7 to idle
        cloud.wait_for("status", lambda d: d["status"] == 0,
                       start=cloud.mark(), timeout=30)
    finally:
        cloud.upload_status = 204
    codes = [r.data["status"] for r in cloud.events[mark:]
             if r.event == "status"]
    last5 = len(codes) - 1 - codes[::-1].index(5)
    assert 7 in codes[last5:] and codes[-1] == 0
