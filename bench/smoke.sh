#!/bin/bash
# Smoke test of the A/B benchmark for CI: the quick mode (2 rounds of 3 s
# windows, command storm + download cycles, short latency tests; about
# 2¼ minutes on a 2-core machine). Fails only if the instrument could not
# measure or a Klippy failed, never on speed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/.venv/bin/python" "$ROOT/bench/ab_bench.py" --quick --check \
    --out "${BENCH_SMOKE_OUT:-$(mktemp -d /tmp/polar-bench-smoke-XXXX)}" "$@"
