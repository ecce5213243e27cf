"""Endless per-rank batches of aspect-ratio-bucketed images (images.Buckets): every batch holds
images of one bucket's shape, so it stacks into one tensor.

Rank r of N reads its share of `--data` as batches.image_batches does; each image goes to its
nearest bucket, and a bucket's images wait until there are batch_size of them, which is then the
next batch (in the order buckets fill). Images still waiting when a pass over the data ends stay
for the next pass, so none is dropped. Batches are the image batches' dicts ("image" float32
[B, 3, H, W] of one bucket, "caption", "index": the batch's first sample number counted from
the start of the run, then the next B-1).

Resuming: which images wait when depends on everything read before, so a stream that starts at
sample `start` (a multiple of batch_size, as the Trainer asks) reads the data from the beginning
and drops the first start / batch_size batches. That is bit-identical and re-reads (decodes) the
images already trained on, as a resumed image stream does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

import torch

from sfmobile.errors import InputError
from sfmobile.train.data.images import Buckets
from sfmobile.train.data.source import DataReport, DataSpec, open_image_captions


def bucketed_batches(
    spec: DataSpec,
    buckets: Buckets,
    batch_size: int,
    rank: int,
    world_size: int,
    start: int,
    on_pass: Callable[[DataReport], None] | None = None,
) -> Iterator[dict]:
    """This rank's single-bucket batches from its sample `start` on (see the module docstring).
    on_pass(report) is called at the end of every pass over this rank's share of the data."""
    if start % batch_size:
        raise InputError(f"bucketed batches start at a batch boundary, got sample {start}")
    batches = _all_batches(spec, buckets, batch_size, rank, world_size, on_pass)
    return islice(batches, start // batch_size, None)


def _all_batches(
    spec: DataSpec,
    buckets: Buckets,
    batch_size: int,
    rank: int,
    world_size: int,
    on_pass: Callable[[DataReport], None] | None,
) -> Iterator[dict]:
    waiting: dict[tuple[int, ...], list[tuple[torch.Tensor, str]]] = {}
    index = 0
    while True:
        # The reader hands its image size to images.load_image, which also takes Buckets; the
        # reader's own check wants an int, so the buckets are set after opening it.
        reader = open_image_captions(
            spec, min(min(shape) for shape in buckets.shapes), rank, world_size
        )
        reader.image_size = buckets
        count = 0
        for example in reader:
            count += 1
            group = waiting.setdefault(tuple(example.image.shape), [])
            group.append((example.image, example.caption))
            if len(group) == batch_size:
                del waiting[tuple(example.image.shape)]
                yield {
                    "image": torch.stack([image for image, _ in group]),
                    "caption": [caption for _, caption in group],
                    "index": torch.arange(index, index + batch_size),
                }
                index += batch_size
        if count == 0:
            raise InputError(
                f"--data {spec.path}: rank {rank} of {world_size} read no usable sample "
                f"({reader.report.summary()})"
            )
        if on_pass is not None:
            on_pass(reader.report)
