"""The printer's camera as Polar Cloud sees it (pure logic, no I/O).

Which camera, the URL a browser loads (`camUrl`), how the picture is turned
(`transformImg`), and the bookkeeping of upload URLs and snapshot times.
The connector thread acts on it in connector/uploads.py; image work runs in
the camera worker (workers/camera.py).  Times are the caller's monotonic
clock, passed in so tests need no sleeps.
"""
import urllib.parse

DEFAULT_MAX_SIZE = 150000   # bytes: the cloud's usual getUrlResponse maxSize
UPLOAD_TYPES = ("idle", "printing", "timelapse")
EXPIRY_MARGIN = 30.     # ask again this long before a URL expires
REQUEST_TIMEOUT = 30.   # a getUrl without an answer is asked again after
LOOPBACK_HOSTS = ("", "localhost", "127.0.0.1", "::1", "0.0.0.0")
SCHEME_PORTS = {"http": 80, "https": 443}


def resolve_camera(configured, webcam, local_ip):
    """The camera to use: printer.cfg options win over Moonraker's webcam.

    Returns {} when there is no camera, else cam_url (absolute stream URL
    for the browser), snapshot_url, flips, rotation and the hello bitmask."""
    source = configured or webcam
    if not source:
        return {}
    stream = source.get("stream_url") or None
    snapshot = source.get("snapshot_url") or None
    if snapshot is None and stream and "action=stream" in stream:
        snapshot = stream.replace("action=stream", "action=snapshot")
    flip_h = bool(source.get("flip_horizontal"))
    flip_v = bool(source.get("flip_vertical"))
    try:
        rotation = int(source.get("rotation") or 0) % 360
    except (TypeError, ValueError):
        rotation = 0
    return {
        "cam_url": absolute_url(stream, local_ip),
        "snapshot_url": absolute_url(snapshot, local_ip),
        "flip_horizontal": flip_h, "flip_vertical": flip_v,
        "rotation": rotation,
        "transform": transform_bitmask(flip_h, flip_v, rotation),
    }


def hello_fields(camera):
    """The camera's part of hello (docs/protocol.md#camera): the live
    stream URL when known, camOff and the transformImg bitmask."""
    fields = {"camOff": 0 if camera.get("cam_url")
              or camera.get("snapshot_url") else 1,
              "transformImg": camera.get("transform", 0)}
    if camera.get("cam_url"):
        fields["camUrl"] = camera["cam_url"]
    return fields


def normal_rotation(rotation):
    """A webcam rotation as 0, 90, 180 or 270 (nearest quarter turn)."""
    try:
        return int(round(float(rotation or 0) / 90.)) % 4 * 90
    except (TypeError, ValueError):
        return 0


def transform_bitmask(flip_h, flip_v, rotation):
    """hello `transformImg` for a webcam set up as Moonraker/Mainsail do it.

    The bitmask is the OctoPrint plugin's: +1 flip H, +2 flip V, +4 rotate
    90, taken from OctoPrint's webcam settings, which show the stream as
    rotate(flip(image)) with a COUNTER-clockwise rotate90 (OctoPrint's
    setting is "rotate 90 degrees counter clockwise"; the plugin turns its
    own snapshots with Pillow's ROTATE_90).  Moonraker's `rotation` is
    clockwise and Mainsail shows flip(rotate(image)) (CSS `scaleX(-1)
    scaleY(-1) rotate(Ndeg)`).  Rewritten in OctoPrint's terms:
      * 180 is both flips: bits 1 and 2 toggle;
      * 270 clockwise is 90 counter-clockwise: bit 4, and the flips trade
        places (a flip moved across a quarter turn becomes the other one);
      * 90 clockwise is that plus 180: bit 4, flips traded, then toggled.
    So 90 -> 7 and 270 -> 4 with no flips.  tests/test_camera.py checks all
    16 cases with Pillow.  How Polar's web app reads bit 4 is unconfirmed
    (docs/protocol.md#camera); this follows OctoPrint."""
    h, v = bool(flip_h), bool(flip_v)
    rotation = normal_rotation(rotation)
    if rotation in (90, 270):
        h, v = v, h
    if rotation in (90, 180):
        h, v = not h, not v
    return h * 1 + v * 2 + (4 if rotation in (90, 270) else 0)


def absolute_url(url, local_ip, default_port=80):
    """A URL the cloud (a browser on the printer's LAN) can load.

    A missing scheme becomes http.  A relative path gets local_ip and
    default_port (where the web UI's /webcam/ proxy listens); a localhost,
    127.0.0.1 or empty host becomes local_ip, keeping its port.  None for
    an empty url, or for this host when local_ip is unknown."""
    url = (url or "").strip()
    if not url:
        return None
    if url.startswith("//"):
        url = "http:" + url
    elif "://" not in url:
        if not _starts_with_host(url):
            return _local_url(local_ip, default_port, "/" + url.lstrip("/"))
        url = "http://" + url
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if host not in LOOPBACK_HOSTS:
        return url
    path = urllib.parse.urlunsplit(parts._replace(scheme="", netloc=""))
    return _local_url(local_ip, port or SCHEME_PORTS.get(parts.scheme),
                      path, parts.scheme)


def _starts_with_host(url):
    # "cam.lan:8080/x" names a host; "webcam/?action=stream" is a path
    first = url.split("/", 1)[0].split("?", 1)[0]
    return first == "localhost" or "." in first or ":" in first


def _local_url(local_ip, port, path, scheme="http"):
    if not local_ip:
        return None
    host = "[%s]" % (local_ip,) if ":" in local_ip else local_ip
    if port and port != SCHEME_PORTS.get(scheme):
        host += ":%d" % (port,)
    return "%s://%s%s" % (scheme, host, path)


class UploadUrls:
    """getUrlResponse per upload type (docs/protocol.md#uploads).

    A URL is used only while valid and, for printing/timelapse, only for
    the job it was issued for; asking again drops the old entry so a stale
    policy is never posted to."""

    def __init__(self):
        self.entries = {}
        self.in_flight = {}

    def want(self, kind, job_id, now):
        if self.get(kind, job_id, now) is not None:
            return False
        asked = self.in_flight.get(kind)
        return asked is None or str(asked[1]) != str(job_id) \
            or now - asked[0] > REQUEST_TIMEOUT

    def requested(self, kind, job_id, now):
        self.entries.pop(kind, None)
        self.in_flight[kind] = (now, job_id)

    def store(self, response, now):
        """Keep a valid getUrlResponse; False for a failed or malformed one.

        A refused answer leaves the request in flight, so it is asked again
        after REQUEST_TIMEOUT rather than on every tick.  An answer without
        a job id belongs to the job it was asked for."""
        entry = _parse_response(response)
        if entry is None:
            return False
        kind = response["type"]
        asked = self.in_flight.pop(kind, None)
        if entry["job_id"] is None and asked is not None:
            entry["job_id"] = str(asked[1])
        entry["expires_at"] = now + entry.pop("expires") - EXPIRY_MARGIN
        self.entries[kind] = entry
        return True

    def get(self, kind, job_id, now):
        entry = self.entries.get(kind)
        if entry is None or now >= entry["expires_at"]:
            return None
        if kind != "idle" and entry["job_id"] not in (None, str(job_id)):
            return None
        return entry

    def clear(self):
        self.entries.clear()
        self.in_flight.clear()


def _parse_response(response):
    """The entry for a usable getUrlResponse, else None (docs/protocol.md#uploads)."""
    if not isinstance(response, dict) or response.get("status") != "SUCCESS" \
            or response.get("type") not in UPLOAD_TYPES:
        return None
    url, fields = response.get("url"), response.get("fields")
    if not isinstance(url, str) \
            or not url.lower().startswith(("http://", "https://")) \
            or not isinstance(fields, dict) \
            or not all(isinstance(k, str) and isinstance(v, (str, int))
                       for k, v in fields.items()) \
            or not _positive(response.get("expires"), (int, float)):
        return None
    max_size = response.get("maxSize")
    job_id = response.get("jobID", response.get("jobId"))
    return {"url": url,
            "fields": [[k, str(v)] for k, v in fields.items()],
            "max_size": max_size if _positive(max_size, int)
            else DEFAULT_MAX_SIZE,
            "job_id": None if job_id is None else str(job_id),
            "expires": response["expires"]}


def _positive(value, types):
    return isinstance(value, types) and not isinstance(value, bool) \
        and value > 0


class SnapshotCadence:
    """A snapshot with every status during a cloud print (about every 10 s)
    and every idle_interval seconds otherwise."""

    def __init__(self, printing_interval=10., idle_interval=300.):
        self.printing_interval = printing_interval
        self.idle_interval = idle_interval
        self.last = None

    def due(self, now, printing_cloud_job):
        return now >= self.next_due(printing_cloud_job)

    def next_due(self, printing_cloud_job):
        if self.last is None:
            return 0.
        return self.last + (self.printing_interval if printing_cloud_job
                            else self.idle_interval)

    def taken(self, now):
        self.last = now
