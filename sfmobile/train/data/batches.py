"""Endless per-rank training batches from `--data` or a cache-latents folder, for stages that
train on a user's dataset instead of the synthetic scenes (stages/unet.py).

Both sources deal samples to ranks as the scene stream does (rank r of N takes samples r, r + N,
... of each pass) and start over when a pass ends (an epoch). `start` skips that many of this
rank's samples, which is how the Trainer resumes at step * batch_size: bit-identical, at the cost
of reading the skipped images again (a cache skips without reading). Batches are dicts:

    images:  "image" float32 [B, 3, S, S] in [-1, 1], "caption" list[str], "index" int64 [B]
    cache:   "latents" [B, 4, S/8, S/8] (scaled), "text_embeddings" [B, 77, D], "caption",
             "index"

where "index" counts this rank's samples from the start of the run (for logs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

import torch

from sfmobile.errors import InputError
from sfmobile.train.data.latent_cache import LatentCache
from sfmobile.train.data.source import DataReport, DataSpec, open_image_captions


def image_batches(
    spec: DataSpec,
    image_size: int,
    batch_size: int,
    rank: int,
    world_size: int,
    start: int,
    on_pass: Callable[[DataReport], None] | None = None,
) -> Iterator[dict]:
    """Batches of decoded images and captions (unreadable images and empty captions skipped, as
    the reader does; a pass that yields nothing is an error rather than an endless loop).
    on_pass(report) is called at the end of every pass over this rank's share of the data."""

    def examples() -> Iterator[tuple[torch.Tensor, str]]:
        while True:
            reader = open_image_captions(spec, image_size, rank, world_size)
            count = 0
            for example in reader:
                count += 1
                yield example.image, example.caption
            if count == 0:
                raise InputError(
                    f"--data {spec.path}: rank {rank} of {world_size} read no usable sample "
                    f"({reader.report.summary()})"
                )
            if on_pass is not None:
                on_pass(reader.report)

    stream = islice(examples(), start, None)
    index = start
    while True:
        chunk = list(islice(stream, batch_size))
        yield {
            "image": torch.stack([image for image, _ in chunk]),
            "caption": [caption for _, caption in chunk],
            "index": torch.arange(index, index + batch_size),
        }
        index += batch_size


def cached_batches(
    cache: LatentCache, batch_size: int, rank: int, world_size: int, start: int
) -> Iterator[dict]:
    """Batches of cached latents and text embeddings (rank r takes cache[r], cache[r + N], ...)."""
    mine = list(range(rank, len(cache), world_size))
    if not mine:
        raise InputError(f"{cache.folder}: {len(cache)} samples, none for rank {rank}")
    index = start
    while True:
        samples = [cache[mine[i % len(mine)]] for i in range(index, index + batch_size)]
        yield {
            "latents": torch.stack([s.latents.float() for s in samples]),
            "text_embeddings": torch.stack([s.text_embeddings.float() for s in samples]),
            "caption": [s.caption for s in samples],
            "index": torch.arange(index, index + batch_size),
        }
        index += batch_size
