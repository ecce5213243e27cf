"""The contract between the Trainer (engine/loop.py) and a training stage (vae.py, teacher.py,
distill.py, decoder.py beside this file).

A stage is any object with these members; it need not inherit from Stage. Build it fully in
__init__ (fresh modules seeded from the run's seed, frozen modules loaded from their folders), so
that constructing it again on resume gives the same modules before train_state.pt is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

# One batch as the default collate makes it: "image" float32 [B, 3, S, S] in [-1, 1],
# "caption" list[str] of length B, "index" int64 [B] (scene indices, for logs).
Batch = dict[str, Any]


class Stage(Protocol):
    """What one training stage provides. The Trainer calls, in order: trainable() and frozen()
    once; loss(...) once per step; finish(out_dir) once, on rank 0, after the last step.

    name: names the stage in logs and in train_state.pt (a resume must be the same stage).
    trainable(): {name: module} to optimise (one AdamW over all their parameters); the Trainer
        saves and restores their state dicts, puts them in train mode and keeps their EMA.
        Under torchrun only calls through a module's forward() all-reduce its gradients, so
        forward() must do the differentiable work (wrap a multi-method module, see
        vae.VaeReconstruction).
    frozen(): {name: module} used but not trained: put in eval mode with requires_grad off,
        never saved (the stage loads them again on resume).
    loss(models, batch, step, generator): (scalar loss of this rank's batch, metrics to log as
        {name: float}). `models` are the trainable modules as the Trainer runs them
        (DistributedDataParallel-wrapped under torchrun): call those, not the stage's own
        references. Draw every random number from `generator` (seeded by seed, rank, step and
        micro-batch, on the run's --device), never from torch's global generator, so a resumed
        run repeats the same draws. The Trainer runs it with torch's default device set to the
        run's device (tensors made without a device land there) and, for --precision bf16 /
        fp16, under autocast.
    finish(out_dir): write the stage's result under out_dir (e.g. out_dir/"teacher"); by then
        the trainable modules hold the final weights (the EMA's, when the run keeps one).
    batches (optional method): batches(start, batch_size, rank, world_size[, stream]) -> an
        endless iterator of this rank's batches from its sample `start` on, for a stage that
        reads its own data (real_data.RealData: --data or --cache, for unet, distill and
        decoder); without it the Trainer reads the scenes. With a `stream` parameter it gets
        data/batches.StreamOptions (--data-workers and the position saved with the checkpoint,
        for image_batches).
    Tensors the stage keeps as attributes (a latent pool, a timestep table) are moved to the
        run's device with its modules (engine/device.move_stage).
    run_settings (optional attribute): {name: JSON value} a resumed run must repeat (a stage
        with its own batches names its data and image size here).
    skips_blocks (optional attribute): True when a step may leave some trainable parameters
        unused (robust training skips blocks); DDP then looks for them every step.
    continues (optional attribute): the weights_fingerprint of trained weights the stage
        continues, or None; the Trainer then draws batches with loop.continuation_seed(seed,
        continues), so a continuation does not replay the batches that trained them.
    """

    name: str

    def trainable(self) -> dict[str, nn.Module]: ...

    def frozen(self) -> dict[str, nn.Module]: ...

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: Batch,
        step: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def finish(self, out_dir: Path) -> None: ...
