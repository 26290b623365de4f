"""The printer's RSA identity, as the connector thread uses it.

Key generation and hello signatures run in the keys worker
(workers/keys.py): the pure-Python ``rsa`` package holds the GIL for tens of
milliseconds per signature and for seconds while generating a key, which
would stall Klippy's reactor.  This module only waits for that child, and
holds the DER/PEM helpers both sides share (docs/protocol.md#keys).
"""
import base64

from .connector.runner import run

KEY_BITS = 2048
RSA_OID = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1
DER_NULL = b"\x05\x00"
SIGN_TIMEOUT = 120.


def _der(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def spki_der(pkcs1_der):
    """Wrap a PKCS#1 RSAPublicKey DER in a SubjectPublicKeyInfo DER."""
    algorithm = _der(0x30, RSA_OID + DER_NULL)
    bit_string = _der(0x03, b"\x00" + pkcs1_der)
    return _der(0x30, algorithm + bit_string)


def pem(label, der):
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label, "\n".join(lines), label)


def generate_key(path, timeout, group=None):
    """Ensure a usable key at path (child process, in runner.ChildGroup
    group if given).

    Returns (SPKI PEM public key, path an unreadable old key was moved to
    or None)."""
    res = run("keys", {"action": "generate", "path": path}, timeout=timeout,
              group=group)
    return res["public_key"], res.get("moved_aside")


def sign_challenge(path, challenge, timeout=SIGN_TIMEOUT, group=None):
    """Sign a welcome challenge (child process, as generate_key); returns
    (signature, pem)."""
    res = run("keys", {"action": "sign", "path": path,
                       "challenge": challenge}, timeout=timeout, group=group)
    return res["signature"], res["public_key"]
