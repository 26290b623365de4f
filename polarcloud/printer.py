"""Facts about Klipper's printer objects that several parts rely on.

Klipper names heaters `extruder`, `extruder1`, `heater_bed`; Polar Cloud
names the same ones `tool0`, `tool1`, `bed` (docs/protocol.md#temperatures).
"""
import re

# print_stats.state while a job runs, and once it has ended
ACTIVE_PRINT_STATES = ("printing", "paused")
END_PRINT_STATES = ("complete", "cancelled", "error")

# (Polar key, Klipper heater, status target key): the heaters a status reports
HEATERS = (("tool0", "extruder", "targetTool0"),
           ("tool1", "extruder1", "targetTool1"),
           ("bed", "heater_bed", "targetBed"),
           ("chamber", "chamber", "targetChamber"))
TOOL_KEY = re.compile(r"^tool(\d{1,2})$")


def heater_for_key(key):
    """Klipper heater for a Polar temperature key (`tool3` too), else None."""
    for polar, klipper, _target in HEATERS:
        if key == polar:
            return klipper
    m = TOOL_KEY.match(key) if isinstance(key, str) else None
    if m is None:
        return None
    index = int(m.group(1))
    return "extruder" if index == 0 else "extruder%d" % (index,)
