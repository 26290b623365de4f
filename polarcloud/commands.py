"""Cloud commands turned into checked G-code (pure functions, no Klippy).

Every function validates untrusted cloud input and returns G-code text or
raises CommandRefused with a sentence a printer owner understands.
"""
import math

from .printer import heater_for_key
from .protocol import MAX_COMMAND_LIST
from .text import clean, is_clean

MAX_LINE = 256
MAX_LINES = 50
MAX_JOG_MM = 1000.
MAX_EXTRUDE_MM = 200.
JOG_AXES = ("x", "y", "z")


class CommandRefused(Exception):
    pass


def number(value, what):
    """A finite float from a JSON number or numeric string."""
    if isinstance(value, bool):
        raise CommandRefused("%s must be a number" % (what,))
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise CommandRefused("%s must be a number" % (what,))
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandRefused("%s must be a number" % (what,))
    return float(value)


def gcode_lines(command):
    """Lines of a raw `command`: non-empty, bounded, one command per line."""
    if not isinstance(command, str) or not command.strip():
        raise CommandRefused("empty G-code command")
    lines = [l.strip() for l in command.replace("\r", "\n").split("\n")]
    lines = [l for l in lines if l]
    if len(lines) > MAX_LINES:
        raise CommandRefused("more than %d G-code lines" % (MAX_LINES,))
    for line in lines:
        if len(line) > MAX_LINE:
            raise CommandRefused("G-code line longer than %d characters"
                                 % (MAX_LINE,))
        if not is_clean(line):
            # Klipper echoes unknown commands to its console, and a
            # character it cannot encode there shuts it down
            raise CommandRefused("G-code line with control or invalid"
                                 " characters")
    return lines


def temperature_targets(data, heaters):
    """([(heater, target)], [ignored keys]) for a `temperature` command.

    heaters: {klipper heater name: (min_temp, max_temp)}.  Keys that are
    not heaters of this printer (`tool1` on one extruder, `jobId`) are
    ignored, as both production clients do; a heater of this printer with
    a non-number or a target outside its configured range refuses the
    command as a whole (nothing is set)."""
    targets, ignored = [], []
    for key, value in sorted(data.items()):
        name = heater_for_key(key)
        if name is None or name not in heaters:
            if key != "serialNumber":
                ignored.append(clean(key, 20))
            continue
        target = number(value, "temperature for %s" % (key,))
        low, high = heaters[name]
        if target != 0. and not (low <= target <= high):
            raise CommandRefused("%s target %.1f is outside %s's range"
                                 " %.0f-%.0f" % (key, target, name, low, high))
        targets.append((name, target))
    if not targets:
        raise CommandRefused("no heater of this printer in the command%s" % (
            " (ignored: %s)" % (", ".join(ignored),) if ignored else "",))
    return targets, ignored


def jog_script(body):
    """G-code for a `jogPrinter` body: the OctoPrint REST jog, home and
    extrude commands the OctoPrint plugin accepts."""
    if not isinstance(body, dict):
        raise CommandRefused("jog command is not an object")
    command = body.get("command")
    if command == "jog":
        moves = []
        for axis in JOG_AXES:
            if body.get(axis) is not None:
                dist = number(body[axis], "jog distance %s" % (axis,))
                if abs(dist) > MAX_JOG_MM:
                    raise CommandRefused("jog distance %.0f mm is too far"
                                         % (dist,))
                moves.append("%s%.3f" % (axis.upper(), dist))
        if not moves:
            raise CommandRefused("jog without a distance")
        speed = body.get("speed")
        feed = ""
        if speed not in (None, False, True):
            rate = number(speed, "jog speed")
            if rate <= 0.:
                raise CommandRefused("jog speed must be positive")
            feed = " F%.0f" % (rate,)
        return wrap_relative("G1 %s%s" % (" ".join(moves), feed))
    if command == "home":
        axes = body.get("axes") or []
        if not isinstance(axes, list) or not all(
                isinstance(a, str) and a.lower() in JOG_AXES for a in axes):
            raise CommandRefused("home needs axes among x, y and z")
        return "G28 " + " ".join(sorted(set(a.upper() for a in axes)))
    if command == "extrude":
        amount = number(body.get("amount"), "extrude amount")
        if abs(amount) > MAX_EXTRUDE_MM:
            raise CommandRefused("extrude amount %.0f mm is too much"
                                 % (amount,))
        return wrap_relative("M83\nG1 E%.3f F300" % (amount,))
    raise CommandRefused("unsupported jog command %s" % (clean(command, 20),))


def wrap_relative(moves):
    """Relative moves that leave the user's G-code state as it was."""
    return ("SAVE_GCODE_STATE NAME=polar_cloud_jog\nG91\n%s\n"
            "RESTORE_GCODE_STATE NAME=polar_cloud_jog" % (moves,))


def macro_list(macros, configured):
    """Macros offered to the cloud as custom commands.

    macros: {NAME: description}; configured: names from the config or None
    (then every macro not starting with "_").  Returns (the commandList of
    `customCommandList`, names left out past MAX_COMMAND_LIST); labels are
    kept short."""
    if configured is None:
        names = sorted(n for n in macros if not n.startswith("_"))
    else:
        names = [n.upper() for n in configured if n.upper() in macros]
    offered = [{"label": n[:32], "command": n}
               for n in names[:MAX_COMMAND_LIST]]
    return offered, names[MAX_COMMAND_LIST:]
