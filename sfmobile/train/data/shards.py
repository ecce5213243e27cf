"""WebDataset tar shards (the LAION/COYO layout: `key.jpg|png|webp` + `key.txt`), read as a
stream through the `webdataset` library (optional: `pip install 'sfmobile[train]'`).

webdataset opens each shard (local path, or any URL its gopen takes, e.g. `pipe:curl -s URL`)
and groups a tar's files into samples by key; which shards a reader takes and where it resumes
is decided here, one shard at a time, so a position is exact: (shard index in the expanded
list, samples of that shard already read). Skipping to a position reads the skipped samples'
bytes but decodes nothing.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from sfmobile.errors import InputError
from sfmobile.train.data.images import IMAGE_SUFFIXES


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise InputError(
            "reading WebDataset shards needs the webdataset package: "
            "pip install 'sfmobile[train]' (or pip install webdataset)"
        ) from None
    return webdataset


def expand_shards(pattern: str) -> list[str]:
    """The shard list of a `--data` value: a folder (its *.tar, sorted), or one path / URL with
    optional braces (`shards/{00000..00099}.tar`), several joined by `::` as webdataset does."""
    if Path(pattern).is_dir():
        shards = sorted(str(p) for p in Path(pattern).glob("*.tar"))
        if not shards:
            raise InputError(f"{pattern}: no .tar shards in this folder")
        return shards
    shards = _webdataset().shardlists.expand_urls(pattern)
    missing = [s for s in shards if ":" not in s and not Path(s).is_file()]
    if missing:
        raise InputError(f"{missing[0]}: no such shard ({len(missing)} of {len(shards)} missing)")
    return shards


class CorruptShard(InputError):
    """A shard that cannot be opened or read to its end (truncated, not a tar, gone); the
    readers count it and go on with the next shard."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: not a readable tar shard ({reason})")
        self.url, self.reason = url, reason


def shard_samples(url: str, skip: int = 0) -> Iterator[tuple[int, dict]]:
    """(index in shard, webdataset sample dict: `__key__` plus one bytes value per extension)
    for the samples of one shard, from the skip-th on. Damage raises CorruptShard after the
    samples before it."""
    wds = _webdataset()
    try:
        for index, sample in enumerate(wds.tariterators.tarfile_samples([{"url": url}])):
            if index >= skip:
                yield index, sample
    except (OSError, ValueError, EOFError, tarfile.TarError) as error:
        raise CorruptShard(url, str(error) or type(error).__name__) from None


def image_bytes(sample: dict) -> bytes | None:
    """The sample's image file (first of IMAGE_SUFFIXES present), or None."""
    return next((sample[s] for s in IMAGE_SUFFIXES if s in sample), None)


def caption_text(sample: dict) -> str | None:
    data = sample.get("txt")
    return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else None
