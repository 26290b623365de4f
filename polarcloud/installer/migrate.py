"""Move a printer over from Polar3D's own Klipper connector (install.sh).

That connector keeps its identity in the config folder: polar_cloud.conf
(``serial_number``, ``username``, the plaintext ``pin``) and
polar_cloud_key.pem (a PKCS#8 PEM key).  Polar Cloud knows the printer by
serial and key, so importing both into our state directory brings the same
cloud printer back online without registering again.

    python -m polarcloud.migrate identity --conf C --key K --state-dir D
    python -m polarcloud.migrate moonraker-conf --conf moonraker.conf \
        --keep-between BEGIN END [--empty-polar-cloud]

Runtime dependencies only (``rsa`` and its ``pyasn1``).  Every step is
printed; the PIN and the key are never printed.
"""
import argparse
import base64
import configparser
import json
import os
import re
import sys
import uuid

from ..store import KEY_FILE, STATE_FILE, atomic_write, ensure_private_dir

RSA_OID = "1.2.840.113549.1.1.1"
PEM_RE = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n(.*?)-----END \1-----",
                    re.S)


class MigrateError(Exception):
    pass


def say(line):
    print("  " + line)


# --- keys -------------------------------------------------------------

def load_private_pem(data):
    """rsa.PrivateKey from a PKCS#1 or unencrypted PKCS#8 PEM."""
    import rsa
    match = PEM_RE.search(data)
    if match is None:
        raise MigrateError("not a PEM private key")
    label, body = match.group(1).decode(), match.group(2)
    if label == "ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in body[:200]:
        raise MigrateError("the key is encrypted")
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
        if label == "RSA PRIVATE KEY":
            key = rsa.PrivateKey.load_pkcs1(der, "DER")
        elif label == "PRIVATE KEY":
            key = rsa.PrivateKey.load_pkcs1(pkcs8_to_pkcs1(der), "DER")
        else:
            raise MigrateError("unsupported PEM type %r" % (label,))
    except MigrateError:
        raise
    except Exception as e:
        raise MigrateError("unreadable key (%s)" % (e.__class__.__name__,))
    if key.p * key.q != key.n:
        raise MigrateError("the key is inconsistent")
    return key


def pkcs8_to_pkcs1(der):
    """PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey }."""
    from pyasn1.codec.der import decoder
    info, rest = decoder.decode(der)
    if rest:
        raise MigrateError("trailing data after the key")
    if str(info[1][0]) != RSA_OID:
        raise MigrateError("not an RSA key")
    return bytes(info[2])


def same_key(a, b):
    return (a.n, a.e) == (b.n, b.e)


def their_mac():
    """The MAC that connector registers with: uuid.getnode(), upper-case
    and colon-separated, unless Python found no real interface (a random
    value with the multicast bit set, different on every start)."""
    node = uuid.getnode()
    if (node >> 40) & 1:
        return None
    return ":".join("%02X" % ((node >> s) & 0xff) for s in range(40, -1, -8))


# --- their polar_cloud.conf ------------------------------------------

def read_their_conf(path):
    conf = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            conf.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise MigrateError("cannot read %s (%s)" % (path,
                                                    e.__class__.__name__))
    if not conf.has_section("polar_cloud"):
        return {}
    return dict(conf.items("polar_cloud"))


PIN_LINE = re.compile(r"^\s*pin\s*[=:]\s*\S")
SECTION_LINE = re.compile(r"^\[([^\]]+)\]")


def drop_pin(path):
    """Remove the non-empty pin line of [polar_cloud]; True if one was.

    Every other byte stays; the file keeps its mode (written atomically,
    through a symlink to its target)."""
    path = os.path.realpath(path)
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").splitlines(True)
    section, kept = None, []
    for line in lines:
        header = SECTION_LINE.match(line)
        if header:
            section = header.group(1).strip()
        elif section == "polar_cloud" and PIN_LINE.match(line):
            continue
        kept.append(line)
    if len(kept) == len(lines):
        return False
    mode = os.stat(path).st_mode & 0o7777
    atomic_write(path, "".join(kept).encode("utf-8"), mode)
    return True


# --- our state directory ---------------------------------------------

def read_our_state(state_dir):
    path = os.path.join(state_dir, STATE_FILE)
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise MigrateError("cannot read %s (%s): fix or remove it first"
                           % (path, e.__class__.__name__))
    if not isinstance(state, dict):
        raise MigrateError("%s is not a JSON object: fix or remove it first"
                           % (path,))
    return state


def read_our_key(state_dir):
    try:
        with open(os.path.join(state_dir, KEY_FILE), "rb") as f:
            return load_private_pem(f.read())
    except (OSError, MigrateError):
        return None


def import_identity(conf_path, key_path, state_dir, mac=None):
    """Returns "imported", "already", "kept" or "nothing"."""
    if not os.path.exists(conf_path):
        say("no %s: nothing to import" % (conf_path,))
        return "nothing"
    serial = read_their_conf(conf_path).get("serial_number", "").strip()
    if not serial:
        say("%s has no serial_number: that connector never registered"
            " this printer, nothing to import" % (conf_path,))
        return "nothing"
    try:
        with open(key_path, "rb") as f:
            key = load_private_pem(f.read())
    except OSError as e:
        say("serial %s found, but its key %s cannot be read (%s): Polar"
            " Cloud knows the printer by that key, so register again"
            % (serial, key_path, e.strerror or e))
        return "nothing"
    except MigrateError as e:
        say("serial %s found, but its key %s cannot be used (%s): register"
            " again" % (serial, key_path, e))
        return "nothing"
    state = read_our_state(state_dir)
    ours = state.get("serial")
    our_key = read_our_key(state_dir)
    if isinstance(ours, str) and ours.strip():
        if ours == serial and our_key is not None and same_key(our_key, key):
            say("serial %s and its key are already in %s"
                % (serial, state_dir))
            return "already"
        if ours == serial:
            say("%s already has serial %s but another key; kept ours and"
                " imported nothing" % (state_dir, ours))
        else:
            say("this connector is already registered as %s (in %s); kept it"
                " and did not import Polar3D's serial %s"
                % (ours, state_dir, serial))
        return "kept"
    ensure_private_dir(state_dir)
    if our_key is not None:
        say("replacing the unregistered key in %s" % (state_dir,))
    atomic_write(os.path.join(state_dir, KEY_FILE), key.save_pkcs1("PEM"),
                 0o600)
    say("imported the private key from %s into %s (mode 0600)"
        % (key_path, os.path.join(state_dir, KEY_FILE)))
    state["serial"] = serial
    if mac:
        state["mac"] = mac
    data = json.dumps(state, indent=1, sort_keys=True).encode("utf-8")
    atomic_write(os.path.join(state_dir, STATE_FILE), data, 0o600)
    say("imported serial %s%s into %s" % (
        serial, " and MAC %s" % (mac,) if mac else "",
        os.path.join(state_dir, STATE_FILE)))
    return "imported"


def migrate_identity(conf_path, key_path, state_dir):
    result = import_identity(conf_path, key_path, state_dir, their_mac())
    if result in ("imported", "already") and drop_pin(conf_path):
        say("removed the plaintext PIN from %s (the serial and key are"
            " all the cloud needs)" % (conf_path,))
    elif result == "kept" and pin_present(conf_path):
        say("note: %s still holds your Polar Cloud PIN in plain text, and"
            " Moonraker serves that folder: delete its 'pin' line"
            % (conf_path,))
    return result


def pin_present(path):
    try:
        return bool(read_their_conf(path).get("pin", "").strip())
    except MigrateError:
        return False


# --- moonraker.conf ----------------------------------------------------

def _section_end(lines, start):
    """Index after the section that starts at lines[start]: its options
    and their continuation lines; trailing comments and blank lines before
    the next header stay (they may describe what follows).  A section
    without options takes only the comment lines right under its header."""
    end = start + 1
    i = start + 1
    while i < len(lines) and not SECTION_LINE.match(lines[i]):
        text = lines[i].strip()
        if text and not text.startswith(("#", ";")):
            end = i + 1
        i += 1
    if end == start + 1:
        while end < len(lines) and lines[end].strip().startswith(("#", ";")):
            end += 1
    return end


def _has_options(lines, start, end):
    return any(line.strip() and not line.strip().startswith(("#", ";"))
               for line in lines[start + 1:end])


def strip_foreign_sections(path, begin, end_marker, empty_polar_cloud):
    """Remove [update_manager polar_cloud] (and, if asked, option-less
    [polar_cloud]) sections outside our marked block; print each."""
    path = os.path.realpath(path)
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").splitlines(True)
    ours, i, cut = False, 0, []
    while i < len(lines):
        text = lines[i].rstrip("\r\n")
        if text == begin:
            ours = True
        elif text == end_marker:
            ours = False
        header = SECTION_LINE.match(lines[i])
        if header and not ours:
            name = " ".join(header.group(1).split())
            stop = _section_end(lines, i)
            if name == "update_manager polar_cloud" or (
                    name == "polar_cloud" and empty_polar_cloud
                    and not _has_options(lines, i, stop)):
                cut.append((i, stop))
                i = stop
                continue
        i += 1
    if not cut:
        return False
    kept, last = [], 0
    for start, stop in cut:
        say("removed from %s:" % (path,))
        for line in lines[start:stop]:
            say("    " + line.rstrip("\r\n"))
        kept.extend(lines[last:start])
        blank_before = not kept or not kept[-1].strip()
        if stop < len(lines) and not lines[stop].strip() and blank_before:
            stop += 1       # one blank line is enough between neighbours
        elif stop == len(lines) and kept and blank_before:
            kept.pop()      # the gap ended the file: no blank line at its end
        last = stop
    kept.extend(lines[last:])
    mode = os.stat(path).st_mode & 0o7777
    atomic_write(path, "".join(kept).encode("utf-8"), mode)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m polarcloud.migrate")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("identity")
    p.add_argument("--conf", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--state-dir", required=True)
    p = sub.add_parser("moonraker-conf")
    p.add_argument("--conf", required=True)
    p.add_argument("--keep-between", nargs=2, required=True,
                   metavar=("BEGIN", "END"))
    p.add_argument("--empty-polar-cloud", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.action == "identity":
            print(migrate_identity(args.conf, args.key, args.state_dir))
        else:
            changed = strip_foreign_sections(
                args.conf, args.keep_between[0], args.keep_between[1],
                args.empty_polar_cloud)
            print("changed" if changed else "unchanged")
    except (MigrateError, OSError) as e:
        sys.stderr.write("polarcloud.migrate: %s\n" % (e,))
        return 1
    except ImportError as e:
        sys.stderr.write("polarcloud.migrate: %s: install the dependencies"
                         " (install.sh without --no-deps)\n" % (e,))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
