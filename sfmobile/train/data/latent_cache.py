"""Latents cached once: a dataset's images through the model's VAE encoder and its captions
through the text encoder, so teacher-student training does not pay for either every epoch.

Layout of the cache folder (written through staged_folder: the folder is absent, the old one, or
complete, never half-written):

    index.json                 format, version, model, what the tensors are, shard list, skips
    latents-00000.safetensors  "latents" [N, 4, S/8, S/8]: the VAE latent MEAN (encoder's mean,
                               no sampled noise) x vae scaling_factor, i.e. what the UNet trains on;
                               "text_embeddings" [N, 77, D]; metadata "keys" and "captions" (JSON)

Taking the mean rather than a sample keeps the cache deterministic; a trainer that wants the
VAE's sampling noise back needs the log-variance too, which this cache does not store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sfmobile.errors import InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.staged_folder import staged_folder
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.train.data.source import DataReport, Example
from sfmobile.train.sampling import encode_captions
from sfmobile.weights.safe_io import read_json

INDEX_FILE = "index.json"
FORMAT = "sfmobile-latent-cache"
VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LATENTS_ARE = "VAE latent mean x scaling_factor (no sampled noise)"


@dataclass(frozen=True)
class CacheConfig:
    """batch_size: images per encoder call; shard_size: samples per safetensors file; dtype:
    how the tensors are stored (encoding always runs in float32)."""

    batch_size: int = 8
    shard_size: int = 1024
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.shard_size < 1:
            raise InputError(f"batch and shard sizes must be >= 1, got {self}")
        if self.dtype not in DTYPES:
            raise InputError(f"cache dtype must be one of {sorted(DTYPES)}, got {self.dtype}")


@dataclass(frozen=True)
class CachedSample:
    latents: torch.Tensor  # [4, S/8, S/8], scaled (what the UNet sees)
    text_embeddings: torch.Tensor  # [77, D]
    caption: str
    key: str


def tokenizer_of(model: StableDiffusion) -> ClipTokenizer:
    """The model's own vocabulary when it ships one, else the CLIP vocabulary sfmobile ships."""
    if model.tokenizer_dir is not None:
        return ClipTokenizer.from_folder(model.tokenizer_dir)
    return ClipTokenizer.default()


@torch.no_grad()
def encode_batch(
    model: StableDiffusion, tokenizer: ClipTokenizer, images: torch.Tensor, captions: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled latent means [B, 4, h, w], text embeddings [B, 77, D]) of one batch."""
    latents = model.vae.encode(images) * model.config.vae.scaling_factor
    return latents, encode_captions(model.text_encoder, tokenizer, captions)


def write_latent_cache(
    model: StableDiffusion,
    examples: Iterable[Example],
    out: Path,
    config: CacheConfig,
    report: DataReport | None = None,
) -> dict:
    """Encode every example into OUT (replaced atomically); returns the index written. `report`
    (the reader's, filled while iterating) is stored in the index."""
    model.eval()
    tokenizer = tokenizer_of(model)
    shards: list[dict] = []
    pending: list[Example] = []
    encoded: list[tuple[torch.Tensor, torch.Tensor, list[Example]]] = []
    with staged_folder(out) as staging:

        def flush(final: bool) -> None:
            while encoded and (final or sum(len(e) for *_, e in encoded) >= config.shard_size):
                shards.append(_write_shard(staging, len(shards), encoded, config))

        for example in examples:
            pending.append(example)
            if len(pending) == config.batch_size:
                encoded.append(_encode(model, tokenizer, pending))
                pending = []
                flush(final=False)
        if pending:
            encoded.append(_encode(model, tokenizer, pending))
        flush(final=True)
        if not shards:
            raise InputError("no readable samples to cache (every image or caption skipped)")
        index = {
            "format": FORMAT,
            "version": VERSION,
            "model": model.source,
            "latents": LATENTS_ARE,
            "scaling_factor": model.config.vae.scaling_factor,
            "dtype": config.dtype,
            "count": sum(s["count"] for s in shards),
            "shards": shards,
            "skipped": asdict(report) if report else None,
        }
        (staging / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
    return index


def _encode(model, tokenizer, batch: list[Example]):
    images = torch.stack([e.image for e in batch])
    latents, embeddings = encode_batch(model, tokenizer, images, [e.caption for e in batch])
    return latents, embeddings, batch


def _write_shard(staging: Path, number: int, encoded: list, config: CacheConfig) -> dict:
    """Take shard_size samples (or all that is left) off the front of `encoded`, write them."""
    latents = torch.cat([lat for lat, _, _ in encoded])
    embeddings = torch.cat([emb for _, emb, _ in encoded])
    examples = [e for _, _, batch in encoded for e in batch]
    n = min(config.shard_size, len(examples))
    rest = (latents[n:], embeddings[n:], examples[n:])
    encoded.clear()
    if rest[2]:
        encoded.append(rest)
    name = f"latents-{number:05d}.safetensors"
    dtype = DTYPES[config.dtype]
    tensors = {
        "latents": latents[:n].to(dtype).contiguous(),
        "text_embeddings": embeddings[:n].to(dtype).contiguous(),
    }
    metadata = {
        "keys": json.dumps([e.key for e in examples[:n]]),
        "captions": json.dumps([e.caption for e in examples[:n]]),
    }
    save_file(tensors, str(staging / name), metadata=metadata)
    return {"file": name, "count": n}


class LatentCache:
    """Read a cache folder back: len(cache), cache[i] -> CachedSample (one shard open at a time)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / INDEX_FILE).is_file():
            raise InputError(f"{self.folder}: not a latent cache (no {INDEX_FILE})")
        self.index = read_json(self.folder / INDEX_FILE)
        if self.index.get("format") != FORMAT or self.index.get("version") != VERSION:
            raise InputError(
                f"{self.folder / INDEX_FILE}: not a {FORMAT} version {VERSION} index "
                f"(format {self.index.get('format')!r}, version {self.index.get('version')!r})"
            )
        self.shards = self.index["shards"]
        for shard in self.shards:
            if not (self.folder / shard["file"]).is_file():
                raise InputError(f"{self.folder / shard['file']}: listed in the index, missing")
        self.starts = [0]
        for shard in self.shards:
            self.starts.append(self.starts[-1] + shard["count"])
        self._open: tuple[int, dict, list[str], list[str]] | None = None

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, i: int) -> CachedSample:
        if not 0 <= i < len(self):
            raise IndexError(f"cache index {i} out of range [0, {len(self)})")
        number = next(n for n in range(len(self.shards)) if i < self.starts[n + 1])
        tensors, keys, captions = self._shard(number)
        j = i - self.starts[number]
        return CachedSample(
            tensors["latents"][j], tensors["text_embeddings"][j], captions[j], keys[j]
        )

    def _shard(self, number: int) -> tuple[dict, list[str], list[str]]:
        if self._open is None or self._open[0] != number:
            path = self.folder / self.shards[number]["file"]
            with safe_open(str(path), framework="pt") as f:
                tensors = {name: f.get_tensor(name) for name in ("latents", "text_embeddings")}
                meta = f.metadata()
            self._open = (number, tensors, json.loads(meta["keys"]), json.loads(meta["captions"]))
        return self._open[1:]
