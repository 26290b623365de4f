"""What install.sh asks a running Klipper: is it printing?  And --purge's
unregister.  Klippy's API socket first, then Moonraker's HTTP API.

    python -m polarcloud.printer_api state|unregister --socket PATH --url URL

`state` prints one word: printing, paused, busy (G-code still running, e.g.
a print streamed by OctoPrint), idle (Klippy ready, or not ready and so not
printing) or unknown (neither answered); a reason follows on stderr.
`unregister` prints "unregistered" or the reason it failed (exit 1).
Standard library only: it also runs where Klipper's env cannot.
"""
import argparse
import json
import socket
import sys
import urllib.error
import urllib.request

ETX = b"\x03"
STATE_OBJECTS = {"print_stats": ["state"], "idle_timeout": ["state"]}
UNREGISTER_TIMEOUT = 60.   # the module waits up to 45 s for the cloud


class Unreachable(Exception):
    pass


class ApiError(Exception):
    pass


class KlippySocket:
    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise Unreachable("Klippy socket %s: %s" % (path, e))
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        try:
            self.sock.sendall(json.dumps(msg).encode() + ETX)
            while True:
                while ETX not in self.buf:
                    data = self.sock.recv(65536)
                    if not data:
                        raise Unreachable("Klippy closed its socket")
                    self.buf += data
                raw, self.buf = self.buf.split(ETX, 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    break
        except (OSError, ValueError) as e:
            raise Unreachable("Klippy socket: %s" % (e,))
        if "error" in reply:
            err = reply["error"]
            raise ApiError(err.get("message", err) if isinstance(err, dict)
                           else err)
        return reply.get("result", {})

    def close(self):
        self.sock.close()


def http(url, path, body=None, timeout=5.):
    """Moonraker's "result", or ApiError with its message."""
    req = urllib.request.Request(
        url.rstrip("/") + path, method="GET" if body is None else "POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)["result"]
    except urllib.error.HTTPError as e:
        try:
            message = json.load(e)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = "HTTP %d" % (e.code,)
        raise ApiError(message)
    except (OSError, ValueError, KeyError) as e:
        raise Unreachable("Moonraker at %s: %s" % (url, e))


def classify(klippy_state, status):
    if klippy_state != "ready":
        return "idle", "Klippy is %s" % (klippy_state,)
    print_state = status.get("print_stats", {}).get("state")
    if print_state in ("printing", "paused"):
        return print_state, "print_stats"
    if status.get("idle_timeout", {}).get("state") == "Printing":
        return "busy", "Klipper is still running G-code"
    return "idle", "print_stats is %s" % (print_state,)


def state_from_socket(path):
    api = KlippySocket(path, 5.)
    try:
        info = api.call("info", {"client_info": {"program": "install.sh"}})
        if info.get("state") != "ready":
            return classify(info.get("state"), {})
        return classify("ready", api.call(
            "objects/query", {"objects": STATE_OBJECTS})["status"])
    finally:
        api.close()


def state_from_moonraker(url):
    info = http(url, "/server/info")
    if info.get("klippy_state") != "ready":
        # Moonraker without Klippy says nothing about a print: ask no more
        raise Unreachable("Moonraker says Klippy is %s"
                          % (info.get("klippy_state"),))
    query = "&".join("%s=%s" % (k, ",".join(v))
                     for k, v in STATE_OBJECTS.items())
    return classify("ready", http(url, "/printer/objects/query?" + query)
                    ["status"])


def print_state(socket_path, url):
    reasons = []
    for ask, where in ((state_from_socket, socket_path),
                       (state_from_moonraker, url)):
        if not where:
            continue
        try:
            return ask(where)
        except (Unreachable, ApiError, KeyError, TypeError) as e:
            reasons.append(str(e))
    return "unknown", "; ".join(reasons) or "nothing to ask"


def unregister(socket_path, url):
    """None on success, else why not."""
    reasons = []
    if socket_path:
        try:
            api = KlippySocket(socket_path, UNREGISTER_TIMEOUT)
            try:
                api.call("polar_cloud/unregister")
                return None
            finally:
                api.close()
        except ApiError as e:
            return str(e)
        except Unreachable as e:
            reasons.append(str(e))
    if url:
        try:
            http(url, "/server/polar/unregister", {},
                 timeout=UNREGISTER_TIMEOUT)
            return None
        except ApiError as e:
            return str(e)
        except Unreachable as e:
            reasons.append(str(e))
    return "Klipper not reachable (%s)" % ("; ".join(reasons) or "no address")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m polarcloud.printer_api")
    parser.add_argument("action", choices=("state", "unregister"))
    parser.add_argument("--socket", default="")
    parser.add_argument("--url", default="")
    args = parser.parse_args(argv)
    if args.action == "state":
        state, reason = print_state(args.socket, args.url)
        print(state)
        sys.stderr.write(reason + "\n")
        return 0
    error = unregister(args.socket, args.url)
    print(error or "unregistered")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
