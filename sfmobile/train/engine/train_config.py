"""The settings of one training run (TrainConfig, with its learning-rate schedule), what a run
returns, and the seeds a run draws its batches and noise with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sfmobile.errors import InputError
from sfmobile.train.data.batches import StreamOptions
from sfmobile.train.engine import device as devices

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """One run. batch_size is per rank and micro-batch (an optimizer step sees batch_size x
    grad_accumulation x ranks samples); stop_after ends the run early (checkpoint, no finish),
    as an interruption would; threads sets torch's intra-op threads (None: torch's default);
    device, precision: engine/device.py; data_workers: --data decoding processes per rank."""

    out: Path
    steps: int
    batch_size: int = 16
    lr: float = 1e-4
    seed: int = 0
    data_seed: int = 0
    image_size: int = 64
    checkpoint_every: int = 200
    log_every: int = 10
    grad_clip: float | None = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    ema_decay: float = 0.0
    stop_after: int | None = None
    threads: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    grad_accumulation: int = 1
    gradient_checkpointing: bool = False
    data_workers: int = 0

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "checkpoint_every", "log_every", "grad_accumulation")
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if not self.lr > 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")
        if self.image_size not in (64, 128):
            raise InputError(f"--image-size must be 64 or 128, got {self.image_size}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.stop_after is not None and self.stop_after < 1:
            raise InputError(f"--stop-after must be >= 1, got {self.stop_after}")
        devices.check_precision(self.precision)
        StreamOptions(self.data_workers)  # checks the count

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step `step` (0-based): linear warm-up, then the schedule."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass(frozen=True)
class TrainResult:
    step: int  # optimizer steps done
    finished: bool  # reached config.steps and wrote the stage's result
    interrupted: bool = False  # ended early by Ctrl-C / SIGTERM (state saved)


def continuation_seed(seed: int, fingerprint: str) -> int:
    """The seed of a run that continues trained weights (a stage whose `continues` is their
    weights_fingerprint; `--init` on the command line): `seed` mixed with that fingerprint.
    Scenes and noise are drawn by (seed, step) from step 0 in every run, so continuing with
    the seed that trained the weights would replay that run's scenes, noise, timesteps and
    caption dropout instead of showing new ones (and its training loss would read low on
    batches the weights have already fitted)."""
    mixed = np.random.SeedSequence([seed, int(fingerprint[:16], 16)]).generate_state(1)
    return int(mixed[0])


def step_generator(
    seed: int, rank: int, step: int, micro: int = 0, device: torch.device | None = None
) -> torch.Generator:
    """The generator of one rank's micro-batch: independent streams for every (seed, rank, step,
    micro-batch); micro-batch 0 draws what a step without accumulation draws."""
    entropy = [seed, rank, step] + ([micro] if micro else [])
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
    return torch.Generator(device or "cpu").manual_seed(int(state))
