"""The `[polar_cloud]` options, read once from printer.cfg.

`Settings` states every default once; the Klippy module reads each option
with these defaults and its bounds, and the rest of the package only reads
attributes.  Field names are the option names.
"""
import dataclasses
from typing import Optional, Tuple

from .camera import DEFAULT_MAX_SIZE

MiB = 1024 * 1024
DEFAULT_URL = "https://printer4.polar3d.com"
PRINTER_TYPES = ("cartesian", "delta", "belt")
ROTATIONS = (0, 90, 180, 270)


@dataclasses.dataclass(frozen=True)
class Settings:
    url: str = DEFAULT_URL
    state_dir: str = ""
    gcode_dir: Optional[str] = None      # <virtual_sdcard path>/polar_cloud
    enable_debug: bool = False
    printer_type: str = "cartesian"
    printer_make: str = ""
    # camera (empty: use the webcam Moonraker hands over)
    camera_url: str = ""
    snapshot_url: str = ""
    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotation: int = 0
    idle_snapshot_interval: float = 300.
    max_image_size: int = DEFAULT_MAX_SIZE   # bytes
    # cloud prints
    max_download_size: int = 1024        # MiB
    min_free_space: int = 100            # MiB kept free while downloading
    send_next_print: bool = False
    # status and commands
    status_interval: float = 10.
    allow_gcode_commands: bool = True
    custom_commands: Optional[Tuple[str, ...]] = None   # None: every macro

    @property
    def max_download_bytes(self):
        return self.max_download_size * MiB

    @property
    def min_free_bytes(self):
        return self.min_free_space * MiB

    @property
    def camera(self):
        """The camera configured in printer.cfg, or None."""
        if not (self.camera_url or self.snapshot_url):
            return None
        return {"stream_url": self.camera_url or None,
                "snapshot_url": self.snapshot_url or None,
                "flip_horizontal": self.flip_horizontal,
                "flip_vertical": self.flip_vertical,
                "rotation": self.rotation}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
