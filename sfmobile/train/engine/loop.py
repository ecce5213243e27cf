"""The training loop every stage shares (VAE, teacher, step distillation, decoder compression).

A stage says what it trains and how its loss is computed; the Trainer does the rest, the same
way on one process or under `torchrun --nproc_per_node=N` (NCCL on GPUs, gloo on the CPU):

- device and precision (engine/device.py): the stage's modules and tensors, the EMA and every
  batch on `device`; the loss under autocast for bf16 / fp16 (float32 master weights, fp16 with
  a loss scaler); `gradient_checkpointing` recomputes each UNet unit in backward
  (engine/checkpointing.py).
- data: rank r of N reads scenes r, r + N, ... of the train split
  (train/scenes/torch_data.SceneStream), or the stage's own batches (--data);
  `batch_size` per rank per micro-batch, `grad_accumulation` micro-batches per optimizer step.
  A resumed run restarts the scenes at step * batch_size * grad_accumulation, and a --data
  stream at the position saved with the checkpoint (data/batches.py).
- randomness: `loss` gets a torch.Generator (on the run's device) seeded by (seed, rank, step,
  micro-batch) and must draw all of its noise, timesteps and dropout from it, so a resumed run
  continues bit for bit.
- optimisation: AdamW over the trainable modules' parameters, warm-up then constant or cosine
  learning rate, gradient-norm clipping, optional EMA (the EMA weights are what `finish` sees).
  The gradient of a step is the mean over its micro-batches (each loss divided by their
  number) and, under torchrun, over the ranks (DDP all-reduces once, on the last micro-batch).
- files (rank 0 only): out/train_state.pt every checkpoint_every steps and at the end (see
  train_state.py), out/metrics.jsonl every log_every steps (and TensorBoard scalars in
  out/tensorboard/ when TensorBoard is installed), then `stage.finish(out)`.
- interruption: Ctrl-C or SIGTERM finishes the current step, writes train_state.pt and returns;
  re-running the same command resumes. (A second Ctrl-C aborts at once.)
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader

from sfmobile.errors import InputError, SfmobileError
from sfmobile.train.data.batches import StreamOptions
from sfmobile.train.engine import device as devices
from sfmobile.train.engine import distributed
from sfmobile.train.engine.checkpointing import checkpointing, unet_units
from sfmobile.train.engine.ema import Ema
from sfmobile.train.engine.metrics import Scalars, Window, data_fields, data_totals
from sfmobile.train.engine.run_control import ProgressBar, StopRequest
from sfmobile.train.engine.train_config import (
    TrainConfig,
    TrainResult,
    continuation_seed,
    step_generator,
)
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


class TrainingError(SfmobileError):
    """Training cannot go on (the loss stopped being finite); the last good state is kept."""


class Trainer:
    """Runs one Stage under one TrainConfig (see the module docstring)."""

    def __init__(self, stage: Stage, config: TrainConfig, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.ranks = distributed.start(config.device)
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
        frozen = stage.frozen()
        for module in frozen.values():
            module.eval().requires_grad_(False)
        for module in self.modules.values():
            module.train()
        self.device = self.ranks.device
        self.all_modules = [*self.modules.values(), *frozen.values()]
        devices.move_stage(stage, self.all_modules, self.device)
        if config.gradient_checkpointing and not unet_units(self.modules):
            raise InputError(f"--gradient-checkpointing: {stage.name} trains no UNet to checkpoint")
        if config.data_workers and not _reads_a_stream(stage):
            raise InputError(
                f"--data-workers {config.data_workers}: {stage.name} reads no --data images for "
                "workers to decode (the scenes are drawn in the training process)"
            )
        self.scaler = devices.grad_scaler(self.device, config.precision)
        self.data_state: dict | None = None  # the --data stream after the last batch trained
        self.params = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.ema = Ema(self.modules, config.ema_decay) if config.ema_decay > 0 else None

    def run_settings(self) -> dict[str, Any]:
        """Settings a resumed run must share with the run it continues."""
        c = self.config
        keys = ("batch_size", "seed", "data_seed", "image_size")
        # Left out at their defaults, so that states written before they existed still resume.
        optional = {"grad_accumulation": 1, "data_workers": 0}
        changed = {k: getattr(c, k) for k, default in optional.items() if getattr(c, k) != default}
        own = getattr(self.stage, "run_settings", {})  # e.g. a stage's own data source
        run = {k: getattr(c, k) for k in keys}
        return {**run, "world_size": self.ranks.world_size, **changed, **own}

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
            plain = not config.gradient_checkpointing
            with contextlib.nullcontext() if plain else checkpointing(self.modules):
                step, interrupted = self._train(step, end)
        finished = step >= config.steps
        if finished and ranks.is_main:
            if self.ema is not None:
                self.ema.copy_to_modules()
            devices.move_stage(self.stage, self.all_modules, torch.device("cpu"))
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
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        if len(state.data) == self.ranks.world_size:
            self.data_state = state.data[self.ranks.rank]
        if self.ranks.is_main:
            self.metrics.drop_after(state.step)
            self.console.print(f"resuming {self.stage.name} from step {state.step}")
        return state.step

    def _save(self, step: int) -> None:
        data = distributed.gather(self.data_state, self.ranks)  # every rank's stream position
        if self.ranks.is_main:
            state = TrainState(
                stage=self.stage.name,
                step=step,
                run=self.run_settings(),
                modules={name: m.state_dict() for name, m in self.modules.items()},
                ema=self.ema.state_dict() if self.ema is not None else {},
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict() if self.scaler is not None else {},
                data=data if any(d is not None for d in data) else [],
            )
            save_state(state, self.state_path)

    def _batches(self, step: int):
        """This rank's micro-batches from optimizer step `step` on: the stage's own (a stage
        with a `batches(start, batch_size, rank, world_size[, stream])` method, e.g. one
        reading --data; `stream` gets the worker count and the saved position) or the scenes."""
        config, ranks = self.config, self.ranks
        start = step * config.batch_size * config.grad_accumulation
        own = getattr(self.stage, "batches", None)
        if own is not None:
            extra = {}
            if _reads_a_stream(self.stage):
                extra["stream"] = StreamOptions(config.data_workers, self.data_state)
            return own(start, config.batch_size, ranks.rank, ranks.world_size, **extra)
        stream = SceneStream(
            split="train",
            seed=config.data_seed,
            size=config.image_size,
            rank=ranks.rank,
            world_size=ranks.world_size,
            start=start,
        )
        return iter(DataLoader(stream, batch_size=config.batch_size))

    def _train(self, step: int, end: int) -> tuple[int, bool]:
        """Optimizer steps step..end-1; returns (steps done, whether a stop request ended it)."""
        config = self.config
        skips = getattr(self.stage, "skips_blocks", False)
        wrapped = {name: distributed.wrap(m, self.ranks, skips) for name, m in self.modules.items()}
        batches = self._batches(step)
        window = Window()
        hidden = not self.ranks.is_main
        scalars = Scalars(self.out, enabled=self.ranks.is_main)
        stopping = False
        with (
            StopRequest() as stop,
            ProgressBar(self.console, self.stage.name, step, end, hidden) as bar,
        ):
            while step < end:
                micro = [self._next_batch(batches) for _ in range(config.grad_accumulation)]
                stopping, values = self._step(step, wrapped, micro, stop)
                step += 1
                window.add(values, sum(len(b["index"]) for b in micro) * self.ranks.world_size)
                if step % config.log_every == 0 or step == end:
                    record = self._log(step, window, micro[-1])
                    scalars.add(record)
                    bar.update(step, record["loss"], record["samples_per_second"])
                else:
                    bar.update(step)
                if step % config.checkpoint_every == 0 or step == end or stopping:
                    self._save(step)
                if stopping:
                    break
        scalars.close()
        self._report_data()
        if stopping and self.ranks.is_main:
            self.console.print(f"stopped at step {step}; run again to resume")
        return step, stopping

    def _next_batch(self, batches) -> Batch:
        """The next micro-batch on the run's device, its --data stream state kept aside."""
        batch = next(batches)
        if "data_state" in batch:
            batch = dict(batch)
            self._keep_data_state(batch.pop("data_state"))
        return devices.move_batch(batch, self.device)

    def _keep_data_state(self, data_state: dict) -> None:
        """Remember where this rank's --data stream is; warn of shards newly found damaged."""
        before = data_totals([self.data_state])
        self.data_state = data_state
        seen = set(before.corrupt_shards) if before is not None else set()
        for shard in data_totals([data_state]).corrupt_shards:
            if shard not in seen:
                self.console.print(f"warning: --data shard skipped from the damage on: {shard}")

    def _report_data(self) -> None:
        """On rank 0, what the --data readers of every rank read and skipped in the run."""
        totals = data_totals(distributed.gather(self.data_state, self.ranks))
        if totals is not None and self.ranks.is_main:
            self.console.print(f"--data: {totals.summary()}")

    def _step(
        self, step: int, wrapped: dict[str, nn.Module], micro: list[Batch], stop: StopRequest
    ) -> tuple[bool, dict[str, float]]:
        """One optimizer step over its micro-batches; returns (stop after it, its metrics).
        Every rank agrees on stopping (and on a non-finite loss) before the weights change."""
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        self.optimizer.zero_grad(set_to_none=True)
        window, finite = Window(), True
        for index, batch in enumerate(micro):
            loss, metrics = self._micro_step(step, index, wrapped, batch, len(micro))
            finite = finite and bool(torch.isfinite(loss))
            window.add({"loss": loss.item(), **metrics}, 0)
        stopping, diverged = distributed.any_rank([stop.requested, not finite], self.ranks)
        if diverged:
            raise TrainingError(
                f"{self.stage.name}: loss is not finite at step {step}; the last good state "
                f"is {self.state_path} (try a lower --lr)"
            )
        clip = config.grad_clip or float("inf")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when fp16 gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(step)
        return stopping, {**window.means(), "grad_norm": grad_norm.item()}

    def _micro_step(
        self, step: int, index: int, wrapped: dict[str, nn.Module], batch: Batch, count: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward and backward of one micro-batch (gradients add up in .grad; under DDP they
        are all-reduced on the last one only); returns its loss and metrics."""
        config, rank = self.config, self.ranks.rank
        generator = step_generator(config.seed, rank, step, index, self.device)
        syncing = [distributed.no_sync(m) for m in wrapped.values()] if index < count - 1 else []
        with contextlib.ExitStack() as context:
            for entered in syncing:
                context.enter_context(entered)
            with devices.computing_on(self.device), devices.autocast(self.device, config.precision):
                loss, metrics = self.stage.loss(wrapped, batch, step, generator)
            loss = loss.float()
            share = loss / count if count > 1 else loss  # the step's gradient: their mean
            (self.scaler.scale(share) if self.scaler is not None else share).backward()
        return loss, metrics

    def _log(self, step: int, window: Window, batch: Batch) -> dict[str, Any]:
        """Append the window's means (over its steps and over ranks), its speed and the --data
        totals to metrics.jsonl; under torchrun also every rank's weight fingerprint and batch
        indices. Returns the record."""
        ranks = self.ranks
        record: dict[str, Any] = {"step": step, "lr": self.config.lr_at(step - 1)}
        record.update(distributed.mean_over_ranks(window.means(), ranks))
        record.update(window.timing())
        totals = data_totals(distributed.gather(self.data_state, ranks))
        if totals is not None:
            record.update(data_fields(totals))
        if ranks.distributed:
            fingerprint = distributed.params_sha256(self.modules)
            record["params_sha256_by_rank"] = distributed.gather(fingerprint, ranks)
            record["batch_indices_by_rank"] = distributed.gather(batch["index"].tolist(), ranks)
        if ranks.is_main:
            self.metrics.append(record)
        window.reset()
        return record


def _reads_a_stream(stage: Stage) -> bool:
    """Whether the stage's own batches take a data/batches.StreamOptions (--data-workers and a
    saved stream position): a `batches` method with a `stream` parameter (stage.py)."""
    own = getattr(stage, "batches", None)
    return own is not None and "stream" in inspect.signature(own).parameters
