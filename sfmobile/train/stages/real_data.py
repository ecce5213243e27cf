"""The user's image-caption data as a stage's training batches (`--data`, `--cache`,
`--image-size`, `--buckets`), shared by `train unet`, `distill` and `train decoder`.

A stage holding a RealData gives the Trainer its `batches` (stage.py) and `run_settings` from
it, and turns a batch into what the diffusion loss needs with `conditioning`: scaled latents
(encoded here, or read from the cache) and text embeddings with captions dropped for
classifier-free guidance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch

from sfmobile.errors import ConfigError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.train.data.batches import StreamOptions, cached_batches, image_batches
from sfmobile.train.data.images import Buckets
from sfmobile.train.data.latent_cache import LatentCache
from sfmobile.train.data.source import DataSpec, open_image_captions
from sfmobile.train.sampling import encode_captions


@dataclass(frozen=True)
class RealData:
    """data: `--data`, or None with `cache`, a cache-latents folder made by the same teacher;
    image_size: what images are resized and centre-cropped to (a multiple of 8); buckets:
    aspect-ratio buckets instead of the square crop (not with a cache, whose latents are
    square)."""

    data: DataSpec | None = None
    cache: Path | None = None
    image_size: int = 512
    buckets: Buckets | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.cache is None):
            raise ConfigError("give exactly one of --data and --cache")
        if self.image_size < 8 or self.image_size % 8:
            raise ConfigError(f"--image-size must be a multiple of 8, got {self.image_size}")
        if self.buckets is not None and self.cache is not None:
            raise ConfigError("--buckets needs --data: cached latents are already square")

    def check_workers(self, workers: int) -> None:
        """Refuse --data-workers with --cache: the workers decode --data images, and a cache
        holds latents encoded already, indexed in the training process (nothing to hand out)."""
        if workers and self.cache is not None:
            raise InputError(
                f"--data-workers {workers} with --cache {self.cache}: the workers decode --data "
                "images, and a cache holds latents encoded already; drop --data-workers"
            )

    def run_settings(self) -> dict[str, object]:
        """What a resumed run must repeat (the Trainer refuses other values)."""
        data = self.data
        settings: dict[str, object] = {
            "data": str(self.cache) if data is None else f"{data.path} ({data.format})",
            "data_image_size": self.image_size,
        }
        if self.buckets is not None:
            settings["data_buckets"] = self.buckets.text()
        return settings

    def batches(
        self,
        start: int,
        batch_size: int,
        rank: int,
        world_size: int,
        stream: StreamOptions | None = None,
    ) -> Iterator[dict]:
        """This rank's batches from its sample `start` on (the Trainer's data hook); `stream`:
        --data-workers and the saved stream position (data/batches.py; a cache refuses workers)."""
        if self.cache is not None:
            self.check_workers(stream.workers if stream is not None else 0)
            return cached_batches(LatentCache(self.cache), batch_size, rank, world_size, start)
        size = self.buckets if self.buckets is not None else self.image_size
        return image_batches(self.data, size, batch_size, rank, world_size, start, stream)

    def captions(self, count: int) -> list[str]:
        """The first `count` captions of the data in order (cycled when it has fewer), e.g. the
        prompts of the decoder stage's latent pool. Reads (decodes) up to `count` images."""
        if self.cache is not None:
            cache = LatentCache(self.cache)
            found = [cache[i].caption for i in range(min(count, len(cache)))]
        else:
            reader = open_image_captions(self.data, self.image_size)
            found = [example.caption for example in islice(reader, count)]
        if not found:
            raise InputError(
                f"{self.run_settings()['data']}: no usable sample to take captions from"
            )
        return [found[i % len(found)] for i in range(count)]


def check_data_workers(workers: int, data: RealData | None) -> None:
    """--data-workers only where there are --data images to decode: not with --cache
    (RealData.check_workers), nor on the synthetic scenes (`data` None), drawn in the training
    process."""
    if data is not None:
        data.check_workers(workers)
    elif workers:
        raise InputError(
            f"--data-workers {workers} without --data: the workers decode --data images, and "
            "the synthetic scenes are drawn in the training process; drop --data-workers"
        )


@torch.no_grad()
def conditioning(
    model: StableDiffusion,
    tokenizer: ClipTokenizer,
    batch: dict,
    caption_dropout: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scaled latents z0 [B, C, h, w], text embeddings [B, 77, D] with each caption replaced by
    "" with probability caption_dropout, the embeddings of "" [1, 77, D]) of a batch of images
    ("image") or of cached latents ("latents", "text_embeddings"). Draws the dropout first."""
    if "latents" in batch:
        latents, text = batch["latents"], batch["text_embeddings"]
    else:
        latents = model.vae.encode(batch["image"]) * model.config.vae.scaling_factor
        text = encode_captions(model.text_encoder, tokenizer, batch["caption"])
    dropped = torch.rand(latents.shape[0], generator=generator) < caption_dropout
    empty = encode_captions(model.text_encoder, tokenizer, [""])
    if dropped.any():
        text = torch.where(dropped[:, None, None], empty, text)
    return latents, text, empty
