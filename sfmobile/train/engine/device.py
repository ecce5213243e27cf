"""Where a run computes (`--device`) and in what precision (`--precision`).

Device: cpu, cuda, cuda:N, or auto (cuda when torch sees a GPU, else cpu). Under torchrun a plain
`cuda` means this process's GPU, cuda:LOCAL_RANK, as torchrun's one-process-per-GPU launch
expects. The stage's modules (trainable and frozen), its tensors, the EMA and every batch live
there; the random draws of a step come from a generator on that device, so a CUDA run draws
different numbers from a CPU run (each run is still reproducible and resumable on its device).

Precision: fp32 runs as plain float32 (no autocast at all). bf16 and fp16 run the stage's loss
under torch.autocast: weights, optimizer state and EMA stay float32 (the "master" weights) and
the matrix products run in half precision. fp16 also scales the loss (torch.amp.GradScaler) so
small gradients do not flush to zero; a step whose gradients overflow is skipped and the scale
lowered. bf16 has float32's range and needs no scaling.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from sfmobile.errors import InputError

DEVICES = ("cpu", "cuda", "cuda:N", "auto")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, distributed: bool = False) -> torch.device:
    """The torch.device of a `--device` value; cuda when unavailable is a one-line error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: expected one of {', '.join(DEVICES)}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise InputError(f"--device {name}: expected one of {', '.join(DEVICES)}")
    if not torch.cuda.is_available():
        raise InputError(
            f"--device {name}: torch sees no CUDA GPU (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu"
        )
    if device.index is not None and distributed:
        raise InputError(
            f"--device {name} under torchrun: every process would use GPU {device.index}; "
            "use --device cuda (each process takes cuda:LOCAL_RANK)"
        )
    if device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if distributed else 0)
    if device.index >= torch.cuda.device_count():
        raise InputError(
            f"--device {name}: GPU {device.index} asked, torch sees {torch.cuda.device_count()}"
        )
    return device


def check_precision(name: str) -> None:
    if name not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context the loss runs in: nothing for fp32, torch.autocast for bf16 / fp16."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (None for fp32 and bf16, which need none)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


@contextlib.contextmanager
def computing_on(device: torch.device) -> Iterator[None]:
    """Tensors a stage creates without naming a device (noise, timesteps, token ids) are made on
    `device` (torch's default-device context); nothing changes on the CPU."""
    if device.type == "cpu":
        yield
        return
    with device:
        yield


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with every tensor on `device` (captions and other values as they are)."""
    if device.type == "cpu":
        return batch
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def move_stage(stage: Any, modules: list[torch.nn.Module], device: torch.device) -> None:
    """Put the stage's modules, and the tensors it keeps as attributes (a latent pool, a table
    of timesteps), on `device`, in place."""
    for module in modules:
        module.to(device)
    for name, value in list(vars(stage).items()):
        if isinstance(value, torch.Tensor):
            setattr(stage, name, value.to(device))
