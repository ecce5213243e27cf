"""What a training run leaves in its folder so that it can resume: `train_state.pt` and
`metrics.jsonl`.

train_state.pt is a plain dict of tensors, numbers and strings (read back with
`torch.load(weights_only=True)`, which runs no code from the file):
    format, format_version, stage, step (optimizer steps done), run (JSON of the settings a resume
    must share), modules {name: state_dict}, ema {name: {parameter: tensor}}, optimizer, and
    optionally scaler (fp16's GradScaler) and data (JSON: each rank's --data stream position
    and counts, data/batches.py), absent in states written before they existed.
It is written to a temporary file in the same folder and renamed over the old one, so a run
killed mid-write leaves the previous state intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sfmobile.errors import CheckpointError, InputError
from sfmobile.weights.strict import load_strict

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
FORMAT = "sfmobile-train-state"
FORMAT_VERSION = 1


@dataclass
class TrainState:
    """A run's resumable state; `run` holds the settings a resumed run must repeat exactly."""

    stage: str
    step: int
    run: dict[str, Any]
    modules: dict[str, dict[str, torch.Tensor]]
    ema: dict[str, dict[str, torch.Tensor]]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] = field(default_factory=dict)
    data: list[dict[str, Any] | None] = field(default_factory=list)  # by rank


def save_state(state: TrainState, path: Path) -> None:
    """Write atomically: a temporary file beside `path`, flushed to disk, renamed over it."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stage": state.stage,
        "step": state.step,
        "run": json.dumps(state.run, sort_keys=True),
        "modules": state.modules,
        "ema": state.ema,
        "optimizer": state.optimizer,
        "scaler": state.scaler,
        "data": json.dumps(state.data),
    }
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def load_state(path: Path) -> TrainState:
    """Read a state written by save_state (tensors only: weights_only=True)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError...
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a readable training state ({first_line})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an sfmobile training state")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: training state format version {payload.get('format_version')!r}, "
            f"this sfmobile reads {FORMAT_VERSION}"
        )
    return TrainState(
        stage=payload["stage"],
        step=int(payload["step"]),
        run=json.loads(payload["run"]),
        modules=payload["modules"],
        ema=payload["ema"],
        optimizer=payload["optimizer"],
        scaler=payload.get("scaler", {}),
        data=json.loads(payload.get("data", "[]")),
    )


def check_same_run(state: TrainState, stage: str, run: dict[str, Any], path: Path) -> None:
    """Refuse to resume a state written by a different stage or with different settings (the
    data stream and the random draws would not continue where they stopped)."""
    if state.stage != stage:
        raise InputError(f"{path}: holds a {state.stage!r} run, not {stage!r}; use another --out")
    keys = sorted(set(run) | set(state.run))  # a setting left out is one at its default
    differing = {key: (state.run.get(key), run.get(key)) for key in keys}
    differing = {key: pair for key, pair in differing.items() if pair[0] != pair[1]}
    if differing:
        listed = ", ".join(
            f"{key} was {_shown(old)}, now {_shown(new)}" for key, (old, new) in differing.items()
        )
        raise InputError(
            f"{path}: cannot resume with different settings ({listed}); "
            "repeat the original ones or use another --out"
        )


def _shown(value: Any) -> str:
    """A setting in a refusal: None is one left out at its default (run_settings)."""
    return "the default" if value is None else repr(value)


def restore_modules(
    modules: dict[str, nn.Module], saved: dict[str, dict[str, torch.Tensor]], path: Path
) -> None:
    """Fill each trainable module from the state, strictly (every tensor, every shape)."""
    if set(saved) != set(modules):
        raise CheckpointError(
            f"{path}: holds modules {sorted(saved)}, this stage trains {sorted(modules)}"
        )
    for name, module in modules.items():
        load_strict(module, saved[name], f"{path} ({name})")


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step, appended (rank 0 only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")

    def drop_after(self, step: int) -> None:
        """Forget records past `step`: a resumed run repeats those steps and logs them again."""
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        self.path.write_text("".join(line + "\n" for line in kept))

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
