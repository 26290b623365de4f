"""When to take snapshots and where to upload them (pure logic, no I/O).

Times are the caller's monotonic clock, passed in so tests need no sleeps.
"""
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
    """The entry for a usable getUrlResponse, else None (reference §7.2)."""
    if not isinstance(response, dict) or response.get("status") != "SUCCESS" \
            or response.get("type") not in TYPES:
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


class CameraHealth:
    """Backoff for a failing camera; one log line per outage."""
    FIRST_RETRY = 30.
    MAX_RETRY = 600.

    def __init__(self):
        self.failures = 0
        self.next_try = 0.
        self.last_error = None

    def may_try(self, now):
        return now >= self.next_try

    def ok(self, now):
        """Returns True if the camera had been failing (worth a log line)."""
        was_failing = self.failures > 0
        self.failures = 0
        self.next_try = 0.
        self.last_error = None
        return was_failing

    def failed(self, now, message):
        """Returns True on the first failure of an outage (log it then)."""
        delay = min(self.MAX_RETRY, self.FIRST_RETRY * 2 ** self.failures)
        self.failures += 1
        self.next_try = now + delay
        self.last_error = message
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
