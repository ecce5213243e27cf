#!/usr/bin/env bash
# The whole test suite: lint, Python tests. Sets up the environment first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${SFMOBILE_VENV:-.venv}"
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== pytest"
"$VENV/bin/python" -m pytest -q
