"""tlscheck against a local TLS server: an untrusted certificate is named,
a trusted one and an unreachable server are not certificate problems."""
import socket
import ssl
import threading

import pytest

from polarcloud.connector import tlscheck
from tlscerts import self_signed, server_context


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """(port, cert_path): a TLS listener that completes handshakes."""
    cert, key = self_signed(str(tmp_path_factory.mktemp("tls")))
    ctx = server_context(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass    # the client refused our certificate
    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], cert
    listener.close()


def test_untrusted_certificate_is_named(tls_server):
    port, _cert = tls_server
    problem = tlscheck.certificate_problem("https://127.0.0.1:%d" % port)
    assert "self-signed certificate" in problem


def test_trusted_certificate_is_no_problem(tls_server):
    port, cert = tls_server
    ctx = ssl.create_default_context(cafile=cert)
    assert tlscheck.certificate_problem(
        "https://127.0.0.1:%d/socket.io" % port, context=ctx) is None


def test_unreachable_or_plain_http_is_not_a_certificate_problem():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()       # nothing listens there
    assert tlscheck.certificate_problem("https://127.0.0.1:%d" % port) \
        is None
    assert tlscheck.certificate_problem("http://127.0.0.1:%d" % port) is None


def test_checked_once_per_run_of_failures():
    calls = []

    def check(url):
        calls.append(url)
        return "self-signed certificate"
    c = tlscheck.CertificateCheck("https://x", check=check)
    first = c.explain("Connection error", 0.)
    assert first.startswith("TLS certificate not trusted: self-signed")
    assert c.explain("Connection error", 10.) == first
    assert len(calls) == 1          # not on every retry
    c.explain("Connection error", tlscheck.CHECK_INTERVAL + 1.)
    assert len(calls) == 2          # again now and then
    c.connected()
    c.explain("Connection error", tlscheck.CHECK_INTERVAL + 2.)
    assert len(calls) == 3          # and after a working connection
    assert c.explain("TLS certificate not trusted: x", 1e9) == \
        "TLS certificate not trusted: x"
