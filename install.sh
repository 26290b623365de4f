#!/bin/bash
# Install (or remove) the Polar Cloud connector for Klipper + Moonraker.
#
#   ./install.sh [options]            install / update (idempotent)
#   ./install.sh --uninstall [--purge]
#
# Run it as the user that runs Klipper and Moonraker (not as root).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Where this project is published (README's clone line says the same).
REPO_URL="https://github.com/polar-cloud-klipper/polar-cloud-klipper"
MARK_BEGIN="# polar_cloud: added by polar-cloud-klipper install.sh"
MARK_END="# end polar_cloud"
# printer.cfg lines that --uninstall commented out (install restores them)
OFF_MARK="#polar_cloud-uninstalled# "
# Klipper's SAVE_CONFIG header: "#*# <------- SAVE_CONFIG ------->"
SAVE_CONFIG_RE='^#\*# <-+ SAVE_CONFIG -+>'
SAVE_CONFIG_AWK='index($0, "#*# <") == 1 && /SAVE_CONFIG/'
PIP_PACKAGES="python-socketio python-engineio websocket-client requests rsa"

usage() {
    cat <<EOF
Usage: $(basename "$0") [options]

Installs the Polar Cloud connector: Python dependencies into Klipper's
virtualenv, symlinks for the Klippy module and the Moonraker component,
a [polar_cloud] + [update_manager polar_cloud] block in moonraker.conf,
polar_cloud.cfg with [include polar_cloud.cfg] in printer.cfg, and the
state directory <printer_data>/polar_cloud (private key + serial).
Moves a printer over from Polar3D's own connector when it finds one.
Restarts only the services whose files changed, never during a print.

Options (environment variable in brackets):
  --home DIR            base of all default paths [POLAR_HOME] (default: \$HOME)
  --klipper DIR         Klipper checkout [KLIPPER_DIR] (default: HOME/klipper)
  --klippy-env DIR      Klipper virtualenv [KLIPPY_ENV] (default: HOME/klippy-env)
  --moonraker DIR       Moonraker checkout [MOONRAKER_DIR] (default: HOME/moonraker)
  --printer-data DIR    printer data folder [PRINTER_DATA] (default: HOME/printer_data)
  --no-deps             do not pip install anything
  --no-restart          restart nothing; print the command to run instead
  --uninstall           remove what install added (the pip packages stay)
  --purge               with --uninstall: unregister the printer from Polar
                        Cloud, then delete <printer_data>/polar_cloud (key
                        and serial) and polar_cloud.cfg
  -h, --help            show this help

Asking Klipper whether it prints: [KLIPPY_SOCKET] (default
PRINTER_DATA/comms/klippy.sock), then Moonraker [MOONRAKER_URL] (default
http://127.0.0.1:7125). [POLAR_SYSTEMCTL] names the systemctl command.
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
note() { echo "install.sh: $*"; }
step() { echo "  $*"; }

BASE=${POLAR_HOME:-$HOME}
KLIPPER=${KLIPPER_DIR:-}
KENV=${KLIPPY_ENV:-}
MOONRAKER=${MOONRAKER_DIR:-}
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
PDATA=${PDATA:-$BASE/printer_data}

KLIPPY_LINK="$KLIPPER/klippy/extras/polar_cloud.py"
MOON_LINK="$MOONRAKER/moonraker/components/polar_cloud.py"
KLIPPY_SRC="$REPO/klippy_extras/polar_cloud.py"
MOON_SRC="$REPO/moonraker_components/polar_cloud.py"
KLIPPY_EXCLUDE="klippy/extras/polar_cloud.py"
MOON_EXCLUDE="moonraker/components/polar_cloud.py"
CONFIG_DIR="$PDATA/config"
MOON_CONF="$CONFIG_DIR/moonraker.conf"
PRINTER_CFG="$CONFIG_DIR/printer.cfg"
POLAR_CFG="$CONFIG_DIR/polar_cloud.cfg"
POLAR_CFG_SRC="$REPO/printer.cfg.example"
STATE_DIR="$PDATA/polar_cloud"
# Polar3D's connector (github.com/Polar3D/polar-cloud-klipper)
P3_CONF="$CONFIG_DIR/polar_cloud.conf"
P3_KEY="$CONFIG_DIR/polar_cloud_key.pem"
P3_UNIT="polar_cloud"

if [ -n "${KLIPPY_SOCKET:-}" ]; then
    KLIPPY_SOCK=$KLIPPY_SOCKET
elif [ ! -S "$PDATA/comms/klippy.sock" ] && [ -S /tmp/klippy_uds ]; then
    KLIPPY_SOCK=/tmp/klippy_uds        # installs from before printer_data
else
    KLIPPY_SOCK="$PDATA/comms/klippy.sock"
fi
MOON_URL=${MOONRAKER_URL:-http://127.0.0.1:7125}

if [ -n "${POLAR_SYSTEMCTL:-}" ]; then
    SYSTEMCTL=$POLAR_SYSTEMCTL
elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    SYSTEMCTL=systemctl
else
    SYSTEMCTL=""
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# What changed, so only that service restarts.
CHANGED_KLIPPER=0
CHANGED_MOONRAKER=0

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

# replace_file FILE NEW: put NEW's content into FILE in place (keeps mode,
# owner and symlinks); false if nothing changed
replace_file() {
    if cmp -s "$2" "$1"; then
        rm -f "$2"
        return 1
    fi
    cat "$2" > "$1"
    rm -f "$2"
}

# link SRC DEST; true if it created or changed the link
link() {
    if [ -e "$2" ] && [ ! -L "$2" ]; then
        die "$2 exists and is not a symlink; remove it first"
    fi
    [ "$(readlink "$2" 2>/dev/null)" != "$1" ] || return 1
    ln -sfn "$1" "$2"
}

# unlink_ours DEST: remove DEST only if it is a symlink into this repo
unlink_ours() {
    [ -L "$1" ] || return 1
    case "$(readlink "$1")" in
        "$REPO"/*) rm -f "$1"; note "removed $1" ;;
        *) note "left $1 alone (it does not point into $REPO)"; return 1 ;;
    esac
}

# has_marked_block FILE
has_marked_block() { [ -f "$1" ] && grep -qxF -- "$MARK_BEGIN" "$1"; }

# marked_block FILE: our block as it is in FILE
marked_block() {
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" '
        $0 == b { on = 1 } on { print } $0 == e { on = 0 }' "$1"
}

# remove_block FILE: drop our block and one blank line next to it (the one
# install.sh added); false if FILE has no block
remove_block() {
    has_marked_block "$1" || return 1
    if ! grep -qxF -- "$MARK_END" "$1"; then
        note "$1: the polar_cloud block has no end marker; remove it yourself"
        return 1
    fi
    local tmp
    tmp=$(mktemp)
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" '
        $0 == b { skip = 1; dropped = held; held = 0; next }
        skip { if ($0 == e) { skip = 0; after = !dropped }; next }
        after { after = 0; if ($0 == "") next }
        held { print ""; held = 0 }
        $0 == "" { held = 1; next }
        { print }
        END { if (held) print "" }
    ' "$1" > "$tmp"
    replace_file "$1" "$tmp"
}

# append_block FILE BLOCKFILE: blank line + block at the end, or just before
# Klipper's SAVE_CONFIG section (Klipper rewrites everything below it)
append_block() {
    local tmp
    if grep -qE -- "$SAVE_CONFIG_RE" "$1"; then
        tmp=$(mktemp)
        awk -v blockfile="$2" '
            !done && '"$SAVE_CONFIG_AWK"' {
                while ((getline line < blockfile) > 0) print line
                print ""; done = 1
            }
            { print }' "$1" > "$tmp"
        replace_file "$1" "$tmp"
    else
        { [ ! -s "$1" ] || [ -z "$(tail -c1 "$1")" ] || echo; echo; cat "$2"; } >> "$1"
    fi
}

# has_section FILE NAME: an active [NAME] outside our block (header only)
has_section() {
    [ -f "$1" ] && awk -v b="$MARK_BEGIN" -v e="$MARK_END" -v name="$2" '
        $0 == b { ours = 1 } $0 == e { ours = 0; next } ours { next }
        /^\[/ { h = $0; sub(/\].*/, "", h); sub(/^\[/, "", h)
                gsub(/[ \t]+/, " ", h); if (h == name) found = 1 }
        END { exit !found }' "$1"
}

# section_option FILE SECTION OPTION: first value, outside our block
section_option() {
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" -v name="$2" -v opt="$3" '
        $0 == b { ours = 1 } $0 == e { ours = 0; next } ours { next }
        /^\[/ { h = $0; sub(/\].*/, "", h); sub(/^\[/, "", h)
                gsub(/[ \t]+/, " ", h); sec = h; next }
        sec == name && $0 ~ "^" opt "[ \t]*[:=]" {
            sub("^" opt "[ \t]*[:=][ \t]*", ""); print; exit }' "$1"
}

# python3: Klipper's env when it is Python 3, else the system's
pick_python() {
    if [ -x "$KENV/bin/python" ] && python_version | grep -q '^3\.'; then
        echo "$KENV/bin/python"
    else
        command -v python3 || true
    fi
}

python_version() {
    "$KENV/bin/python" --version 2>&1 |
        sed -n 's/^Python \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n1
}

# py_module MODULE ARGS...: run one of this repo's modules
py_module() {
    local py
    py=$(pick_python)
    [ -n "$py" ] || return 127
    (cd "$REPO" && "$py" -m "$@")
}

sctl() { $SUDO "$SYSTEMCTL" "$@"; }
has_unit() {
    [ -n "$SYSTEMCTL" ] &&
        "$SYSTEMCTL" list-unit-files --no-legend "$1.service" 2>/dev/null | grep -q .
}

# --- preflight -------------------------------------------------------------

check_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    local owner
    owner=$(stat -c %U "$KLIPPER" 2>/dev/null || true)
    if [ -n "$owner" ] && [ "$owner" != root ]; then
        die "install.sh runs as root, but Klipper ($KLIPPER) belongs to $owner.
Run it as $owner, without sudo:  ./install.sh
(it asks for sudo itself, only to restart services)."
    fi
    if [ -z "$owner" ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        die "install.sh runs as root through sudo. Run it as $SUDO_USER, without sudo:  ./install.sh
(it asks for sudo itself, only to restart services)."
    fi
    [ -z "$owner" ] || note "running as root, the owner of Klipper's files here"
}

check_python() {
    local ver
    ver=$(python_version)
    case "$ver" in
        2.*) die "Klipper's virtualenv $KENV runs Python $ver. This connector needs
Python 3 (pip would only say 'No matching distribution found for
python-socketio'). Rebuild the env with Python 3; printer.cfg and the
Klipper checkout stay as they are:
    sudo systemctl stop klipper
    mv $KENV $KENV-py2
    python3 -m venv $KENV      (on Debian: sudo apt install python3-venv first)
    $KENV/bin/pip install -r $KLIPPER/scripts/klippy-requirements.txt
    sudo systemctl start klipper
(or reinstall Klipper with KIAUH, choosing Python 3), then run ./install.sh again." ;;
        3.[0-8]) note "warning: Klipper's env runs Python $ver; this connector is tested on 3.9 to 3.13" ;;
        3.*) ;;
        *) die "cannot run $KENV/bin/python (is $KENV a Python virtualenv?)" ;;
    esac
}

# --- restarts --------------------------------------------------------------

# print_state: sets PSTATE (printing/paused/busy/idle/unknown), PREASON
print_state() {
    local err
    err=$(mktemp)
    PSTATE=$(py_module polarcloud.installer.printer_api state --socket "$KLIPPY_SOCK" \
                 --url "$MOON_URL" 2>"$err") || PSTATE=unknown
    PREASON=$(cat "$err")
    rm -f "$err"
    [ -n "$PSTATE" ] || PSTATE=unknown
}

restart_changed() {
    local svcs=() cmd svc
    [ $CHANGED_KLIPPER -eq 0 ] || svcs+=(klipper)
    [ $CHANGED_MOONRAKER -eq 0 ] || svcs+=(moonraker)
    if [ ${#svcs[@]} -eq 0 ]; then
        note "nothing that Klipper or Moonraker loads changed: no restart needed"
        return 0
    fi
    cmd="sudo systemctl restart ${svcs[*]}"
    if [ $RESTART -eq 0 ]; then
        note "not restarting ${svcs[*]} (--no-restart). To load the changes, when no print is running, run:"
        step "$cmd"
        return 0
    fi
    if [ -z "$SYSTEMCTL" ]; then
        note "systemd not found: restart ${svcs[*]} yourself, when no print is running"
        return 0
    fi
    print_state
    case "$PSTATE" in
        printing|paused|busy)
            case "$PSTATE" in
                busy) note "Klipper is busy running G-code (a print from OctoPrint?): not restarting ${svcs[*]} now" ;;
                *) note "Klipper is $PSTATE: not restarting ${svcs[*]} now, that would end the print" ;;
            esac
            note "when the print is done, run:"
            step "$cmd"
            return 0 ;;
        unknown)
            if "$SYSTEMCTL" is-active --quiet klipper 2>/dev/null; then
                note "could not ask Klipper whether it is printing ($PREASON): not restarting ${svcs[*]}"
                note "when no print is running, run:"
                step "$cmd"
                return 0
            fi ;;
    esac
    for svc in "${svcs[@]}"; do
        if has_unit "$svc"; then
            note "restarting $svc"
            sctl restart "$svc" || note "could not restart $svc; run: sudo systemctl restart $svc"
        else
            note "no $svc.service unit: restart $svc yourself"
        fi
    done
}

# --- Polar3D's connector -----------------------------------------------------

P3_FOUND=0
P3_DIRS=()
P3_UNIT_FOUND=0
P3_ENTRY=0
P3_COMPONENT=0

is_polar3d_dir() {
    { [ -f "$1/config/polar_cloud.conf.template" ] && [ -f "$1/src/polar_cloud.py" ]; } ||
        { [ -f "$1/polar_cloud.py" ] && [ -d "$1/web" ]; }   # its installed copy
}

is_polar3d_component() {
    [ -f "$1" ] && [ ! -L "$1" ] && grep -qE 'PolarCloudPlugin|/server/polar_cloud/' "$1"
}

detect_polar3d() {
    local d real seen entry_path=""
    if [ -f "$MOON_CONF" ] && has_section "$MOON_CONF" "update_manager polar_cloud"; then
        P3_ENTRY=1
        entry_path=$(section_option "$MOON_CONF" "update_manager polar_cloud" path)
        entry_path=${entry_path/#\~/$BASE}
    fi
    for d in "$BASE"/polar-cloud-klipper* "$BASE/polar-cloud" ${entry_path:+"$entry_path"}; do
        [ -d "$d" ] && is_polar3d_dir "$d" || continue
        real=$(cd "$d" && pwd -P)
        [ "$real" != "$(cd "$REPO" && pwd -P)" ] || continue
        for seen in ${P3_DIRS[@]+"${P3_DIRS[@]}"}; do
            [ "$seen" != "$real" ] || continue 2
        done
        P3_DIRS+=("$real")
    done
    if has_unit "$P3_UNIT" || [ -f "/etc/systemd/system/$P3_UNIT.service" ]; then
        P3_UNIT_FOUND=1
    fi
    if is_polar3d_component "$MOON_LINK"; then
        P3_COMPONENT=1
    fi
    if [ $P3_ENTRY -eq 1 ] || [ ${#P3_DIRS[@]} -gt 0 ] || [ $P3_UNIT_FOUND -eq 1 ] ||
       [ $P3_COMPONENT -eq 1 ] || [ -f "$P3_CONF" ] || [ -f "$P3_KEY" ]; then
        P3_FOUND=1
    fi
}

report_polar3d() {
    local d
    note "found Polar3D's connector (github.com/Polar3D/polar-cloud-klipper):"
    [ $P3_UNIT_FOUND -eq 0 ] || step "its service $P3_UNIT.service"
    for d in ${P3_DIRS[@]+"${P3_DIRS[@]}"}; do step "its files in $d"; done
    [ $P3_ENTRY -eq 0 ] || step "its [update_manager polar_cloud] entry in $MOON_CONF"
    [ $P3_COMPONENT -eq 0 ] || step "its Moonraker component $MOON_LINK"
    [ ! -f "$P3_CONF" ] || step "its settings $P3_CONF"
    [ ! -f "$P3_KEY" ] || step "its private key $P3_KEY"
    note "moving this printer over to this connector; nothing of Polar3D's is deleted unless this one replaces it"
}

P3_IDENTITY=""

migrate_identity() {
    local out
    [ -f "$P3_CONF" ] || return 0
    note "importing the Polar Cloud printer (serial and key) of Polar3D's connector:"
    out=$(py_module polarcloud.installer.migrate identity --conf "$P3_CONF" --key "$P3_KEY" \
              --state-dir "$STATE_DIR") ||
        die "could not import Polar3D's printer identity (see above); nothing else was changed"
    P3_IDENTITY=${out##*$'\n'}
    [ "$out" = "$P3_IDENTITY" ] || printf '%s\n' "${out%$'\n'*}"
}

migrate_moonraker_conf() {
    local out
    [ -f "$MOON_CONF" ] || return 0
    has_section "$MOON_CONF" "update_manager polar_cloud" ||
        has_section "$MOON_CONF" "polar_cloud" || return 0
    out=$(py_module polarcloud.installer.migrate moonraker-conf --conf "$MOON_CONF" \
              --keep-between "$MARK_BEGIN" "$MARK_END" --empty-polar-cloud) ||
        die "could not edit $MOON_CONF (see above)"
    if [ "${out##*$'\n'}" = changed ]; then
        printf '%s\n' "${out%$'\n'*}"
        note "replaced Polar3D's Moonraker entries with this connector's (below)"
        CHANGED_MOONRAKER=1
    fi
}

stop_polar3d_service() {
    [ $P3_UNIT_FOUND -eq 1 ] || return 0
    if [ -z "$SYSTEMCTL" ]; then
        note "systemd not found: stop and disable Polar3D's service yourself:"
        step "sudo systemctl disable --now $P3_UNIT"
        return 0
    fi
    if "$SYSTEMCTL" is-active --quiet "$P3_UNIT" 2>/dev/null; then
        note "stopping Polar3D's $P3_UNIT service (two connectors must not share one printer)"
        sctl stop "$P3_UNIT" || note "could not stop it; run: sudo systemctl stop $P3_UNIT"
    fi
    if "$SYSTEMCTL" is-enabled --quiet "$P3_UNIT" 2>/dev/null; then
        note "disabling Polar3D's $P3_UNIT service (its unit file stays)"
        sctl disable "$P3_UNIT" || note "could not disable it; run: sudo systemctl disable $P3_UNIT"
    fi
}

how_to_go_back() {
    local d=${P3_DIRS[0]:-}
    if [ -n "$d" ] && [ -f "$d/install.sh" ]; then
        note "Polar3D's connector was not restored. To go back to it: cd $d && ./install.sh"
    else
        note "Polar3D's connector was not restored. To go back to it, install it again from github.com/Polar3D/polar-cloud-klipper"
    fi
    [ ! -f "$P3_CONF" ] || step "(its serial is still in $P3_CONF, its key in $P3_KEY)"
}

# --- moonraker.conf ----------------------------------------------------------

repo_origin() {
    [ -e "$REPO/.git" ] && git -C "$REPO" remote get-url origin 2>/dev/null || true
}

# conf_block FILE: our block for moonraker.conf (empty if nothing to add)
conf_block() {
    local origin with_section=1
    origin=$(repo_origin)
    [ ! -f "$MOON_CONF" ] || ! has_section "$MOON_CONF" polar_cloud || with_section=0
    [ $with_section -eq 1 ] || [ -n "$origin" ] || return 0
    echo "$MARK_BEGIN"
    if [ $with_section -eq 1 ]; then
        echo "[polar_cloud]"
        [ -z "$origin" ] || echo
    fi
    if [ -n "$origin" ]; then
        cat <<EOF
[update_manager polar_cloud]
type: git_repo
path: $REPO
origin: $origin
primary_branch: main
managed_services: klipper moonraker
virtualenv: $KENV
requirements: requirements.txt
EOF
    fi
    echo "$MARK_END"
}

setup_moonraker_conf() {
    local block
    block=$(mktemp)
    conf_block > "$block"
    if [ -z "$(repo_origin)" ]; then
        note "$REPO is not a git clone (a ZIP download?), so Moonraker's update manager"
        step "could not update it: no [update_manager polar_cloud] entry written. For updates"
        step "from Mainsail/Fluidd, install from a clone instead:"
        step "git clone $REPO_URL ~/polar-cloud-klipper"
    fi
    if [ ! -f "$MOON_CONF" ]; then
        note "$MOON_CONF not found; add this to your moonraker.conf:"
        echo
        cat "$block"
        echo
    elif has_marked_block "$MOON_CONF"; then
        if [ "$(marked_block "$MOON_CONF")" = "$(cat "$block")" ]; then
            note "$MOON_CONF already has this connector's entries"
        else
            remove_block "$MOON_CONF" || true
            [ ! -s "$block" ] || append_block "$MOON_CONF" "$block"
            note "updated this connector's entries in $MOON_CONF"
            CHANGED_MOONRAKER=1
        fi
    elif [ -s "$block" ]; then
        has_section "$MOON_CONF" polar_cloud &&
            note "$MOON_CONF has its own [polar_cloud] section: kept it"
        append_block "$MOON_CONF" "$block"
        note "added $(grep '^\[' "$block" | tr '\n' ' ')to $MOON_CONF"
        CHANGED_MOONRAKER=1
    else
        note "$MOON_CONF already has a [polar_cloud] section"
    fi
    rm -f "$block"
}

# --- printer.cfg -------------------------------------------------------------

include_block() {
    printf '%s\n[include polar_cloud.cfg]\n%s\n' "$MARK_BEGIN" "$MARK_END"
}

restore_commented_lines() {
    local tmp
    grep -qF -- "$OFF_MARK" "$PRINTER_CFG" || return 0
    tmp=$(mktemp)
    awk -v off="$OFF_MARK" '
        index($0, off) == 1 { $0 = substr($0, length(off) + 1) } { print }' \
        "$PRINTER_CFG" > "$tmp"
    if replace_file "$PRINTER_CFG" "$tmp"; then
        note "restored the [polar_cloud] lines that --uninstall had commented out in $PRINTER_CFG"
        CHANGED_KLIPPER=1
    fi
}

ensure_polar_cfg() {
    if [ -f "$POLAR_CFG" ]; then
        return 0
    fi
    cp "$POLAR_CFG_SRC" "$POLAR_CFG"
    note "wrote $POLAR_CFG (a [polar_cloud] section, every option commented out: edit it to set your camera or printer make)"
    CHANGED_KLIPPER=1
}

setup_printer_cfg() {
    local block
    if [ ! -f "$PRINTER_CFG" ]; then
        note "$PRINTER_CFG not found: add a [polar_cloud] section to your printer.cfg"
        step "yourself (see $POLAR_CFG_SRC) and restart Klipper"
        return 0
    fi
    restore_commented_lines
    if has_section "$PRINTER_CFG" polar_cloud; then
        note "$PRINTER_CFG has its own [polar_cloud] section: kept it"
        return 0
    fi
    if has_marked_block "$PRINTER_CFG" || grep -qE '^\[include[[:space:]]+polar_cloud\.cfg\]' "$PRINTER_CFG"; then
        ensure_polar_cfg
        note "$PRINTER_CFG already includes polar_cloud.cfg"
        return 0
    fi
    if [ -f "$POLAR_CFG" ]; then
        note "using the existing $POLAR_CFG"
    fi
    ensure_polar_cfg
    block=$(mktemp)
    include_block > "$block"
    append_block "$PRINTER_CFG" "$block"
    rm -f "$block"
    note "added [include polar_cloud.cfg] to $PRINTER_CFG"
    CHANGED_KLIPPER=1
}

# comment out what would stop Klipper once the module is gone
disable_printer_cfg_sections() {
    local tmp count
    tmp=$(mktemp)
    count=$(awk -v off="$OFF_MARK" -v out="$tmp" '
        '"$SAVE_CONFIG_AWK"' { rest = 1 }
        rest { print > out; next }
        /^\[/ {
            insec = ($0 ~ /^\[polar_cloud\][ \t]*([#;].*)?$/)
            if ($0 ~ /^\[include[ \t]+polar_cloud\.cfg\]/) { print off $0 > out; n++; next }
        }
        insec && $0 != "" { print off $0 > out; n++; next }
        { print > out }
        END { print n + 0 }' "$PRINTER_CFG")
    if replace_file "$PRINTER_CFG" "$tmp"; then
        note "commented out $count [polar_cloud] line(s) in $PRINTER_CFG (marked '$OFF_MARK';"
        step "./install.sh restores them), so Klipper starts without this connector"
        CHANGED_KLIPPER=1
    fi
}

uninstall_printer_cfg() {
    local f
    if [ -f "$PRINTER_CFG" ]; then
        if remove_block "$PRINTER_CFG"; then
            note "removed [include polar_cloud.cfg] from $PRINTER_CFG"
            CHANGED_KLIPPER=1
        fi
        disable_printer_cfg_sections
    fi
    if [ -f "$POLAR_CFG" ]; then
        if [ $PURGE -eq 1 ] || cmp -s "$POLAR_CFG" "$POLAR_CFG_SRC"; then
            rm -f "$POLAR_CFG"
            note "deleted $POLAR_CFG"
        else
            note "kept $POLAR_CFG: it has your settings. Klipper no longer reads it;"
            step "delete it yourself, or use --uninstall --purge"
        fi
    fi
    for f in "$CONFIG_DIR"/*.cfg; do
        [ -f "$f" ] && [ "$f" != "$PRINTER_CFG" ] && [ "$f" != "$POLAR_CFG" ] || continue
        if has_section "$f" polar_cloud; then
            note "warning: $f has a [polar_cloud] section: if printer.cfg includes it, remove"
            step "that section, or Klipper stops with \"Section 'polar_cloud' is not a valid config section\""
        fi
    done
}

# --- uninstall -------------------------------------------------------------

read_serial() {
    local py
    py=$(pick_python)
    [ -f "$STATE_DIR/state.json" ] && [ -n "$py" ] || return 0
    "$py" -c 'import json, sys
s = json.load(open(sys.argv[1])).get("serial")
print(s if isinstance(s, str) else "")' "$STATE_DIR/state.json" 2>/dev/null || true
}

unregister_before_purge() {
    local serial out
    serial=$(read_serial)
    if [ -z "$serial" ]; then
        return 0
    fi
    note "removing printer $serial from Polar Cloud (through the running Klipper)..."
    if out=$(py_module polarcloud.installer.printer_api unregister --socket "$KLIPPY_SOCK" \
                 --url "$MOON_URL" 2>&1); then
        note "removed printer $serial from your Polar Cloud account"
    else
        note "COULD NOT remove printer $serial from Polar Cloud: ${out:-no Python 3 found}"
        step "It stays listed in your Polar Cloud account: delete it on polar3d.com."
        step "(Next time, with Klipper running and online, run POLAR_UNREGISTER first.)"
    fi
}

do_uninstall() {
    check_user
    detect_polar3d
    [ $PURGE -eq 0 ] || unregister_before_purge
    ! unlink_ours "$KLIPPY_LINK" || CHANGED_KLIPPER=1
    ! unlink_ours "$MOON_LINK" || CHANGED_MOONRAKER=1
    remove_exclude "$KLIPPER" "$KLIPPY_EXCLUDE"
    remove_exclude "$MOONRAKER" "$MOON_EXCLUDE"
    if remove_block "$MOON_CONF"; then
        note "removed the polar_cloud block from $MOON_CONF"
        CHANGED_MOONRAKER=1
    elif has_section "$MOON_CONF" polar_cloud; then
        note "$MOON_CONF has a [polar_cloud] section not added by install.sh; remove it yourself"
    fi
    uninstall_printer_cfg
    if [ -d "$STATE_DIR" ]; then
        if [ $PURGE -eq 1 ]; then
            rm -rf "$STATE_DIR"
            note "deleted $STATE_DIR (printer key and serial)"
        else
            note "kept $STATE_DIR (printer key and serial); use --uninstall --purge to delete it"
        fi
    fi
    note "left the Python packages in $KENV ($PIP_PACKAGES, Pillow):"
    step "Klipper's env may share them with other add-ons, and pip cannot tell who needs"
    step "them. Remove them only if nothing else uses them: $KENV/bin/pip uninstall ..."
    [ $P3_FOUND -eq 0 ] || how_to_go_back
    restart_changed
    note "uninstalled"
}

# --- install ---------------------------------------------------------------

install_deps() {
    local before after
    [ $DEPS -eq 1 ] || return 0
    note "installing Python dependencies into $KENV"
    before=$("$KENV/bin/pip" freeze --all 2>/dev/null || true)
    "$KENV/bin/pip" install -q -r "$REPO/requirements.txt" ||
        die "pip install into $KENV failed"
    if ! "$KENV/bin/python" -c 'import PIL' >/dev/null 2>&1; then
        if ! "$KENV/bin/pip" install -q --only-binary=:all: Pillow; then
            note "note: no Pillow wheel for this system; webcam snapshots limited (no flip/rotate/resize)"
        fi
    fi
    after=$("$KENV/bin/pip" freeze --all 2>/dev/null || true)
    [ "$before" = "$after" ] || CHANGED_KLIPPER=1
}

install_links() {
    if link "$KLIPPY_SRC" "$KLIPPY_LINK"; then
        note "linked $KLIPPY_LINK"
        CHANGED_KLIPPER=1
    fi
    if [ $P3_COMPONENT -eq 1 ]; then
        rm -f "$MOON_LINK"
        note "replaced Polar3D's Moonraker component $MOON_LINK with this connector's"
        step "(its own copy stays in its src/polar_cloud_moonraker.py)"
    fi
    if link "$MOON_SRC" "$MOON_LINK"; then
        note "linked $MOON_LINK"
        CHANGED_MOONRAKER=1
    fi
    add_exclude "$KLIPPER" "$KLIPPY_EXCLUDE"
    add_exclude "$MOONRAKER" "$MOON_EXCLUDE"
}

next_steps() {
    local serial
    serial=$(read_serial)
    echo
    echo "Polar Cloud connector installed."
    if [ -n "$serial" ]; then
        case "$P3_IDENTITY" in
            imported|already) echo "This printer keeps its Polar Cloud serial $serial from Polar3D's connector:
no need to register again. It comes back online once Klipper has restarted." ;;
            *) echo "This printer is registered with Polar Cloud as $serial." ;;
        esac
        return 0
    fi
    cat <<EOF

Next steps:
  1. Optional: set your camera or printer make in $POLAR_CFG
     (options: $POLAR_CFG_SRC), then RESTART.
  2. Register the printer, from the console:
         POLAR_REGISTER EMAIL=you@example.com PIN=1234
     or from a shell:
         curl -H "Content-Type: application/json" -X POST \\
              -d '{"email":"you@example.com","pin":"1234"}' \\
              http://localhost:7125/server/polar/register
The printer's key and serial are kept in $STATE_DIR.
EOF
}

do_install() {
    check_user
    [ -d "$KLIPPER/klippy/extras" ] ||
        die "Klipper not found: $KLIPPER/klippy/extras does not exist (use --klipper DIR or --home DIR)"
    [ -d "$MOONRAKER/moonraker/components" ] ||
        die "Moonraker not found: $MOONRAKER/moonraker/components does not exist (use --moonraker DIR or --home DIR)"
    [ -x "$KENV/bin/python" ] ||
        die "Klipper virtualenv not found: $KENV/bin/python does not exist (use --klippy-env DIR or --home DIR)"
    [ -f "$KLIPPY_SRC" ] || die "$KLIPPY_SRC is missing (incomplete checkout?)"
    [ -f "$MOON_SRC" ] || die "$MOON_SRC is missing (incomplete checkout?)"
    check_python

    install_deps
    detect_polar3d
    if [ $P3_FOUND -eq 1 ]; then
        report_polar3d
        migrate_identity
        note "do not run Polar3D's uninstall.sh from now on: it deletes $MOON_LINK,"
        step "which is this connector's now (if you did, run ./install.sh again)"
    fi
    install_links
    [ $P3_FOUND -eq 0 ] || migrate_moonraker_conf
    setup_moonraker_conf
    setup_printer_cfg

    # state directory (private key + serial), never inside config/
    if [ -d "$PDATA" ]; then
        mkdir -p "$STATE_DIR"
        chmod 0700 "$STATE_DIR"
    else
        note "$PDATA does not exist; the Klippy module will create $STATE_DIR"
    fi

    [ $P3_FOUND -eq 0 ] || stop_polar3d_service
    restart_changed
    next_steps
}

if [ $UNINSTALL -eq 1 ]; then
    do_uninstall
else
    do_install
fi
