"""RSA identity: SPKI PEM export and hello signatures (reference §2.4, §3.4).

The pure-Python ``rsa`` package holds the GIL for tens of milliseconds per
signature and for seconds during key generation, so Klippy's process only
calls these through the ``keyworker`` child process (``generate_key``,
``sign_challenge`` below).  The functions ending in ``_local`` are what the
child runs.
"""
import base64
import os

from . import child
from .store import atomic_write, ensure_private_dir

KEY_BITS = 2048
RSA_OID = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1
DER_NULL = b"\x05\x00"


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


def public_pem(private_key):
    import rsa
    pub = rsa.PublicKey(private_key.n, private_key.e)
    return pem("PUBLIC KEY", spki_der(pub.save_pkcs1("DER")))


def load_private(path):
    import rsa
    with open(path, "rb") as f:
        return rsa.PrivateKey.load_pkcs1(f.read())


def sign_local(private_key, challenge):
    import rsa
    sig = rsa.sign(challenge.encode("utf-8"), private_key, "SHA-256")
    return base64.b64encode(sig).decode("ascii")


def generate_local(path, bits=KEY_BITS):
    """Create the key file unless a readable one exists; return public PEM."""
    try:
        return public_pem(load_private(path))
    except (OSError, ValueError):
        pass
    import rsa
    _pub, priv = rsa.newkeys(bits)
    ensure_private_dir(os.path.dirname(os.path.abspath(path)))
    atomic_write(path, priv.save_pkcs1("PEM"), 0o600)
    return public_pem(priv)


# Parent side: what the connector thread calls.

def generate_key(path, timeout=900.):
    """Ensure a key exists at path (child process); returns the SPKI PEM."""
    return child.run("keyworker", {"action": "generate", "path": path},
                     timeout=timeout)["public_key"]


def sign_challenge(path, challenge, timeout=120.):
    """Sign a welcome challenge (child process); returns (signature, pem)."""
    res = child.run("keyworker", {"action": "sign", "path": path,
                                  "challenge": challenge}, timeout=timeout)
    return res["signature"], res["public_key"]
