"""Camera snapshots and uploads, run as a child process worker.

``python -m polarcloud.camera`` (see polarcloud.child) fetches one JPEG,
turns it as the webcam is mounted, makes it fit Polar Cloud's size limit and
posts it to the pre-signed upload URL from getUrlResponse.  Pillow's
decoding of a large image costs the calling process ~100 MiB and its GIL
time would delay Klippy's reactor, hence the separate process.
"""
import io
import urllib.parse

from . import child
from .child import WorkerError

MAX_CAMERA_BYTES = 20 * 1024 * 1024
MAX_DIMENSIONS = (1280, 960)
QUALITIES = (85, 70, 55, 40, 25)
MIN_WIDTH = 160
UPLOAD_OK = (200, 201, 204)


def transform_bitmask(flip_h, flip_v, rotation):
    """hello `transformImg` as the OctoPrint plugin defines it: +1 flip
    horizontally, +2 flip vertically, +4 rotate 90 degrees.

    The reference notes Polar3D's Klipper connector sends a 0/1 flag
    instead; for "no transform" and "flip H" the two agree, and Polar's
    successor schema types the field 0..7, so the bitmask is used.  180
    degrees is both flips; 270 is 90 plus both flips."""
    mask = (1 if flip_h else 0) | (2 if flip_v else 0)
    rotation = int(rotation or 0) % 360
    if rotation in (180, 270):
        mask ^= 3
    if rotation in (90, 270):
        mask |= 4
    return mask


def absolute_url(url, local_ip):
    """Absolute URL the cloud (or a browser on the LAN) can load (§2.5)."""
    if not url:
        return None
    url = url.strip()
    if url.startswith("//"):
        url = "http:" + url
    elif "://" not in url:
        if not url.startswith("/"):
            url = "/" + url
        return "http://%s%s" % (local_ip, url)
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host in ("", "localhost", "127.0.0.1", "::1", "0.0.0.0"):
        netloc = local_ip + (":%d" % (parts.port,) if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)


# --- inside the worker ----------------------------------------------------

def fetch_jpeg(url, timeout):
    import requests
    try:
        resp = requests.get(url, timeout=timeout, stream=True)
    except requests.RequestException as e:
        raise WorkerError("camera", "cannot reach %s (%s)"
                          % (url, e.__class__.__name__))
    with resp:
        if resp.status_code != 200:
            raise WorkerError("camera", "HTTP %d from %s"
                              % (resp.status_code, url))
        data = b""
        for chunk in resp.iter_content(65536):
            data += chunk
            if len(data) > MAX_CAMERA_BYTES:
                raise WorkerError("camera", "snapshot larger than 20 MB")
    if not data:
        raise WorkerError("camera", "empty snapshot from %s" % (url,))
    if not data.startswith(b"\xff\xd8"):
        raise WorkerError("camera", "%s did not return a JPEG image" % (url,))
    return data


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def fit_image(data, flip_h, flip_v, rotation, max_size, pillow=True):
    """JPEG bytes turned as configured and no larger than max_size."""
    transform = flip_h or flip_v or (rotation % 360)
    if not transform and len(data) <= max_size:
        return data
    Image = _pillow() if pillow else None
    if Image is None:
        raise WorkerError("image", "Pillow is not installed, so snapshots"
                          " that must be turned or shrunk are skipped"
                          " (install.sh installs it when a wheel exists)")
    try:
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", MAX_DIMENSIONS)   # decode big JPEGs at lower scale
        img = img.convert("RGB")
    except Exception as e:
        raise WorkerError("camera", "not a readable JPEG (%s)" % (e,))
    if flip_h:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if flip_v:
        img = img.transpose(Image.FLIP_TOP_BOTTOM)
    rotation %= 360
    if rotation:
        # webcam rotation is clockwise; these transposes are counter-clockwise
        img = img.transpose({90: Image.ROTATE_270, 180: Image.ROTATE_180,
                             270: Image.ROTATE_90}[rotation])
    img.thumbnail(MAX_DIMENSIONS)
    for quality in QUALITIES:
        out = _encode(img, quality)
        if len(out) <= max_size:
            return out
    while img.width > MIN_WIDTH:
        img = img.resize((max(MIN_WIDTH, int(img.width * .75)),
                          max(1, int(img.height * .75))))
        out = _encode(img, 55)
        if len(out) <= max_size:
            return out
    raise WorkerError("image", "cannot make the snapshot fit %d bytes"
                      % (max_size,))


def _encode(img, quality):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def post_upload(upload, filename, content_type, body, timeout):
    """Multipart POST: the issued fields first, the file last (S3 policy)."""
    import requests
    fields = [(name, value) for name, value in upload["fields"]]
    try:
        resp = requests.post(upload["url"], data=fields,
                             files={"file": (filename, body, content_type)},
                             timeout=timeout)
    except requests.RequestException as e:
        raise WorkerError("upload", "cannot reach the upload URL (%s)"
                          % (e.__class__.__name__,))
    if resp.status_code not in UPLOAD_OK:
        raise WorkerError("upload", "upload rejected: HTTP %d"
                          % (resp.status_code,))
    return resp.status_code


def handle(request, emit):
    action = request.get("action")
    if action == "snapshot":
        data = fetch_jpeg(request["snapshot_url"],
                          request.get("camera_timeout", 5.))
        image = fit_image(data, bool(request.get("flip_horizontal")),
                          bool(request.get("flip_vertical")),
                          int(request.get("rotation") or 0),
                          int(request["max_size"]),
                          pillow=not request.get("_disable_pillow"))
        status = post_upload(request["upload"], "image.jpg", "image/jpeg",
                             image, request.get("upload_timeout", 30.))
        return {"uploaded": True, "bytes": len(image), "http_status": status}
    if action == "upload_file":
        import os
        path = request["path"]
        size = os.path.getsize(path)
        if request.get("max_size") and size > request["max_size"]:
            raise WorkerError("upload", "%s is larger than %d bytes"
                              % (os.path.basename(path), request["max_size"]))
        with open(path, "rb") as f:
            status = post_upload(request["upload"], request["filename"],
                                 request["content_type"], f,
                                 request.get("upload_timeout", 300.))
        return {"uploaded": True, "bytes": size, "http_status": status}
    raise ValueError("unknown camera action %r" % (action,))


def take_and_upload(request, timeout=60.):
    """Parent side (connector thread): run one camera job in a child."""
    return child.run("camera", request, timeout=timeout)


if __name__ == "__main__":
    child.worker_main(handle)
