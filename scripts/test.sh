#!/usr/bin/env bash
# Set up with the test tools, then run every check CI runs: lint, format, types, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy aei_batch
echo "== pytest"; python -m pytest -ra --durations=15 "$@"
