#!/bin/bash
# Run the bundled demo (no printer needed): sets up .venv, then starts real
# Klippy + Moonraker + a local Polar Cloud emulator and shows the status
# stream the cloud receives until Ctrl-C.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup-dev.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py"
