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
    how the tensors are stored (encoding always runs in float32); device: where it runs."""

    batch_size: int = 8
    shard_size: int = 1024
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.shard_size < 1:
            raise InputError(f"batch and shard sizes must be >= 1, got {self}")
        if self.dtype not in DTYPES:
            raise InputError(f"cache dtype must be one of {sorted(DTYPES)}, got {self.dtype}")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise InputError(f"--device {self.device}: not a torch device") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {self.device}: this torch has no CUDA device")


@dataclass(frozen=True)
class CachedSample:
    latents: torch.Tensor  # [4, S/8, S/8], scaled (what the UNet sees)
    text_embeddings: torch.Tensor  # [77, D]
    caption: str
    key: str


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
    for module in (model.vae, model.text_encoder):
        module.to(config.device)
    tokenizer = ClipTokenizer.of_model(model.tokenizer_dir)
    with staged_folder(out) as staging:
        writer = _ShardWriter(staging, config)
        batch: list[Example] = []
        for example in examples:
            batch.append(example)
            if len(batch) == config.batch_size:
                writer.add(model, tokenizer, batch)
                batch = []
        if batch:
            writer.add(model, tokenizer, batch)
        writer.write(final=True)
        if not writer.shards:
            raise InputError("no readable samples to cache (every image or caption skipped)")
        index = {
            "format": FORMAT,
            "version": VERSION,
            "model": model.source,
            "latents": LATENTS_ARE,
            "scaling_factor": model.config.vae.scaling_factor,
            "dtype": config.dtype,
            "count": sum(s["count"] for s in writer.shards),
            "shards": writer.shards,
            "skipped": asdict(report) if report else None,
        }
        (staging / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
    return index


class _ShardWriter:
    """Encoded batches in, shard_size-sample safetensors files out (images are not kept)."""

    def __init__(self, folder: Path, config: CacheConfig) -> None:
        self.folder, self.config = folder, config
        self.latents: list[torch.Tensor] = []
        self.embeddings: list[torch.Tensor] = []
        self.keys: list[str] = []
        self.captions: list[str] = []
        self.shards: list[dict] = []

    def add(self, model: StableDiffusion, tokenizer: ClipTokenizer, batch: list[Example]) -> None:
        images = torch.stack([e.image for e in batch]).to(self.config.device)
        captions = [e.caption for e in batch]
        latents, embeddings = encode_batch(model, tokenizer, images, captions)
        self.latents.append(latents.cpu())
        self.embeddings.append(embeddings.cpu())
        self.keys += [e.key for e in batch]
        self.captions += captions
        self.write(final=False)

    def write(self, final: bool) -> None:
        """Write every full shard (and, when final, the short one left)."""
        while self.keys and (final or len(self.keys) >= self.config.shard_size):
            n = min(self.config.shard_size, len(self.keys))
            latents, embeddings = torch.cat(self.latents), torch.cat(self.embeddings)
            self.latents, self.embeddings = [latents[n:]], [embeddings[n:]]
            dtype = DTYPES[self.config.dtype]
            tensors = {
                "latents": latents[:n].to(dtype).contiguous(),
                "text_embeddings": embeddings[:n].to(dtype).contiguous(),
            }
            metadata = {
                "keys": json.dumps(self.keys[:n]),
                "captions": json.dumps(self.captions[:n]),
            }
            self.keys, self.captions = self.keys[n:], self.captions[n:]
            name = f"latents-{len(self.shards):05d}.safetensors"
            save_file(tensors, str(self.folder / name), metadata=metadata)
            self.shards.append({"file": name, "count": n})


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
