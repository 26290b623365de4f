"""The camera worker against a loopback camera and S3-style upload endpoint,
and its pure helpers (hello bitmask, camera URLs, image fitting)."""
import asyncio
import io
import os
import socket
import threading
from collections import namedtuple

import pytest
from aiohttp import web
from PIL import Image

from polarcloud import camera
from polarcloud.connector.runner import run
from polarcloud.workers import camera as camera_worker
from polarcloud.connector.runner import ChildError
from polarcloud.workers import WorkerError
from imagetools import colour_at, pattern_jpeg

LOCAL_IP = "10.0.0.5"
FIELDS = [["key", "snap/P1/image.jpg"], ["acl", "private"],
          ["Policy", "eyJleHAiOiAxfQ=="], ["X-Amz-Signature", "abc123"]]
COLOURS = {"R": (220, 30, 30), "G": (30, 200, 30), "B": (30, 30, 220),
           "Y": (220, 220, 30)}

Part = namedtuple("Part", "name filename content_type data")
Upload = namedtuple("Upload", "headers parts")


# --- loopback camera and upload endpoint -----------------------------------

class LoopbackServer:
    """aiohttp in a thread: GET /cam/<name> serves self.files[name] as
    (body, content type); POST /upload/<status> records the multipart parts
    as the server parsed them and answers <status>."""

    def __init__(self):
        self.files, self.uploads = {}, []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       daemon=True)

    def start(self):
        self.thread.start()
        self._call(self._start())
        return self

    def stop(self):
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self):
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/cam/{name}", self._camera)
        app.router.add_post("/upload/{status}", self._upload)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def _camera(self, request):
        if request.match_info["name"] not in self.files:
            return web.Response(status=404)
        body, content_type = self.files[request.match_info["name"]]
        return web.Response(body=body, content_type=content_type)

    async def _upload(self, request):
        parts = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            parts.append(Part(part.name, part.filename,
                              part.headers.get("Content-Type"),
                              bytes(await part.read())))
        self.uploads.append(Upload(dict(request.headers), parts))
        return web.Response(status=int(request.match_info["status"]))


def quadrant_jpeg(width=640, height=480):
    """Red | green over blue | yellow."""
    img = Image.new("RGB", (width, height), COLOURS["R"])
    img.paste(COLOURS["G"], (width // 2, 0, width, height // 2))
    img.paste(COLOURS["B"], (0, height // 2, width // 2, height))
    img.paste(COLOURS["Y"], (width // 2, height // 2, width, height))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def quadrants(jpeg):
    """Colour letters of the top-left, top-right, bottom-left and
    bottom-right quadrants."""
    def nearest(rgb):
        return min(COLOURS, key=lambda c: sum(
            (a - b) ** 2 for a, b in zip(COLOURS[c], rgb)))
    return "".join(nearest(colour_at(jpeg, fx, fy))
                   for fy in (.25, .75) for fx in (.25, .75))


@pytest.fixture(scope="module")
def server():
    srv = LoopbackServer().start()
    srv.files.update({
        "quadrants": (quadrant_jpeg(), "image/jpeg"),
        "noise": (pattern_jpeg(), "image/jpeg"),          # 4000x3000
        "login": (b"<html><body>login</body></html>", "text/html"),
        "empty": (b"", "image/jpeg"),
    })
    yield srv
    srv.stop()


@pytest.fixture
def uploads(server):
    server.uploads.clear()
    return server.uploads


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return "http://127.0.0.1:%d/?action=snapshot" % (port,)


def snap(server, cam="quadrants", status=204, **options):
    request = {"action": "snapshot", "max_size": 150000,
               "snapshot_url": server.url("/cam/" + cam),
               "upload": {"url": server.url("/upload/%d" % (status,)),
                          "fields": FIELDS}}
    request.update(options)
    return run("camera", request, timeout=30)


def only_upload(uploads):
    assert len(uploads) == 1
    return uploads[0].parts[-1].data


# --- snapshots through the worker -----------------------------------------

def test_fields_in_order_then_the_file_part(server, uploads):
    result = snap(server, flip_horizontal=True)
    (up,) = uploads
    assert [p.name for p in up.parts] == [n for n, _ in FIELDS] + ["file"]
    assert [[p.name, p.data.decode()] for p in up.parts[:-1]] == FIELDS
    assert all(p.filename is None for p in up.parts[:-1])
    image = up.parts[-1]
    assert (image.filename, image.content_type) == ("image.jpg",
                                                    "image/jpeg")
    assert int(up.headers["Content-Length"]) > len(image.data)
    assert "Transfer-Encoding" not in up.headers   # S3 takes no chunked body
    assert result == {"uploaded": True, "bytes": len(image.data),
                      "width": 640, "height": 480, "http_status": 204}


@pytest.mark.parametrize("options,want,size", [
    ({}, "RGBY", (640, 480)),
    ({"flip_horizontal": True}, "GRYB", (640, 480)),
    ({"flip_vertical": True}, "BYRG", (640, 480)),
    ({"rotation": 90}, "BRYG", (480, 640)),           # clockwise
    ({"rotation": 180}, "YBGR", (640, 480)),
    ({"rotation": 270}, "GYRB", (480, 640)),
    # Mainsail turns first, then flips the turned picture
    ({"rotation": 90, "flip_horizontal": True}, "RBGY", (480, 640)),
])
def test_snapshot_is_shown_as_mainsail_shows_the_webcam(
        server, uploads, options, want, size):
    snap(server, **options)
    jpeg = only_upload(uploads)
    assert Image.open(io.BytesIO(jpeg)).size == size
    assert quadrants(jpeg) == want


def test_untransformed_snapshot_that_fits_is_sent_unchanged(server, uploads):
    snap(server)
    assert only_upload(uploads) == server.files["quadrants"][0]


def test_big_noisy_snapshot_is_shrunk_to_fit(server, uploads):
    assert len(server.files["noise"][0]) > 1000000
    result = snap(server, cam="noise", status=201)
    jpeg = only_upload(uploads)
    assert len(jpeg) == result["bytes"] <= 150000
    img = Image.open(io.BytesIO(jpeg))
    img.load()                                        # a whole, valid JPEG
    assert img.size == (result["width"], result["height"])
    assert img.width <= 1280 and img.height <= 960
    assert result["http_status"] == 201


@pytest.mark.parametrize("cam", ["login", "empty", "missing", None])
def test_camera_failures_upload_nothing(server, uploads, cam):
    options = {"snapshot_url": closed_port_url()} if cam is None else {}
    with pytest.raises(ChildError) as e:
        snap(server, cam=cam or "quadrants", **options)
    assert e.value.kind == "camera"
    assert uploads == []


def test_rejected_upload_is_an_upload_error(server, uploads):
    with pytest.raises(ChildError) as e:
        snap(server, status=500)
    assert e.value.kind == "upload" and "HTTP 500" in str(e.value)


def test_without_pillow_only_fitting_untransformed_snapshots_go(
        server, uploads):
    result = snap(server, _disable_pillow=True)
    assert only_upload(uploads) == server.files["quadrants"][0]
    assert result["width"] is None
    with pytest.raises(ChildError) as e:
        snap(server, rotation=90, _disable_pillow=True)
    assert e.value.kind == "no_pillow" and "install Pillow" in str(e.value)
    assert len(uploads) == 1


# --- timelapse files through the worker -----------------------------------

def upload_file(server, path, status=204, max_size=None):
    return run("camera", {
        "action": "upload_file", "path": path, "filename": "timelapse.mp4",
        "content_type": "video/mp4", "max_size": max_size,
        "upload": {"url": server.url("/upload/%d" % (status,)),
                   "fields": FIELDS}}, timeout=30)


def test_timelapse_file_is_streamed_with_fields_first(server, uploads,
                                                      tmp_path):
    video = os.urandom(300000)
    path = tmp_path / "tl.mp4"
    path.write_bytes(video)
    result = upload_file(server, str(path))
    (up,) = uploads
    assert [p.name for p in up.parts] == [n for n, _ in FIELDS] + ["file"]
    part = up.parts[-1]
    assert (part.filename, part.content_type) == ("timelapse.mp4",
                                                  "video/mp4")
    assert part.data == video
    assert result == {"uploaded": True, "bytes": 300000, "http_status": 204}


@pytest.mark.parametrize("content,max_size", [(b"", None), (b"x" * 5000,
                                                             4000)])
def test_empty_or_oversize_timelapse_is_refused(server, uploads, tmp_path,
                                                content, max_size):
    path = tmp_path / "tl.mp4"
    path.write_bytes(content)
    with pytest.raises(ChildError) as e:
        upload_file(server, str(path), max_size=max_size)
    assert e.value.kind == "file" and uploads == []


# --- image fitting in-process -------------------------------------------------

def test_hard_to_compress_image_shrinks_until_it_fits():
    out, width, height = camera_worker.fit_image(pattern_jpeg(), False, False, 0,
                                          40000, Image)
    assert len(out) <= 40000
    assert Image.open(io.BytesIO(out)).size == (width, height)
    assert camera_worker.MIN_WIDTH <= width < 1280


def test_image_is_never_truncated_to_fit():
    with pytest.raises(WorkerError) as e:
        camera_worker.fit_image(pattern_jpeg(), False, False, 0, 300, Image)
    assert e.value.kind == "image"


def test_without_pillow_the_reason_is_given():
    small = quadrant_jpeg(320, 240)
    assert camera_worker.fit_image(small, False, False, 0, 150000, None) == \
        (small, None, None)
    with pytest.raises(WorkerError) as e:
        camera_worker.fit_image(small, False, False, 0, 1000, None)
    assert e.value.kind == "no_pillow" and "shrunk" in str(e.value)


# --- hello bitmask and camera URLs -------------------------------------------

@pytest.mark.parametrize("h,v,rotation,mask", [
    (False, False, 0, 0), (True, False, 0, 1), (False, True, 0, 2),
    (True, True, 0, 3), (False, False, 180, 3), (True, False, 180, 2),
    (True, True, 180, 0), (False, False, 90, 7), (False, False, 270, 4),
    (True, False, 90, 5), (True, False, 270, 6), (False, True, 90, 6),
    (False, False, "90", 7), (False, False, -90, 4), (False, False, 450, 7),
    (False, False, None, 0), (True, False, "bad", 1),
])
def test_transform_bitmask(h, v, rotation, mask):
    assert camera.transform_bitmask(h, v, rotation) == mask


def octoprint_view(img, mask):
    # OctoPrint shows flips then its counter-clockwise rotate90, as the
    # OctoPrint plugin also turns its snapshots
    if mask & 1:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if mask & 2:
        img = img.transpose(Image.FLIP_TOP_BOTTOM)
    if mask & 4:
        img = img.transpose(Image.ROTATE_90)
    return img


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("h,v", [(False, False), (True, False),
                                 (False, True), (True, True)])
def test_bitmask_shows_the_stream_as_mainsail_does(h, v, rotation):
    img = Image.frombytes("L", (3, 2), bytes(range(6)))   # no symmetry
    mainsail = img
    for op in camera_worker.orientation_ops(Image, h, v, rotation):
        mainsail = mainsail.transpose(op)
    octoprint = octoprint_view(img, camera.transform_bitmask(h, v, rotation))
    assert (octoprint.size, octoprint.tobytes()) == \
        (mainsail.size, mainsail.tobytes())


@pytest.mark.parametrize("url,local_ip,port,want", [
    ("/webcam/?action=stream", LOCAL_IP, 80,
     "http://10.0.0.5/webcam/?action=stream"),
    ("webcam/?action=stream", LOCAL_IP, 80,
     "http://10.0.0.5/webcam/?action=stream"),
    ("/webcam/?action=stream", LOCAL_IP, 8080,
     "http://10.0.0.5:8080/webcam/?action=stream"),
    ("http://localhost:8080/?action=stream", LOCAL_IP, 80,
     "http://10.0.0.5:8080/?action=stream"),
    ("http://127.0.0.1/x", LOCAL_IP, 8080, "http://10.0.0.5/x"),
    ("localhost:8080/?action=stream", LOCAL_IP, 80,
     "http://10.0.0.5:8080/?action=stream"),
    ("http:///webcam/", LOCAL_IP, 80, "http://10.0.0.5/webcam/"),
    ("https://localhost/s", LOCAL_IP, 80, "https://10.0.0.5/s"),
    ("cam.lan:8080/s", LOCAL_IP, 80, "http://cam.lan:8080/s"),
    ("http://cam.lan:8080/s", LOCAL_IP, 80, "http://cam.lan:8080/s"),
    ("https://cam.example.com/s?a=1", None, 80,
     "https://cam.example.com/s?a=1"),
    ("//cam.lan/s", LOCAL_IP, 80, "http://cam.lan/s"),
    ("/webcam/", "fe80::1", 80, "http://[fe80::1]/webcam/"),
    ("/webcam/", None, 80, None),
    ("http://localhost:abc/", LOCAL_IP, 80, None),
    ("", LOCAL_IP, 80, None), ("  ", LOCAL_IP, 80, None),
    (None, LOCAL_IP, 80, None),
])
def test_absolute_url(url, local_ip, port, want):
    assert camera.absolute_url(url, local_ip, default_port=port) == want


def test_camera_down_is_a_camera_error():
    with pytest.raises(ChildError) as e:
        run("camera", {
            "action": "snapshot", "snapshot_url": "http://127.0.0.1:9/snap",
            "max_size": 150000, "camera_timeout": 2,
            "upload": {"url": "http://127.0.0.1:9/up", "fields": []}},
            timeout=30)
    assert e.value.kind == "camera"
