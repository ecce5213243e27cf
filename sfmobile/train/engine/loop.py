"""The training loop every stage shares (VAE, teacher, step distillation, decoder compression).

A stage says what it trains and how its loss is computed; the Trainer does the rest, the same
way on one process or under `torchrun --nproc_per_node=N` (gloo, CPU):

- data: rank r of N reads scenes r, r + N, ... of the train split
  (train/scenes/torch_data.SceneStream), `batch_size` per rank per step; a resumed run restarts
  the stream at step * batch_size.
- randomness: `loss` gets a torch.Generator seeded by (seed, rank, step) and must draw all of its
  noise, timesteps and dropout from it, so a resumed run continues bit for bit.
- optimisation: AdamW over the trainable modules' parameters, warm-up then constant or cosine
  learning rate, gradient-norm clipping, optional EMA (the EMA weights are what `finish` sees).
- files (rank 0 only): out/train_state.pt every checkpoint_every steps and at the end (see
  train_state.py), out/metrics.jsonl every log_every steps, then `stage.finish(out)`.
- interruption: Ctrl-C or SIGTERM finishes the current step, writes train_state.pt and returns;
  re-running the same command resumes. (A second Ctrl-C aborts at once.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader

from sfmobile.errors import InputError, SfmobileError
from sfmobile.train.engine import distributed
from sfmobile.train.engine.ema import Ema
from sfmobile.train.engine.run_control import ProgressBar, StopRequest
from sfmobile.train.engine.train_state import (
    METRICS_FILE,
    STATE_FILE,
    MetricsLog,
    TrainState,
    check_same_run,
    load_state,
    restore_modules,
    save_state,
)
from sfmobile.train.scenes.torch_data import SceneStream
from sfmobile.train.stages.stage import Batch, Stage

LR_SCHEDULES = ("constant", "cosine")


class TrainingError(SfmobileError):
    """Training cannot go on (the loss stopped being finite); the last good state is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """One run. batch_size is per rank; stop_after ends the run early (checkpoint, no finish),
    as an interruption would; threads sets torch's intra-op threads (None: torch's default)."""

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

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "checkpoint_every", "log_every")
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


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator of one rank's step: independent streams for every (seed, rank, step)."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class Trainer:
    """Runs one Stage under one TrainConfig (see the module docstring)."""

    def __init__(self, stage: Stage, config: TrainConfig, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.ranks = distributed.start()
        continues = getattr(stage, "continues", None)
        if continues is not None:
            given = config.seed
            config = replace(
                config,
                seed=continuation_seed(config.seed, continues),
                data_seed=continuation_seed(config.data_seed, continues),
            )
            if self.ranks.is_main:
                self.console.print(
                    f"continuing trained weights: batches drawn with seed {config.seed} "
                    f"(seed {given} mixed with their fingerprint)"
                )
        self.stage, self.config = stage, config
        self.out = Path(config.out)
        self.state_path = self.out / STATE_FILE
        self.metrics = MetricsLog(self.out / METRICS_FILE)
        self.modules = stage.trainable()
        for module in stage.frozen().values():
            module.eval().requires_grad_(False)
        for module in self.modules.values():
            module.train()
        self.params = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.ema = Ema(self.modules, config.ema_decay) if config.ema_decay > 0 else None

    def run_settings(self) -> dict[str, Any]:
        """Settings a resumed run must share with the run it continues."""
        c = self.config
        keys = ("batch_size", "seed", "data_seed", "image_size")
        own = getattr(self.stage, "run_settings", {})  # e.g. a stage's own data source
        return {**{k: getattr(c, k) for k in keys}, "world_size": self.ranks.world_size, **own}

    def run(self) -> TrainResult:
        """Resume if out/train_state.pt exists, train up to config.steps (or stop_after, or a
        stop request), and on reaching config.steps call stage.finish on rank 0."""
        config, ranks = self.config, self.ranks
        if config.threads:
            torch.set_num_threads(config.threads)
        if ranks.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        step = self._resume()
        end = min(config.steps, config.stop_after or config.steps)
        interrupted = False
        if step < end:
            step, interrupted = self._train(step, end)
        finished = step >= config.steps
        if finished and ranks.is_main:
            if self.ema is not None:
                self.ema.copy_to_modules()
            self.stage.finish(self.out)
        distributed.stop(ranks)
        return TrainResult(step=step, finished=finished, interrupted=interrupted)

    def _resume(self) -> int:
        """Load train_state.pt if there is one; return the number of steps already done."""
        if not self.state_path.exists():
            if self.ranks.is_main:
                self.metrics.drop_after(0)
            return 0
        state = load_state(self.state_path)
        check_same_run(state, self.stage.name, self.run_settings(), self.state_path)
        restore_modules(self.modules, state.modules, self.state_path)
        self.optimizer.load_state_dict(state.optimizer)
        if self.ema is not None and state.ema:
            self.ema.load_state_dict(state.ema, str(self.state_path))
        if self.ranks.is_main:
            self.metrics.drop_after(state.step)
            self.console.print(f"resuming {self.stage.name} from step {state.step}")
        return state.step

    def _save(self, step: int) -> None:
        if self.ranks.is_main:
            state = TrainState(
                stage=self.stage.name,
                step=step,
                run=self.run_settings(),
                modules={name: m.state_dict() for name, m in self.modules.items()},
                ema=self.ema.state_dict() if self.ema is not None else {},
                optimizer=self.optimizer.state_dict(),
            )
            save_state(state, self.state_path)

    def _batches(self, step: int):
        """This rank's batches from optimizer step `step` on: the stage's own (a stage with a
        `batches(start, batch_size, rank, world_size)` method, e.g. one reading --data) or
        the synthetic scenes."""
        config, ranks = self.config, self.ranks
        own = getattr(self.stage, "batches", None)
        if own is not None:
            return own(step * config.batch_size, config.batch_size, ranks.rank, ranks.world_size)
        stream = SceneStream(
            split="train",
            seed=config.data_seed,
            size=config.image_size,
            rank=ranks.rank,
            world_size=ranks.world_size,
            start=step * config.batch_size,
        )
        return iter(DataLoader(stream, batch_size=config.batch_size))

    def _train(self, step: int, end: int) -> tuple[int, bool]:
        """Optimizer steps step..end-1; returns (steps done, whether a stop request ended it)."""
        config = self.config
        skips = getattr(self.stage, "skips_blocks", False)
        wrapped = {name: distributed.wrap(m, self.ranks, skips) for name, m in self.modules.items()}
        batches = self._batches(step)
        window = _Window()
        hidden = not self.ranks.is_main
        with (
            StopRequest() as stop,
            ProgressBar(self.console, self.stage.name, step, end, hidden) as bar,
        ):
            while step < end:
                batch = next(batches)
                stopping, values = self._step(step, wrapped, batch, stop)
                step += 1
                window.add(values)
                logged = None
                if step % config.log_every == 0 or step == end:
                    logged = self._log(step, window, batch)
                bar.update(step, logged)
                if step % config.checkpoint_every == 0 or step == end or stopping:
                    self._save(step)
                if stopping:
                    if self.ranks.is_main:
                        self.console.print(f"stopped at step {step}; run again to resume")
                    return step, True
        return step, False

    def _step(
        self, step: int, wrapped: dict[str, nn.Module], batch: Batch, stop: StopRequest
    ) -> tuple[bool, dict[str, float]]:
        """One optimizer step; returns (stop after it, its metrics). Every rank agrees on
        stopping (and on a non-finite loss) before the weights change."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(step)
        generator = step_generator(self.config.seed, self.ranks.rank, step)
        loss, metrics = self.stage.loss(wrapped, batch, step, generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        finite = bool(torch.isfinite(loss))
        stopping, diverged = distributed.any_rank([stop.requested, not finite], self.ranks)
        if diverged:
            raise TrainingError(
                f"{self.stage.name}: loss is not finite at step {step}; the last good state "
                f"is {self.state_path} (try a lower --lr)"
            )
        clip = self.config.grad_clip or float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(step)
        return stopping, {"loss": loss.item(), "grad_norm": grad_norm.item(), **metrics}

    def _log(self, step: int, window: _Window, batch: Batch) -> float:
        """Append the window's means (over its steps and over ranks) to metrics.jsonl; under
        torchrun also every rank's weight fingerprint and batch indices. Returns the loss."""
        ranks = self.ranks
        record: dict[str, Any] = {"step": step, "lr": self.config.lr_at(step - 1)}
        record.update(distributed.mean_over_ranks(window.means(), ranks))
        record["seconds_per_step"] = window.seconds_per_step()
        if ranks.distributed:
            fingerprint = distributed.params_sha256(self.modules)
            record["params_sha256_by_rank"] = distributed.gather(fingerprint, ranks)
            record["batch_indices_by_rank"] = distributed.gather(batch["index"].tolist(), ranks)
        if ranks.is_main:
            self.metrics.append(record)
        window.reset()
        return record["loss"]


class _Window:
    """Metric sums and wall time since the last log record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.start = time.perf_counter()

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def means(self) -> dict[str, float]:
        return {key: total / self.count for key, total in self.sums.items()}

    def seconds_per_step(self) -> float:
        return (time.perf_counter() - self.start) / self.count
