#!/usr/bin/env bash
# The whole test suite: lint, Python tests, the runtime-only install (no torch), the Kotlin
# core's tests and lint. Sets up the environment first if needed (Python venv, Kotlin tools).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/bootstrap_kotlin.sh
VENV="${SFMOBILE_VENV:-.venv}"
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== pytest"
"$VENV/bin/python" -m pytest -q
echo "== runtime-only install"
bash scripts/runtime_smoke.sh
echo "== kotlin"
bash android_app/core/test.sh
