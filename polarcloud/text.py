"""Text from the cloud made safe for Klipper's console, log and API.

Klipper writes console lines with `os.write(msg.encode())`: a lone UTF-16
surrogate in a cloud string raises there and shuts Klippy down.  Every
cloud-derived string shown or logged goes through `clean()` first.
"""
MAX_TEXT = 200


def clean(value, limit=MAX_TEXT):
    """Printable, valid UTF-8, at most `limit` characters (plus "...")."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit * 4:
        text = text[:limit * 4]
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def is_clean(text):
    """True for printable text that encodes as UTF-8 (no surrogates)."""
    if not isinstance(text, str) or not text.isprintable():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
