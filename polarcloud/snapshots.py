"""When to take snapshots and where to upload them (pure logic, no I/O).

Times are the caller's monotonic clock, passed in so tests need no sleeps.
"""
import logging

log = logging.getLogger("polar_cloud")

TYPES = ("idle", "printing", "timelapse")
DEFAULT_MAX_SIZE = 150000
EXPIRY_MARGIN = 30.     # ask again this long before a URL expires
REQUEST_TIMEOUT = 30.   # a getUrl without an answer is asked again after


class UploadUrls:
    """getUrlResponse per upload type (reference §7.2, §7.6).

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
        return asked is None or asked[1] != job_id \
            or now - asked[0] > REQUEST_TIMEOUT

    def requested(self, kind, job_id, now):
        self.entries.pop(kind, None)
        self.in_flight[kind] = (now, job_id)

    def store(self, response, now):
        """Keep a valid getUrlResponse; False for a failed or malformed one."""
        if not isinstance(response, dict):
            return False
        kind = response.get("type")
        if kind not in TYPES:
            return False
        self.in_flight.pop(kind, None)
        url = response.get("url")
        fields = response.get("fields")
        expires = response.get("expires")
        if response.get("status") != "SUCCESS" \
                or not isinstance(url, str) \
                or not url.lower().startswith(("http://", "https://")) \
                or not isinstance(fields, dict) \
                or not all(isinstance(k, str) and isinstance(v, (str, int))
                           for k, v in fields.items()) \
                or isinstance(expires, bool) \
                or not isinstance(expires, (int, float)) or expires <= 0:
            return False
        max_size = response.get("maxSize")
        if isinstance(max_size, bool) or not isinstance(max_size, int) \
                or max_size <= 0:
            max_size = DEFAULT_MAX_SIZE
        job_id = response.get("jobID", response.get("jobId"))
        self.entries[kind] = {
            "url": url, "fields": [[k, str(v)] for k, v in fields.items()],
            "max_size": max_size,
            "job_id": None if job_id is None else str(job_id),
            "expires_at": now + expires - EXPIRY_MARGIN}
        return True

    def get(self, kind, job_id, now):
        entry = self.entries.get(kind)
        if entry is None or now >= entry["expires_at"]:
            return None
        if kind != "idle" and entry["job_id"] not in (None, job_id):
            return None
        return entry

    def clear(self):
        self.entries.clear()
        self.in_flight.clear()


class CameraHealth:
    """Backoff for a failing camera; one log line per outage."""
    FIRST_RETRY = 30.
    MAX_RETRY = 600.

    def __init__(self):
        self.failures = 0
        self.next_try = 0.

    def may_try(self, now):
        return now >= self.next_try

    def ok(self, now):
        """Returns True if the camera had been failing (worth a log line)."""
        was_failing = self.failures > 0
        self.failures = 0
        self.next_try = 0.
        return was_failing

    def failed(self, now, message):
        """Returns True on the first failure of an outage (log it then)."""
        delay = min(self.MAX_RETRY, self.FIRST_RETRY * 2 ** self.failures)
        self.failures += 1
        self.next_try = now + delay
        return self.failures == 1


class SnapshotCadence:
    """A snapshot with every status during a cloud print (about every 10 s)
    and every idle_interval seconds otherwise."""

    def __init__(self, printing_interval=10., idle_interval=300.):
        self.printing_interval = printing_interval
        self.idle_interval = idle_interval
        self.last = None

    def due(self, now, printing_cloud_job):
        if self.last is None:
            return True
        interval = self.printing_interval if printing_cloud_job \
            else self.idle_interval
        return now - self.last >= interval

    def taken(self, now):
        self.last = now
