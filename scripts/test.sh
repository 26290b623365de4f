#!/bin/bash
# Set up everything (Debian packages, the Klippy flavours, Moonraker, a
# headless browser for the registration page) and run the whole test
# suite.  Extra arguments go to pytest.  The suite mostly waits on real
# Klippy, Moonraker and the cloud emulator, so two workers (a file each at
# a time: module and session fixtures stay per worker) halve its time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup-dev.sh"
"$ROOT/scripts/setup-browser.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n 2 --dist loadfile "$@"
