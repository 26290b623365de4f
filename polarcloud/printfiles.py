"""Cloud print files: what a `print` asks for and where it is saved.

Pure helpers shared by the connector thread (connector/prints.py) and the
download worker (workers/download.py).  Nothing the cloud sends can
overwrite a user's file or leave the target folder: names are cleaned to
[A-Za-z0-9_-], a download streams into a hidden `.<name>.part` file, and
the final name is never one that exists.
"""
import os
import re

from . import protocol as P
from .text import clean, is_clean

MiB = 1024 * 1024
MAX_NAME_CHARS = 80
MAX_ID_CHARS = 40
MAX_JOB_ID = 64
MAX_NAME_VARIANTS = 999
GCODE_KEYS = ("gcodeFile", "gcode_file")
MODEL_KEYS = ("stlFile", "threemfFile", "stl_file", "3mf_file")
NO_GCODE = ("Polar Cloud job has no G-code (STL/3MF slicing is not"
            " supported on Klipper)")


class DownloadError(Exception):
    pass


def job_fields(data):
    """(job id, job name) of a print command, tolerating snake_case.

    The id goes back to the cloud as it came (it matches the job there);
    None when it is not short printable text.  The name is only shown."""
    job_id = data.get("jobId", data.get("job_id"))
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        job_id = str(job_id)
    if isinstance(job_id, str):
        job_id = job_id.strip()
        if not job_id:
            job_id = P.LOCAL_JOB_ID
        elif len(job_id) > MAX_JOB_ID or not is_clean(job_id):
            job_id = None
    else:
        job_id = P.LOCAL_JOB_ID if job_id is None else None
    name = data.get("jobName", data.get("job_name"))
    return job_id, clean(name, 100) if isinstance(name, str) else ""


def _clean_name_part(text, max_chars):
    # Every run of characters outside [A-Za-z0-9_-] (spaces, dots, slashes)
    # becomes one "_", so "../../printer.cfg" -> "printer_cfg".
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", "" if text is None else str(text))
    text = re.sub(r"([_-])\1+", r"\1", text)
    return text.strip("_-")[:max_chars].strip("_-")


def job_filename(job_name, job_id):
    """`<name>_cloud_<id>.gcode`; safe as a single file name in any folder."""
    name = _clean_name_part(job_name, MAX_NAME_CHARS)
    job = _clean_name_part(job_id, MAX_ID_CHARS) or "job"
    return "%s_cloud_%s.gcode" % (name, job) if name else "polar_cloud_%s.gcode" % (job,)


def pick_print_url(payload):
    """The G-code URL of a `print` command; ValueError if there is none.

    The service may send several files (`gcodeFile`, `stlFile`,
    `threemfFile`) whatever `fileToPrint` names: the G-code is printed
    whenever there is one, as Polar3D's connector does."""
    url = next((payload[k] for k in GCODE_KEYS if payload.get(k)), None)
    if url is None:
        if any(payload.get(k) for k in MODEL_KEYS):
            raise ValueError(NO_GCODE)
        raise ValueError("Polar Cloud job has no file to print")
    if not is_http_url(url):
        raise ValueError("Polar Cloud job has an invalid G-code URL")
    return url


def is_http_url(url):
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def check_filename(filename):
    """Refuse anything but a plain, visible file name (no folders, no '..')."""
    if (not isinstance(filename, str) or not filename or filename.startswith(".")
            or "/" in filename or "\\" in filename or "\0" in filename
            or os.path.basename(filename) != filename):
        raise DownloadError("invalid download file name: %.100r" % (filename,))


def part_path(dest_dir, filename):
    return os.path.join(dest_dir, ".%s.part" % (filename,))


def remove_stale_parts(dest_dir):
    """Delete the `.part` files of downloads cut short by a crash (the
    worker dies with Klippy and cannot); returns the names removed.  Only
    names job_filename() makes are touched."""
    try:
        names = os.listdir(dest_dir)
    except OSError:
        return []
    stale = [n for n in names if n.startswith(".") and n.endswith(".gcode.part")
             and ("_cloud_" in n or n.startswith(".polar_cloud_"))]
    for name in stale:
        remove_quietly(os.path.join(dest_dir, name))
    return stale


def unused_path(dest_dir, filename):
    """dest_dir/filename, or `<stem>_2<ext>`, `_3`... if taken: never overwrite."""
    stem, ext = os.path.splitext(filename)
    for n in range(1, MAX_NAME_VARIANTS + 1):
        name = filename if n == 1 else "%s_%d%s" % (stem, n, ext)
        path = os.path.join(dest_dir, name)
        if not os.path.lexists(path):  # lexists: a dangling symlink is taken too
            return path
    raise DownloadError("too many files named like %s" % (filename,))


def format_size(n):
    if n >= MiB:
        return "%d MB" % (n // MiB)
    return "%d kB" % (max(n, 0) // 1024)


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


