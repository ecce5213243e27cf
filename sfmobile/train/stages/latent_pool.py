"""Teacher-generated latents for decoder compression (stage 4), made once per run and cached.

The compressed decoder must reproduce the full decoder on the latents it will really decode:
the diffusion model's final latents, which differ from the VAE encoder's (sharper or blurrier,
off-manifold here and there). So the pool is the teacher's own output, made with
sampling.sample_latents exactly as `sfmobile generate` would (the teacher's default steps and
guidance), for training-split captions and seeds derived from the run seed:

    latent i = sample_latents(teacher, [caption i], [pool_seeds(seed, n)[i]])

where caption i is train scene i's, or with --data the i-th caption of the data (cycled).

It is written to OUT/latent_pool.safetensors (temporary file + rename) with metadata naming
what made it; a resumed run reads it back and refuses one made by another teacher or setting.
Under torchrun every rank computes the same pool (the ranks would idle otherwise) and rank 0
alone writes it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors import safe_open
from safetensors.torch import save_file

from sfmobile.errors import InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.train.engine.distributed import params_sha256
from sfmobile.train.sampling import sample_latents
from sfmobile.train.scenes.generator import SceneGenerator

POOL_FILE = "latent_pool.safetensors"
POOL_FORMAT = "sfmobile-latent-pool"
GENERATION_BATCH = 64
_POOL_SEED_KEY = 0x706F6F6C  # "pool": keeps these seeds apart from other uses of the run seed


def pool_seeds(seed: int, count: int) -> list[int]:
    """The sampling seed of each pool latent, in [0, 2^32), from the run seed."""
    state = np.random.SeedSequence([seed, _POOL_SEED_KEY]).generate_state(count, np.uint32)
    return [int(value) for value in state]


def train_captions(data_seed: int, count: int) -> list[str]:
    """Captions of training scenes 0..count-1 (cheap: no image is rendered)."""
    scenes = SceneGenerator("train", seed=data_seed)
    return [scenes.scene(i).caption for i in range(count)]


def teacher_fingerprint(teacher: StableDiffusion) -> str:
    """sha256 of the UNet and text-encoder weights (what the pool's latents depend on)."""
    return params_sha256({"unet": teacher.unet, "text_encoder": teacher.text_encoder})


def generate_latents(
    teacher: StableDiffusion,
    captions: Sequence[str],
    seeds: Sequence[int],
    latent_size: int,
    console: Console,
    label: str,
    hidden: bool = False,
) -> torch.Tensor:
    """Scaled final latents [N, C, latent_size, latent_size] of the teacher (computed on its
    UNet's device, returned on the CPU), GENERATION_BATCH prompts at a time, with a progress bar
    (hidden=True shows none)."""
    steps, guidance = teacher.scheduler.default_steps, teacher.scheduler.default_guidance
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    parts = []
    with Progress(*columns, console=console, disable=hidden) as progress:
        task = progress.add_task(label, total=len(captions))
        for start in range(0, len(captions), GENERATION_BATCH):
            end = min(start + GENERATION_BATCH, len(captions))
            parts.append(
                sample_latents(
                    teacher,
                    captions[start:end],
                    seeds[start:end],
                    steps,
                    guidance,
                    latent_size,
                )
            )
            progress.update(task, completed=end)
    return torch.cat(parts).cpu()


def pool_metadata(
    teacher: StableDiffusion,
    seed: int,
    data_seed: int,
    count: int,
    latent_size: int,
    captions: Sequence[str],
) -> dict[str, str]:
    """What makes a pool: a cached one is reused only if all of this matches."""
    return {
        "format": POOL_FORMAT,
        "format_version": "1",
        "teacher_sha256": teacher_fingerprint(teacher),
        "steps": str(teacher.scheduler.default_steps),
        "guidance": repr(float(teacher.scheduler.default_guidance)),
        "seed": str(seed),
        "data_seed": str(data_seed),
        "count": str(count),
        "latent_size": str(latent_size),
        "captions_sha256": hashlib.sha256("\n".join(captions).encode()).hexdigest(),
    }


def latent_pool(
    path: Path,
    teacher: StableDiffusion,
    seed: int,
    data_seed: int,
    count: int,
    latent_size: int,
    console: Console,
    write: bool = True,
    captions: Sequence[str] | None = None,
) -> torch.Tensor:
    """The pool of `count` teacher latents [count, C, h, w]: read from `path` when a matching
    one is there, otherwise generated (and written to `path` when `write`). captions: the
    count prompts (default: the first count training scenes' captions)."""
    if count < 1:
        raise InputError(f"--pool-size must be >= 1, got {count}")
    path = Path(path)
    captions = list(captions) if captions is not None else train_captions(data_seed, count)
    expected = pool_metadata(teacher, seed, data_seed, count, latent_size, captions)
    if path.is_file():
        return _read_pool(path, expected)
    latents = generate_latents(
        teacher,
        captions,
        pool_seeds(seed, count),
        latent_size,
        console,
        "latent pool",
        hidden=not write,
    )
    if write:
        seeds = torch.tensor(pool_seeds(seed, count), dtype=torch.int64)
        _write_atomically({"latents": latents.contiguous(), "seeds": seeds}, expected, path)
    return latents


def _read_pool(path: Path, expected: dict[str, str]) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as file:
        found = file.metadata() or {}
        differing = [key for key in expected if found.get(key) != expected[key]]
        if differing:
            details = ", ".join(f"{k}: {found.get(k)!r} != {expected[k]!r}" for k in differing)
            raise InputError(
                f"{path}: latent pool made with other settings ({details}); use the run's "
                "original --teacher, --seed, --pool-size and --image-size, or delete the file"
            )
        return file.get_tensor("latents")


def _write_atomically(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=meta)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
