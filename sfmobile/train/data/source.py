"""Real image-caption data for training: `--data` opened as a stream of (image, caption).

    reader = open_image_captions(DataSpec("photos/"), image_size=512, rank=0, world_size=1)
    for example in reader:        # Example(image float32 [3, 512, 512] in [-1, 1], caption, ...)
        ...
    print(reader.report.summary())   # samples read, images and captions skipped

Sharding: reader (rank, worker) of world_size x num_workers takes every readers-th unit, where a
unit is a shard for WebDataset and a sample for listed sources (folder, JSONL, CSV, which count
as one shard), so ranks and workers never read the same sample. Resuming: every example carries
`next_position`; a reader opened with start=that position yields exactly the samples that
followed it. Unreadable images, missing or empty captions and damaged tar shards (the rest of
the shard) are skipped and counted in `reader.report`, never fatal.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sfmobile.errors import InputError
from sfmobile.train.data import records, shards
from sfmobile.train.data.images import Buckets, UnreadableImage, load_image

FORMATS = ("folder", "jsonl", "csv", "webdataset")
EXAMPLES_KEPT = 5  # skipped samples the report names, so a user can look at them


@dataclass(frozen=True)
class DataSpec:
    """path: a folder of images + .txt captions, a .jsonl or .csv index, or WebDataset shards (a
    .tar, a brace pattern `shards/{000..009}.tar`, or a folder holding only .tar files).
    format: one of FORMATS, or "auto" to tell from the path."""

    path: str
    format: str = "auto"

    def resolved_format(self) -> str:
        if self.format != "auto":
            if self.format not in FORMATS:
                raise InputError(f"data format must be auto or one of {FORMATS}, got {self.format}")
            return self.format
        path = Path(self.path)
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".csv"):
            return suffix[1:]
        if suffix == ".tar" or "{" in self.path or "::" in self.path:
            return "webdataset"
        if path.is_dir():
            has_tars = any(path.glob("*.tar"))
            return "webdataset" if has_tars else "folder"
        raise InputError(
            f"--data {self.path}: not a folder, .jsonl, .csv or .tar shard (or it does not exist)"
        )


@dataclass(frozen=True)
class StreamPosition:
    """shard: index in the source's shard list (0 for listed sources); offset: samples of that
    shard already read, skipped ones included."""

    shard: int = 0
    offset: int = 0


@dataclass(frozen=True)
class Example:
    image: torch.Tensor  # float32 [3, H, W] in [-1, 1]: image_size square, or its bucket
    caption: str
    key: str
    next_position: StreamPosition  # start here to continue after this example


@dataclass
class DataReport:
    """What one reader read and skipped; `skipped_examples` names the first few skipped samples,
    `corrupt_shards` every tar shard that could not be read to its end (its samples before the
    damage are kept). Plain numbers and strings: it travels from DataLoader workers with each
    batch and into train_state.pt (asdict / DataReport(**fields))."""

    yielded: int = 0
    unreadable_images: int = 0
    missing_captions: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    corrupt_shards: list[str] = field(default_factory=list)

    def skip(self, kind: str, key: str, reason: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.skipped_examples) < EXAMPLES_KEPT:
            self.skipped_examples.append(f"{key}: {reason}")

    def corrupt_shard(self, shard: str, reason: str) -> None:
        """Count a damaged shard once, however often a pass or a resume reaches it again."""
        if not any(entry.startswith(f"{shard}: ") for entry in self.corrupt_shards):
            self.corrupt_shards.append(f"{shard}: {reason}")

    @classmethod
    def merged(cls, reports: Iterable[DataReport]) -> DataReport:
        """One report for several readers (workers, ranks): counts added, names kept."""
        total = cls()
        for report in reports:
            total.yielded += report.yielded
            total.unreadable_images += report.unreadable_images
            total.missing_captions += report.missing_captions
            kept = EXAMPLES_KEPT - len(total.skipped_examples)
            total.skipped_examples += report.skipped_examples[: max(kept, 0)]
            total.corrupt_shards += report.corrupt_shards
        return total

    def summary(self) -> str:
        line = (
            f"{self.yielded} samples read, skipped {self.unreadable_images} unreadable images "
            f"and {self.missing_captions} missing or empty captions"
        )
        if self.corrupt_shards:
            line += f", {len(self.corrupt_shards)} corrupt shards (their remaining samples)"
        details = [*self.skipped_examples, *self.corrupt_shards]
        return line + "".join(f"\n  skipped {e}" for e in details)


@dataclass(frozen=True)
class ReaderSlot:
    """Which of the world_size x num_workers readers (DDP rank, DataLoader worker) this is."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size or not 0 <= self.worker < self.num_workers:
            raise InputError(
                f"rank {self.rank} of {self.world_size} / worker {self.worker} of "
                f"{self.num_workers}: out of range"
            )

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


class ImageCaptionReader:
    """One reader's stream of Examples (see the module docstring); iterate it once."""

    def __init__(
        self,
        spec: DataSpec,
        image_size: int | Buckets,
        slot: ReaderSlot,
        start: StreamPosition | None,
    ) -> None:
        if isinstance(image_size, int) and image_size < 8:  # Buckets check their own shapes
            raise InputError(f"image size must be at least 8, got {image_size}")
        self.spec, self.image_size, self.format = spec, image_size, spec.resolved_format()
        self.reader, self.readers = slot.index, slot.count
        self.start = start or StreamPosition()
        self.report = DataReport()
        if self.format == "webdataset":
            self.shards = shards.expand_shards(spec.path)
            if len(self.shards) < self.readers:
                raise InputError(
                    f"--data {spec.path}: {len(self.shards)} shards for {self.readers} readers "
                    "(ranks x workers); every reader needs at least one shard"
                )
        else:
            self.records = _list_records(self.format, Path(spec.path))

    def __iter__(self) -> Iterator[Example]:
        raw = self._webdataset() if self.format == "webdataset" else self._listed()
        for key, image, caption, position in raw:
            if caption is None or not caption.strip():
                reason = "no caption" if caption is None else "empty caption"
                self.report.skip("missing_captions", key, reason)
                continue
            if image is None:
                self.report.skip("unreadable_images", key, "no .jpg/.jpeg/.png/.webp file")
                continue
            try:
                tensor = load_image(image, self.image_size)
            except UnreadableImage as error:
                self.report.skip("unreadable_images", key, str(error))
                continue
            self.report.yielded += 1
            yield Example(tensor, caption.strip(), key, position)

    def _listed(self) -> Iterator[tuple[str, bytes | Path | None, str | None, StreamPosition]]:
        first = max(self.start.offset, 0) if self.start.shard == 0 else len(self.records)
        for index in range(first, len(self.records)):
            if index % self.readers == self.reader:
                record = self.records[index]
                yield record.key, record.image, record.caption, StreamPosition(0, index + 1)

    def _webdataset(self) -> Iterator[tuple[str, bytes | Path | None, str | None, StreamPosition]]:
        for shard in range(self.start.shard, len(self.shards)):
            if shard % self.readers != self.reader:
                continue
            skip = self.start.offset if shard == self.start.shard else 0
            samples = shards.shard_samples(self.shards[shard], skip)
            try:
                for index, sample in samples:
                    key = f"{Path(self.shards[shard]).name}/{sample['__key__']}"
                    image, caption = shards.image_bytes(sample), shards.caption_text(sample)
                    yield key, image, caption, StreamPosition(shard, index + 1)
            except shards.CorruptShard as error:
                self.report.corrupt_shard(self.shards[shard], error.reason)
                warnings.warn(f"--data: skipping the rest of {error}", stacklevel=1)


def _list_records(format: str, path: Path) -> list[records.Record]:
    if format == "folder":
        if not path.is_dir():
            raise InputError(f"--data {path}: no such folder")
        return records.folder_records(path)
    if not path.is_file():
        raise InputError(f"--data {path}: no such file")
    return records.jsonl_records(path) if format == "jsonl" else records.csv_records(path)


def open_image_captions(
    spec: DataSpec,
    image_size: int | Buckets,
    rank: int = 0,
    world_size: int = 1,
    worker: int = 0,
    num_workers: int = 1,
    start: StreamPosition | None = None,
) -> ImageCaptionReader:
    """The stream of one (rank, worker); its `.report` counts what it skipped. image_size: the
    square images are cropped to, or aspect-ratio Buckets (each image its nearest bucket's)."""
    slot = ReaderSlot(rank, world_size, worker, num_workers)
    return ImageCaptionReader(spec, image_size, slot, start)
