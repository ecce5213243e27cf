#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install sfmobile with every extra
# (`.[dev]`: export, train, bench and the test tools; `pip install .` alone is the runtime).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SFMOBILE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
# torch==2.13.0 is pinned in pyproject.toml, so pip takes the CPU wheel and never a CUDA build.
# scripts/constraints.txt holds known-good versions: without it pip's resolver gives up on the
# extras' dependency graph (resolution-too-deep).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c scripts/constraints.txt -e ".[dev]"
