"""Keys worker (a child process): RSA key generation and hello signatures.

``python -m polarcloud.workers.keys``; requests:
  {"action": "generate", "path"} -> {"public_key", "moved_aside"}
  {"action": "sign", "path", "challenge"} -> {"signature", "public_key"}
"""
import base64
import os

from ..keys import KEY_BITS, pem, spki_der
from ..store import atomic_write, ensure_private_dir, move_aside
from . import worker_main


# The cloud keeps the public key it got at registration: only that key's
# file can bring this serial back (docs/protocol.md#registration).
KEY_LOST_ADVICE = ("restore it from a backup, or remove this printer in"
                   " your Polar Cloud account, run POLAR_UNREGISTER FORCE=1"
                   " and register again")


def public_pem(private_key):
    import rsa
    pub = rsa.PublicKey(private_key.n, private_key.e)
    return pem("PUBLIC KEY", spki_der(pub.save_pkcs1("DER")))


def load_private(path):
    import rsa
    with open(path, "rb") as f:
        return rsa.PrivateKey.load_pkcs1(f.read())


def sign(private_key, challenge):
    """RSASSA-PKCS1-v1_5 / SHA-256 over the challenge's UTF-8 bytes."""
    import rsa
    sig = rsa.sign(challenge.encode("utf-8"), private_key, "SHA-256")
    return base64.b64encode(sig).decode("ascii")


def generate(path, bits=KEY_BITS):
    """Keep a readable key at path, else create one; an unreadable file
    is moved aside first, never overwritten."""
    moved = None
    try:
        return {"public_key": public_pem(load_private(path)),
                "moved_aside": None}
    except FileNotFoundError:
        pass
    except Exception:   # truncated or garbage: rsa/pyasn1 errors vary
        moved = move_aside(path)
    import rsa
    _pub, priv = rsa.newkeys(bits)
    ensure_private_dir(os.path.dirname(os.path.abspath(path)))
    atomic_write(path, priv.save_pkcs1("PEM"), 0o600)
    return {"public_key": public_pem(priv), "moved_aside": moved}


def handle(request, emit):
    action = request.get("action")
    path = request["path"]
    if action == "generate":
        return generate(path)
    if action == "sign":
        try:
            priv = load_private(path)
        except FileNotFoundError:
            raise ValueError("the key file is missing; " + KEY_LOST_ADVICE)
        except Exception as e:   # truncated or garbage: never replaced here
            raise ValueError("the key is unreadable (%s); %s" % (
                str(e)[:60] or e.__class__.__name__, KEY_LOST_ADVICE))
        return {"signature": sign(priv, request["challenge"]),
                "public_key": public_pem(priv)}
    raise ValueError("unknown keys action %r" % (action,))


if __name__ == "__main__":
    worker_main(handle)
