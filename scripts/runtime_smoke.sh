#!/usr/bin/env bash
# The runtime-only install (README "Runtime only"): `pip install .` with no extras, into a venv of
# its own, must not pull torch, must generate from ONNX and TFLite bundles (exported here by the
# full environment) the very images the full environment generates, and `sfmobile export` must
# name the extra to install. Two or three minutes (pip, the TFLite export). Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
VENV="${SFMOBILE_VENV:-.venv}"  # the full environment (scripts/bootstrap.sh)
[[ "$VENV" == /* ]] || VENV="$REPO/$VENV"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sfmobile-runtime-smoke.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
RUNTIME="$WORK/venv"
# The runtime venv must import only what it installed, never a source tree on PYTHONPATH.
runtime() { env -u PYTHONPATH "$RUNTIME/bin/$1" "${@:2}"; }
fail() {
    echo "runtime smoke: FAIL: $*" >&2
    exit 1
}
PIP=(-m pip --disable-pip-version-check --quiet)

echo "== runtime-only install (pip install . without extras)"
# From a copy of what the wheel holds, so the build leaves no build/ or egg-info in the tree.
mkdir "$WORK/src"
cp -RL pyproject.toml README.md sfmobile "$WORK/src/"  # -L: data/manifest.schema.json is a link
cd "$WORK/src"
python3 -m venv "$RUNTIME"
runtime python "${PIP[@]}" install --dry-run --report "$WORK/plan.json" . ||
    fail "pip cannot resolve the runtime-only install"
runtime python - "$WORK/plan.json" <<'EOF' || fail "the runtime-only install would pull the packages above"
import json, sys
names = {item["metadata"]["name"].lower() for item in json.load(open(sys.argv[1]))["install"]}
heavy = sorted(names & {"torch", "litert-torch", "ai-edge-quantizer", "diffusers", "transformers"})
print(f"{len(names)} packages; torch and the exporters among them: {heavy or 'none'}")
sys.exit(1 if heavy else 0)
EOF
runtime python "${PIP[@]}" install . || fail "pip install . failed"
if runtime python -m pip show torch >/dev/null 2>&1; then
    fail "torch got installed"
fi
echo "installed: $(du -sh "$RUNTIME" | cut -f1) (the venv)"

echo "== tiny ONNX and TFLite bundles: their images from the full and the runtime-only install"
cd "$WORK"  # so nothing imports the source tree instead of the installed package
"$VENV/bin/sfmobile" random-model --preset tiny --out "$WORK/checkpoint" >/dev/null
for format in onnx tflite; do
    "$VENV/bin/sfmobile" export --model "$WORK/checkpoint" --format "$format" --precision fp32 \
        --height 64 --width 64 --out "$WORK/$format" >"$WORK/export.log" 2>&1 ||
        { cat "$WORK/export.log"; fail "the full environment's $format export failed"; }
    GENERATE=(generate --model "$WORK/$format" --backend "$format" --prompt "a red circle" --seed 3)
    "$VENV/bin/sfmobile" "${GENERATE[@]}" --out "$WORK/full-$format.png" 2>/dev/null ||
        fail "sfmobile generate --backend $format failed in the full environment"
    runtime sfmobile "${GENERATE[@]}" --out "$WORK/runtime-$format.png" ||
        fail "sfmobile generate --backend $format failed in the runtime-only install"
    runtime python - "$WORK/full-$format.png" "$WORK/runtime-$format.png" <<'EOF' ||
import sys
import numpy as np
from PIL import Image
full, runtime = (Image.open(path) for path in sys.argv[1:])
same = full.text == runtime.text and np.array_equal(np.asarray(full), np.asarray(runtime))
print(f"{sys.argv[2]} {'matches' if same else 'DIFFERS from'} the full environment's image")
sys.exit(0 if same else 1)
EOF
        fail "the $format images differ"
done
set +e
message="$(runtime sfmobile export --model "$WORK/checkpoint" --format onnx \
    --precision fp32 --out "$WORK/no-bundle" 2>&1)"
code=$?
set -e
echo "sfmobile export (exit $code): $message"
[ "$code" = 2 ] && [[ "$message" == *'pip install "sfmobile[export]"'* ]] ||
    fail "sfmobile export did not exit 2 naming the export extra"
echo "runtime smoke: OK"
