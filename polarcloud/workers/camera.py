"""Camera worker (a child process): snapshots and uploads.

``python -m polarcloud.workers.camera`` fetches one JPEG,
turns it as the webcam is mounted, makes it fit Polar Cloud's size limit and
posts it to the pre-signed upload URL from getUrlResponse; it also posts
timelapse files.  Pillow's decoding of a large image costs the calling
process ~100 MiB and its GIL time would delay Klippy's reactor, hence the
separate process.  The requests it takes are described in handle().
"""
import io
import os
import uuid

from ..camera import DEFAULT_MAX_SIZE, normal_rotation
from . import WorkerError, worker_main

MAX_CAMERA_BYTES = 20 * 1024 * 1024
MAX_DIMENSIONS = (1280, 960)
QUALITIES = (85, 70, 55, 40, 25)
SCALE_STEP = .75        # then shrink by this much per try...
SCALE_QUALITY = 55      # ...at this quality...
MIN_WIDTH = 160         # ...down to this width
UPLOAD_OK = (200, 201, 204)
CHUNK = 64 * 1024
# Pillow's ROTATE_* turn counter-clockwise; webcam rotations are clockwise.
CLOCKWISE = {90: "ROTATE_270", 180: "ROTATE_180", 270: "ROTATE_90"}


def fetch_jpeg(url, timeout):
    """One JPEG from the camera's snapshot URL, else WorkerError "camera"."""
    import requests
    session = requests.Session()
    session.trust_env = False       # the camera is local: never via a proxy
    try:
        with session.get(url, timeout=timeout, stream=True) as resp:
            if resp.status_code != 200:
                raise WorkerError("camera", "HTTP %d from %s"
                                  % (resp.status_code, url))
            data = _read_limited(resp)
            what = resp.headers.get("Content-Type") or "data"
    except requests.RequestException as e:
        raise WorkerError("camera", "cannot reach %s (%s)"
                          % (url, e.__class__.__name__))
    if not data:
        raise WorkerError("camera", "empty snapshot from %s" % (url,))
    if not data.startswith(b"\xff\xd8"):
        raise WorkerError("camera", "%s returned %s, not a JPEG"
                          % (url, what.split(";")[0]))
    return data


def _read_limited(resp):
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_CAMERA_BYTES:
        raise _too_big()
    chunks, size = [], 0
    for chunk in resp.iter_content(CHUNK):
        size += len(chunk)
        if size > MAX_CAMERA_BYTES:
            raise _too_big()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big():
    return WorkerError("camera", "snapshot larger than %d MB"
                       % (MAX_CAMERA_BYTES >> 20,))


def load_pillow(request):
    if request.get("_disable_pillow"):   # test hook: act as if not installed
        return None
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def fit_image(data, flip_h, flip_v, rotation, max_size, Image):
    """(jpeg, width, height): data turned as configured, at most max_size.

    Untouched when no turn is configured and it fits; Image is Pillow's
    Image module, or None when Pillow is missing (sizes are then None)."""
    rotation = normal_rotation(rotation)
    turn = bool(flip_h or flip_v or rotation)
    rework = turn or len(data) > max_size
    if Image is None:
        if rework:
            raise WorkerError("no_pillow", _why_pillow(turn, len(data),
                                                       max_size))
        return data, None, None
    img = _decode(Image, data, rework, rotation)
    if not rework:
        return data, img.width, img.height
    for op in orientation_ops(Image, flip_h, flip_v, rotation):
        img = img.transpose(op)
    out, img = _encode_to_fit(img, max_size)
    return out, img.width, img.height


def _why_pillow(turn, size, max_size):
    need = "flipped or rotated" if turn else \
        "shrunk from %d to %d bytes" % (size, max_size)
    return ("Pillow is not installed, so the snapshot cannot be %s;"
            " install Pillow into Klipper's Python environment" % (need,))


def _decode(Image, data, whole, rotation):
    """Pillow image; decoded (small, RGB) only when whole is true."""
    try:
        img = Image.open(io.BytesIO(data))
        if not whole:
            return img               # the header gives the size
        box = MAX_DIMENSIONS if rotation in (0, 180) else MAX_DIMENSIONS[::-1]
        img.draft("RGB", box)        # JPEG decodes at 1/2..1/8 scale: less RAM
        img = img.convert("RGB")
    except Exception as e:
        raise WorkerError("camera", "not a readable JPEG (%s)" % (e,))
    img.thumbnail(box)               # so that the turned image fits 1280x960
    return img


def orientation_ops(Image, flip_h, flip_v, rotation):
    """Pillow transposes showing the picture as Mainsail does: its CSS
    `scaleX(-1) scaleY(-1) rotate(Ndeg)` turns clockwise first, then flips
    (this order matters for a quarter turn with one flip)."""
    ops = [getattr(Image, CLOCKWISE[rotation])] if rotation else []
    if flip_h:
        ops.append(Image.FLIP_LEFT_RIGHT)
    if flip_v:
        ops.append(Image.FLIP_TOP_BOTTOM)
    return ops


def _encode_to_fit(img, max_size):
    """(jpeg, image): lower quality first, then smaller; never truncated."""
    for quality in QUALITIES:
        out = _encode(img, quality)
        if len(out) <= max_size:
            return out, img
    while img.width > MIN_WIDTH:
        width = max(MIN_WIDTH, int(img.width * SCALE_STEP))
        img = img.resize((width, max(1, img.height * width // img.width)))
        out = _encode(img, SCALE_QUALITY)
        if len(out) <= max_size:
            return out, img
    raise WorkerError("image", "cannot make the snapshot fit %d bytes"
                      " (%d bytes at %d px wide)"
                      % (max_size, len(out), img.width))


def _encode(img, quality):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


class MultipartBody:
    """multipart/form-data read in chunks: the issued form fields in their
    order, then the file part last (an S3 POST policy ignores fields after
    the file).  The file is read as it is sent, never held whole (requests'
    own files= encoding keeps two copies of a timelapse in memory); the
    length is known up front because S3 refuses chunked bodies."""

    def __init__(self, fields, filename, content_type, fileobj, size):
        boundary = uuid.uuid4().hex
        head = b"".join(_part_head(boundary, name)
                        + str(value).encode("utf-8") + b"\r\n"
                        for name, value in fields)
        head += _part_head(boundary, "file", filename, content_type)
        tail = ("\r\n--%s--\r\n" % (boundary,)).encode("ascii")
        self.content_type = "multipart/form-data; boundary=" + boundary
        self.length = len(head) + size + len(tail)
        self._parts = [io.BytesIO(head), fileobj, io.BytesIO(tail)]

    def __len__(self):               # requests sends it as Content-Length
        return self.length

    def __iter__(self):
        return iter(lambda: self.read(CHUNK), b"")

    def read(self, amount=CHUNK):
        while self._parts:
            chunk = self._parts[0].read(amount)
            if chunk:
                return chunk
            self._parts.pop(0)
        return b""


def _part_head(boundary, name, filename=None, content_type=None):
    disposition = 'form-data; name="%s"' % (_quote(name),)
    if filename is not None:
        disposition += '; filename="%s"' % (_quote(filename),)
    lines = ["--" + boundary, "Content-Disposition: " + disposition]
    if content_type:
        lines.append("Content-Type: " + content_type)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _quote(text):
    # how browsers escape names in a form's Content-Disposition
    return str(text).replace('"', "%22").replace("\r", "%0D") \
        .replace("\n", "%0A")


def post_upload(upload, filename, content_type, fileobj, size, timeout):
    """Multipart POST of fileobj (size bytes) with the issued fields."""
    import requests
    fields = upload.get("fields") or []
    if isinstance(fields, dict):
        fields = fields.items()
    body = MultipartBody(fields, filename, content_type, fileobj, size)
    try:
        resp = requests.post(upload["url"], data=body, timeout=timeout,
                             headers={"Content-Type": body.content_type})
    except requests.RequestException as e:
        raise WorkerError("upload", "cannot reach the upload URL (%s)"
                          % (e.__class__.__name__,))
    resp.close()
    if resp.status_code not in UPLOAD_OK:
        raise WorkerError("upload", "upload rejected: HTTP %d"
                          % (resp.status_code,))
    return resp.status_code


def snapshot(request):
    data = fetch_jpeg(request["snapshot_url"],
                      request.get("camera_timeout", 5.))
    image, width, height = fit_image(
        data, request.get("flip_horizontal"), request.get("flip_vertical"),
        request.get("rotation"), request.get("max_size") or DEFAULT_MAX_SIZE,
        load_pillow(request))
    status = post_upload(request["upload"], "image.jpg", "image/jpeg",
                         io.BytesIO(image), len(image),
                         request.get("upload_timeout", 30.))
    return {"uploaded": True, "bytes": len(image), "width": width,
            "height": height, "http_status": status}


def upload_file(request):
    path, max_size = request["path"], request.get("max_size")
    name = os.path.basename(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise WorkerError("file", "cannot read %s (%s)" % (name, e.strerror))
    with f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            raise WorkerError("file", "%s is empty" % (name,))
        if max_size and size > max_size:
            raise WorkerError("file", "%s is %d bytes, more than the %d"
                              " allowed" % (name, size, max_size))
        status = post_upload(request["upload"],
                             request.get("filename", "timelapse.mp4"),
                             request.get("content_type", "video/mp4"), f,
                             size, request.get("upload_timeout", 300.))
    return {"uploaded": True, "bytes": size, "http_status": status}


def handle(request, emit):
    """Worker entry.  Requests:

    {"action": "snapshot", "snapshot_url", "flip_horizontal",
     "flip_vertical", "rotation" (clockwise degrees), "max_size",
     "upload": {"url", "fields": [[name, value], ...]},
     "camera_timeout": 5, "upload_timeout": 30}
        -> {"uploaded", "bytes", "width", "height", "http_status"}
    {"action": "upload_file", "path", "filename", "content_type",
     "upload", "max_size" (or None), "upload_timeout": 300}
        -> {"uploaded", "bytes", "http_status"}

    Failures raise WorkerError; its kind ("camera", "no_pillow", "image",
    "upload", "file") reaches the parent as ChildError.kind."""
    action = request.get("action")
    if action == "snapshot":
        return snapshot(request)
    if action == "upload_file":
        return upload_file(request)
    raise ValueError("unknown camera action %r" % (action,))


if __name__ == "__main__":
    worker_main(handle)
