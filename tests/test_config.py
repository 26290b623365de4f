"""Bad [polar_cloud] options stop Klippy with a clear config error."""
import pytest

from harness import PrinterHarness

BAD_OPTIONS = [
    ("url: ftp://example.com", "must be an http:// or https:// URL"),
    ("printer_type: tricycle", "printer_type"),
    ("enable_debug: maybe", "enable_debug"),
    ("state_dir: @CONFIG@/polar", "which Moonraker serves"),
    ("state_dir: @GCODES@/keys", "which Moonraker serves"),
    ("bogus_option: 1", "bogus_option"),
]


@pytest.mark.parametrize("extra,message", BAD_OPTIONS)
def test_bad_option_is_a_config_error(installed, extra, message):
    h = PrinterHarness("http://127.0.0.1:9", moonraker=False)
    h.write_printer_cfg(extra.replace("@CONFIG@", h.config_dir).replace(
        "@GCODES@", h.gcodes))
    try:
        h.start(want=("error",))
        assert message in h.info["state_message"]
        assert "polar_cloud" in h.info["state_message"]
    finally:
        h.stop()
