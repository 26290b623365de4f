#!/bin/bash
# Run the bundled demo (no printer needed): builds .venv if needed (only
# that: the demo uses no other Klippy), then starts real Klippy + Moonraker
# + a local Polar Cloud emulator and shows the messages the cloud receives
# until Ctrl-C or SIGTERM, which stop everything and delete its temp folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup-dev.sh" dev
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py"
