"""Child process for RSA work: python -m polarcloud.keyworker < request."""
from . import child, keys


def handle(request, emit):
    action = request.get("action")
    path = request["path"]
    if action == "generate":
        return {"public_key": keys.generate_local(path)}
    if action == "sign":
        priv = keys.load_private(path)
        return {"signature": keys.sign_local(priv, request["challenge"]),
                "public_key": keys.public_pem(priv)}
    raise ValueError("unknown keyworker action %r" % (action,))


if __name__ == "__main__":
    child.worker_main(handle)
