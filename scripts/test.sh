#!/bin/bash
# Set up everything (Debian packages, the Klippy flavours, Moonraker, a
# headless browser for the registration page) and run the whole test
# suite.  Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup-dev.sh"
"$ROOT/scripts/setup-browser.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
