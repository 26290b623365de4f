"""Is a failed https connection a certificate the system does not trust?

python-engineio turns every failed connect into "Connection error" and
drops the cause, so an untrusted certificate looks like an outage.  After
a failed connect to an https URL, one TLS handshake of our own to the same
host and port, with the same trust store (`ssl.create_default_context()`:
the system's CAs, or `SSL_CERT_FILE`), tells the two apart.  It runs on the
connector thread, with a short timeout, on the first failure after a
working connection and then at most every CHECK_INTERVAL, never on every
retry.
"""
import socket
import ssl
import urllib.parse

from ..text import clean

CHECK_TIMEOUT = 5.
CHECK_INTERVAL = 300.


def untrusted(detail):
    """The owner's words for a certificate that does not verify
    (docs/protocol.md#tls)."""
    return ("TLS certificate not trusted: %s; see the README on"
            " certificates" % (clean(detail, 120),))


def certificate_problem(url, timeout=CHECK_TIMEOUT, context=None):
    """The verify message when the server at an https:// (or wss://) url
    presents a certificate that does not verify; None otherwise, also when
    it cannot be reached at all."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "wss") or not parts.hostname:
        return None
    host = parts.hostname
    context = context or ssl.create_default_context()
    try:
        port = parts.port or 443
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as e:
        return e.verify_message or str(e)
    except (OSError, ValueError):
        return None     # not a certificate problem we can name


class CertificateCheck:
    """Explains failed connects to one URL, checking now and then."""

    def __init__(self, url, check=certificate_problem):
        self.url = url
        self.check = check
        self.next_check = None     # None: check at the next failure
        self.problem = None

    def explain(self, description, now):
        """description of a failed connect, or the certificate problem."""
        if description.startswith("TLS certificate"):
            return description     # the library said so itself
        if self.next_check is None or now >= self.next_check:
            self.next_check = now + CHECK_INTERVAL
            self.problem = self.check(self.url)
        return untrusted(self.problem) if self.problem else description

    def connected(self):
        self.next_check = None
        self.problem = None
