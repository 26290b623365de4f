#!/bin/bash
# Set up everything (Debian packages, .venv with real Klippy + Moonraker)
# and run the whole test suite.  Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup-dev.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
