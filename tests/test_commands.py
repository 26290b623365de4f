"""Cloud commands to checked G-code, and cloud text made safe (pure)."""
import pytest

from polarcloud import commands as C
from polarcloud.commands import CommandRefused
from polarcloud.printer import heater_for_key
from polarcloud.protocol import MAX_COMMAND_LIST
from polarcloud.text import clean, is_clean

HEATERS = {"extruder": (0., 250.), "heater_bed": (0., 130.)}


def test_gcode_lines_split_and_bounded():
    assert C.gcode_lines("G28\r\n  G1 X10 \n\nM105") == ["G28", "G1 X10",
                                                         "M105"]
    with pytest.raises(CommandRefused, match="more than 50"):
        C.gcode_lines("M105\n" * 51)
    with pytest.raises(CommandRefused, match="longer than 256"):
        C.gcode_lines("M117 " + "x" * 300)
    for empty in (None, "", "  \n ", 5, ["G28"]):
        with pytest.raises(CommandRefused, match="empty"):
            C.gcode_lines(empty)


@pytest.mark.parametrize("line", [
    "FUZZ_\udfff\ud800",        # lone surrogates: Klipper cannot echo them
    "M117 \x1b[2J", "G1\x00X1", "M117 \u2028x", "M117 tab\there"])
def test_gcode_with_invalid_characters_is_refused(line):
    with pytest.raises(CommandRefused, match="invalid characters"):
        C.gcode_lines(line)


def test_gcode_may_carry_printable_unicode():
    assert C.gcode_lines("M117 Grüße ✓") == ["M117 Grüße ✓"]


def test_temperature_sets_known_heaters_and_ignores_the_rest():
    targets, ignored = C.temperature_targets(
        {"serialNumber": "S", "bed": 55, "tool1": 0, "jobId": "0"}, HEATERS)
    assert targets == [("heater_bed", 55.)]
    assert sorted(ignored) == ["jobId", "tool1"]
    targets, _ = C.temperature_targets({"tool0": "205.5", "bed": 0},
                                       HEATERS)
    assert sorted(targets) == [("extruder", 205.5), ("heater_bed", 0.)]


@pytest.mark.parametrize("data, why", [
    ({"bed": 500}, "outside"),
    ({"bed": 55, "tool0": 900}, "outside"),   # refused whole: nothing set
    ({"bed": "hot"}, "must be a number"),
    ({"bed": True}, "must be a number"),
    ({"bed": float("nan")}, "must be a number"),
    ({"tool7": 200}, "no heater of this printer"),
    ({"serialNumber": "S"}, "no heater of this printer"),
])
def test_temperature_refusals(data, why):
    with pytest.raises(CommandRefused, match=why):
        C.temperature_targets(data, HEATERS)


@pytest.mark.parametrize("key, heater", [
    ("tool0", "extruder"), ("tool1", "extruder1"), ("tool12", "extruder12"),
    ("bed", "heater_bed"), ("chamber", "chamber"), ("tool", None),
    ("tool123", None), ("jobId", None), (7, None)])
def test_heater_for_key(key, heater):
    assert heater_for_key(key) == heater


def test_jog_keeps_gcode_state_and_checks_bounds():
    script = C.jog_script({"command": "jog", "x": 10, "z": "-0.5",
                           "speed": 3000})
    assert script.splitlines() == [
        "SAVE_GCODE_STATE NAME=polar_cloud_jog", "G91",
        "G1 X10.000 Z-0.500 F3000",
        "RESTORE_GCODE_STATE NAME=polar_cloud_jog"]
    assert C.jog_script({"command": "home", "axes": ["y", "x"]}) == "G28 X Y"
    for bad in ({"command": "jog", "x": 1e9}, {"command": "jog"},
                {"command": "home", "axes": ["e"]}, {"command": "explode"},
                {"command": "extrude", "amount": 500}, "jog"):
        with pytest.raises(CommandRefused):
            C.jog_script(bad)


def test_macro_list_is_capped_and_says_what_was_left_out():
    macros = {"M%02d" % i: "" for i in range(MAX_COMMAND_LIST + 3)}
    macros["_HIDDEN"] = ""
    offered, left_out = C.macro_list(macros, None)
    assert len(offered) == MAX_COMMAND_LIST
    assert left_out == ["M12", "M13", "M14"]
    offered, left_out = C.macro_list(macros, ["m01", "NOPE"])
    assert offered == [{"label": "M01", "command": "M01"}] and not left_out


def test_clean_text():
    assert clean("ok text") == "ok text"
    assert clean("a\udfffb\n") == "a\\udfffb\\n"
    assert is_clean(clean("x\ud800\x00\u2028" * 50))
    assert clean("x" * 500, 10) == "x" * 10 + "..."
    assert clean({"a": [1]}) == "{'a': [1]}"
    assert not is_clean("\udfff") and not is_clean(5) and is_clean("é✓")
