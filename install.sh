#!/bin/bash
# Install (or remove) the Polar Cloud connector for Klipper + Moonraker.
#
#   ./install.sh [options]            install / update (idempotent)
#   ./install.sh --uninstall [--purge]
#
# Run it as the user that runs Klipper and Moonraker (not as root).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MARK_BEGIN="# polar_cloud: added by polar-cloud-klipper install.sh"
MARK_END="# end polar_cloud"
PLACEHOLDER_ORIGIN="https://github.com/CHANGE-ME/polar-cloud-klipper.git"

usage() {
    cat <<EOF
Usage: $(basename "$0") [options]

Installs the Polar Cloud connector: Python dependencies into Klipper's
virtualenv, symlinks for the Klippy module and the Moonraker component,
a [polar_cloud] + [update_manager polar_cloud] block in moonraker.conf and
the state directory <printer_data>/polar_cloud (private key + serial).

Options (environment variable in brackets):
  --home DIR            base of all default paths [POLAR_HOME] (default: \$HOME)
  --klipper DIR         Klipper checkout [KLIPPER_DIR] (default: HOME/klipper)
  --klippy-env DIR      Klipper virtualenv [KLIPPY_ENV] (default: HOME/klippy-env)
  --moonraker DIR       Moonraker checkout [MOONRAKER_DIR] (default: HOME/moonraker)
  --moonraker-env DIR   Moonraker virtualenv [MOONRAKER_ENV] (default: HOME/moonraker-env)
  --printer-data DIR    printer data folder [PRINTER_DATA] (default: HOME/printer_data)
  --no-deps             do not pip install anything
  --no-restart          do not restart the klipper and moonraker services
  --uninstall           remove symlinks, exclude lines and the moonraker.conf block
  --purge               with --uninstall: also delete <printer_data>/polar_cloud
                        (the printer's key and serial: it must be registered again)
  -h, --help            show this help
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
note() { echo "install.sh: $*"; }

BASE=${POLAR_HOME:-$HOME}
KLIPPER=${KLIPPER_DIR:-}
KENV=${KLIPPY_ENV:-}
MOONRAKER=${MOONRAKER_DIR:-}
MENV=${MOONRAKER_ENV:-}
PDATA=${PRINTER_DATA:-}
DEPS=1
RESTART=1
UNINSTALL=0
PURGE=0

need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a directory argument"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --home) need_arg "$@"; BASE=$2; shift ;;
        --klipper) need_arg "$@"; KLIPPER=$2; shift ;;
        --klippy-env) need_arg "$@"; KENV=$2; shift ;;
        --moonraker) need_arg "$@"; MOONRAKER=$2; shift ;;
        --moonraker-env) need_arg "$@"; MENV=$2; shift ;;
        --printer-data) need_arg "$@"; PDATA=$2; shift ;;
        --no-deps) DEPS=0 ;;
        --no-restart) RESTART=0 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done
[ $PURGE -eq 0 ] || [ $UNINSTALL -eq 1 ] || die "--purge needs --uninstall"

KLIPPER=${KLIPPER:-$BASE/klipper}
KENV=${KENV:-$BASE/klippy-env}
MOONRAKER=${MOONRAKER:-$BASE/moonraker}
MENV=${MENV:-$BASE/moonraker-env}  # kept for symmetry; Moonraker needs no deps
PDATA=${PDATA:-$BASE/printer_data}

KLIPPY_LINK="$KLIPPER/klippy/extras/polar_cloud.py"
MOON_LINK="$MOONRAKER/moonraker/components/polar_cloud.py"
KLIPPY_SRC="$REPO/klippy_extras/polar_cloud.py"
MOON_SRC="$REPO/moonraker_components/polar_cloud.py"
KLIPPY_EXCLUDE="klippy/extras/polar_cloud.py"
MOON_EXCLUDE="moonraker/components/polar_cloud.py"
MOON_CONF="$PDATA/config/moonraker.conf"
STATE_DIR="$PDATA/polar_cloud"

# --- helpers -------------------------------------------------------------

# add_exclude REPO_DIR LINE: add LINE to REPO_DIR/.git/info/exclude once
add_exclude() {
    local git_dir="$1/.git" file="$1/.git/info/exclude"
    [ -d "$git_dir" ] || return 0
    if [ -f "$file" ] && grep -qxF -- "$2" "$file"; then
        return 0
    fi
    mkdir -p "$git_dir/info"
    # keep the file newline-terminated before appending
    if [ -s "$file" ] && [ -n "$(tail -c1 "$file")" ]; then
        echo >> "$file"
    fi
    echo "$2" >> "$file"
}

# remove_exclude REPO_DIR LINE (and the file if that leaves it empty)
remove_exclude() {
    local file="$1/.git/info/exclude" tmp
    [ -f "$file" ] && grep -qxF -- "$2" "$file" || return 0
    tmp=$(mktemp)
    grep -vxF -- "$2" "$file" > "$tmp" || true
    cat "$tmp" > "$file"   # in place: keeps mode, owner and symlinks
    rm -f "$tmp"
    [ -s "$file" ] || rm -f "$file"
}

# link SRC DEST
link() {
    if [ -e "$2" ] && [ ! -L "$2" ]; then
        die "$2 exists and is not a symlink; remove it first"
    fi
    [ "$(readlink "$2" 2>/dev/null)" = "$1" ] || ln -sfn "$1" "$2"
}

# unlink_ours DEST: remove DEST only if it is a symlink into this repo
unlink_ours() {
    [ -L "$1" ] || return 0
    case "$(readlink "$1")" in
        "$REPO"/*) rm -f "$1"; note "removed $1" ;;
        *) note "left $1 alone (it does not point into $REPO)" ;;
    esac
}

conf_block() {
    local origin
    origin=$(git -C "$REPO" remote get-url origin 2>/dev/null || true)
    origin=${origin:-$PLACEHOLDER_ORIGIN}
    cat <<EOF
$MARK_BEGIN
[polar_cloud]

[update_manager polar_cloud]
type: git_repo
path: $REPO
origin: $origin
primary_branch: main
managed_services: klipper moonraker
virtualenv: $KENV
requirements: requirements.txt
$MARK_END
EOF
}

restart_services() {
    local svc
    if [ $RESTART -eq 0 ]; then
        note "not restarting services (--no-restart); restart klipper and moonraker yourself"
        return 0
    fi
    if ! command -v systemctl >/dev/null 2>&1; then
        note "systemctl not found; restart klipper and moonraker yourself"
        return 0
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    for svc in klipper moonraker; do
        if [ -n "$(systemctl list-unit-files --no-legend "$svc.service" 2>/dev/null)" ]; then
            note "restarting $svc"
            $sudo systemctl restart "$svc" || note "could not restart $svc; restart it yourself"
        else
            note "no $svc.service unit; restart $svc yourself"
        fi
    done
}

# --- uninstall -----------------------------------------------------------

do_uninstall() {
    local tmp
    unlink_ours "$KLIPPY_LINK"
    unlink_ours "$MOON_LINK"
    remove_exclude "$KLIPPER" "$KLIPPY_EXCLUDE"
    remove_exclude "$MOONRAKER" "$MOON_EXCLUDE"
    if [ -f "$MOON_CONF" ] && grep -qxF -- "$MARK_BEGIN" "$MOON_CONF" &&
       ! grep -qxF -- "$MARK_END" "$MOON_CONF"; then
        note "$MOON_CONF: the polar_cloud block has no end marker; remove it yourself"
    elif [ -f "$MOON_CONF" ] && grep -qxF -- "$MARK_BEGIN" "$MOON_CONF"; then
        tmp=$(mktemp)
        # drop the marked block and the blank line install.sh put before it
        awk -v b="$MARK_BEGIN" -v e="$MARK_END" '
            $0 == b { skip = 1; held = 0; next }
            skip { if ($0 == e) skip = 0; next }
            held { print ""; held = 0 }
            $0 == "" { held = 1; next }
            { print }
            END { if (held) print "" }
        ' "$MOON_CONF" > "$tmp"
        cat "$tmp" > "$MOON_CONF"
        rm -f "$tmp"
        note "removed the polar_cloud block from $MOON_CONF"
    elif [ -f "$MOON_CONF" ] && grep -q '^\[polar_cloud\]' "$MOON_CONF"; then
        note "$MOON_CONF has a [polar_cloud] section not added by install.sh; remove it yourself"
    fi
    if [ -d "$STATE_DIR" ]; then
        if [ $PURGE -eq 1 ]; then
            rm -rf "$STATE_DIR"
            note "deleted $STATE_DIR (printer key and serial)"
        else
            note "kept $STATE_DIR (printer key and serial); use --uninstall --purge to delete it"
        fi
    fi
    note "remove the [polar_cloud] section from printer.cfg yourself"
    restart_services
    note "uninstalled"
}

# --- install -------------------------------------------------------------

do_install() {
    [ -d "$KLIPPER/klippy/extras" ] ||
        die "Klipper not found: $KLIPPER/klippy/extras does not exist (use --klipper DIR or --home DIR)"
    [ -d "$MOONRAKER/moonraker/components" ] ||
        die "Moonraker not found: $MOONRAKER/moonraker/components does not exist (use --moonraker DIR or --home DIR)"
    [ -x "$KENV/bin/python" ] ||
        die "Klipper virtualenv not found: $KENV/bin/python does not exist (use --klippy-env DIR or --home DIR)"
    [ -f "$KLIPPY_SRC" ] || die "$KLIPPY_SRC is missing (incomplete checkout?)"
    [ -f "$MOON_SRC" ] || die "$MOON_SRC is missing (incomplete checkout?)"

    # 1. Python dependencies, into Klipper's virtualenv
    if [ $DEPS -eq 1 ]; then
        note "installing Python dependencies into $KENV"
        "$KENV/bin/pip" install -q -r "$REPO/requirements.txt" ||
            die "pip install into $KENV failed"
        if ! "$KENV/bin/python" -c 'import PIL' >/dev/null 2>&1; then
            if ! "$KENV/bin/pip" install -q --only-binary=:all: Pillow; then
                note "note: no Pillow wheel for this system; webcam snapshots limited (no flip/rotate/resize)"
            fi
        fi
    fi

    # 2. symlinks + git excludes
    link "$KLIPPY_SRC" "$KLIPPY_LINK"
    link "$MOON_SRC" "$MOON_LINK"
    add_exclude "$KLIPPER" "$KLIPPY_EXCLUDE"
    add_exclude "$MOONRAKER" "$MOON_EXCLUDE"
    note "linked $KLIPPY_LINK and $MOON_LINK"

    # 3. moonraker.conf
    if [ ! -f "$MOON_CONF" ]; then
        note "$MOON_CONF not found; add this to your moonraker.conf:"
        echo
        conf_block
        echo
    elif grep -qxF -- "$MARK_BEGIN" "$MOON_CONF" || grep -q '^\[polar_cloud\]' "$MOON_CONF"; then
        note "$MOON_CONF already has a [polar_cloud] section"
    else
        { [ -z "$(tail -c1 "$MOON_CONF")" ] || echo; echo; conf_block; } >> "$MOON_CONF"
        note "added [polar_cloud] and [update_manager polar_cloud] to $MOON_CONF"
    fi

    # 4. state directory (private key + serial), never inside config/
    if [ -d "$PDATA" ]; then
        mkdir -p "$STATE_DIR"
        chmod 0700 "$STATE_DIR"
    else
        note "$PDATA does not exist; the Klippy module will create $STATE_DIR"
    fi

    restart_services

    cat <<EOF

Polar Cloud connector installed.

Next steps:
  1. Add a [polar_cloud] section to printer.cfg (see $REPO/printer.cfg.example)
     and restart Klipper.
  2. Register the printer, from the console:
         POLAR_REGISTER EMAIL=you@example.com PIN=1234
     or from a shell:
         curl -H "Content-Type: application/json" -X POST \\
              -d '{"email":"you@example.com","pin":"1234"}' \\
              http://localhost:7125/server/polar/register
The printer's key and serial are kept in $STATE_DIR.
EOF
}

if [ $UNINSTALL -eq 1 ]; then
    do_uninstall
else
    do_install
fi
