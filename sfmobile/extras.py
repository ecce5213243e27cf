"""Which `pip install "sfmobile[EXTRA]"` brings a module the runtime-only install leaves out.

`pip install sfmobile` is the runtime: bundles on ONNX Runtime and LiteRT, the tokenizer, the
portable noise. PyTorch and the exporters come with extras (pyproject.toml), so a command that
imports one without it fails with one line naming the extra (cli/app.py), not a traceback.
"""

from __future__ import annotations

# Top-level module -> the extra that installs it.
EXTRA_OF_MODULE = {
    "torch": "export",
    "safetensors": "export",
    "onnxsim": "export",
    "onnxslim": "export",
    "onnxconverter_common": "export",
    "onnxscript": "export",
    "litert_torch": "export",
    "ai_edge_quantizer": "export",
    "webdataset": "train",
    "matplotlib": "bench",
    "diffusers": "bench",
    "transformers": "bench",
}
# Commands (by function name) whose own extra brings everything they import, torch included:
# `train vae|teacher|...` (train_*), `train-decoder`, `distill`, `cache-latents`, `evaluate`.
TRAIN_COMMANDS = ("train_", "distill", "cache_latents", "evaluate")
BENCH_COMMANDS = ("bench",)


def extra_of(module: str, command: str) -> str:
    """The extra to install for `module`, missing while `command` (a function name) runs."""
    if command.startswith(TRAIN_COMMANDS):
        return "train"
    if command.startswith(BENCH_COMMANDS):
        return "bench"
    return EXTRA_OF_MODULE[module]


def missing_extra(error: ImportError, command: str) -> str | None:
    """The one-line message for `command` (its function name) failing on a module that an extra
    installs; None when the error is anything else (a bug, or a broken installation)."""
    if not isinstance(error, ModuleNotFoundError):
        return None
    module = (error.name or "").split(".")[0]
    if module not in EXTRA_OF_MODULE:
        return None
    extra = extra_of(module, command)
    return f'this command needs {module}, which is not installed: pip install "sfmobile[{extra}]"'
