"""What install.sh puts into Klipper's virtualenv must install on a Pi
without a compiler: every runtime dependency is pure Python."""
import os
import re
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Ship compiled speedups on some platforms but publish a pure-Python
# py3-none-any wheel that pip falls back to, so no compiler is ever needed.
PURE_FALLBACK = {"charset-normalizer"}


def requirement_names(path):
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                yield re.split(r"[<>=!~\[; ]", line, 1)[0]


def closure(names):
    seen, todo = {}, list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = metadata.distribution(name)
        seen[key] = dist
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(re.split(r"[<>=!~\[; (]", req, 1)[0])
    return seen


def test_runtime_dependencies_are_pure_python():
    dists = closure(requirement_names(os.path.join(ROOT, "requirements.txt")))
    assert {"python-socketio", "websocket-client", "requests",
            "rsa"} <= set(dists)
    compiled = []
    for key, dist in dists.items():
        wheel = dist.read_text("WHEEL") or ""
        if "Root-Is-Purelib: true" not in wheel and key not in PURE_FALLBACK:
            compiled.append(key)
    assert compiled == [], "needs a compiler on some boards: %s" % compiled


def test_klippy_side_never_imports_test_only_packages():
    # aiohttp, Pillow and cryptography are not installed into Klipper's venv
    for folder in ("klippy_extras", "polarcloud"):
        for name in os.listdir(os.path.join(ROOT, folder)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(ROOT, folder, name)) as f:
                text = f.read()
            assert not re.search(r"^\s*(import|from) (aiohttp|cryptography)",
                                 text, re.M), name
            # Pillow is optional: only imported lazily inside the worker
            assert not re.search(r"^(import|from) PIL", text, re.M), name
