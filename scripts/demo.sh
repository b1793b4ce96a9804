#!/usr/bin/env bash
# The main job on an embedded default: set up, then generate a corpus, train, score through local Ray.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0
exec aei-batch demo "$@"
