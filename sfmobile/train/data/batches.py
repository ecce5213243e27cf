"""Endless per-rank training batches from `--data` or a cache-latents folder, for stages that
train on a user's dataset instead of the synthetic scenes (stages/real_data.py: train unet,
distill, train decoder).

Both sources deal samples to ranks as the scene stream does (rank r of N takes samples r, r + N,
... of each pass) and start over when a pass ends (an epoch). Batches are dicts:

    images:  "image" float32 [B, 3, H, W] in [-1, 1], "caption" list[str], "index" int64 [B],
             "data_state" (below)
    cache:   "latents" [B, 4, S/8, S/8] (scaled), "text_embeddings" [B, 77, D], "caption",
             "index"

where "index" counts this rank's samples from the start of the run (for logs). Images are
S x S squares, or with aspect-ratio buckets (images.Buckets) each batch holds one bucket's
shape: a reader puts each image in its nearest bucket's queue, and a queue that reaches B
images is the reader's next batch (images still queued when a pass ends wait for the next
pass, so none is dropped).

Images are decoded by `workers` DataLoader processes (0: in this process; started from a fork
server, never forked: worker_loader), each a reader of its own (source.ReaderSlot: rank x
worker), each making whole batches; the DataLoader takes them from the workers in turn. Every
image batch carries "data_state", plain JSON: for each of this rank's readers its position
(pass, shard, offset after its last batch so far, batches made) and its DataReport (samples
read, unreadable images, missing captions, corrupt shards), and which reader gives the next
batch. That is how what the workers skip reaches the Trainer's metrics, and how a resumed run
continues: StreamOptions(resume=the state of the last batch a checkpoint saw) reopens each
reader at its position, so no image before it is read again. Bucketed readers are the exception:
what waits in their queues depends on everything read before, so a resumed one reads its share
again from the start and drops the batches it had made (bit-identical; it re-decodes the
images). Without a saved state, `start` samples are read and dropped (bit-identical too, one
reader only).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from sfmobile.errors import InputError
from sfmobile.train.data.images import Buckets
from sfmobile.train.data.latent_cache import LatentCache
from sfmobile.train.data.source import DataReport, DataSpec, StreamPosition, open_image_captions

# How DataLoader workers start (worker_loader): never "fork".
WORKER_START = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@dataclass(frozen=True)
class StreamOptions:
    """workers: image-decoding processes per rank (0: decode in the training process);
    resume: a batch's "data_state" (the last one a checkpoint covered), or None."""

    workers: int = 0
    resume: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise InputError(f"--data-workers must be >= 0, got {self.workers}")


def image_batches(
    spec: DataSpec,
    image_size: int | Buckets,
    batch_size: int,
    rank: int,
    world_size: int,
    start: int,
    stream: StreamOptions | None = None,
) -> Iterator[dict]:
    """Batches of decoded images and captions, image_size squares or one bucket's shape each
    (unreadable images and empty captions skipped, as the reader does; a pass that yields
    nothing is an error rather than an endless loop)."""
    stream = stream or StreamOptions()
    if isinstance(image_size, Buckets) and start % batch_size:
        raise InputError(f"bucketed batches start at a batch boundary, got sample {start}")
    readers = max(stream.workers, 1)
    resume = stream.resume
    if resume is not None and len(resume["readers"]) != readers:
        raise InputError(
            f"--data {spec.path}: the saved stream has {len(resume['readers'])} readers per "
            f"rank, this run {readers} (--data-workers must stay as it was)"
        )
    if resume is None and start and readers > 1:
        raise InputError(
            f"--data {spec.path}: resuming at sample {start} without a saved stream position "
            "needs --data-workers 0"
        )
    states = list(resume["readers"]) if resume else [None] * readers
    dataset = _ReaderBatches(
        spec,
        image_size,
        batch_size,
        (rank, world_size, readers),
        states,
        rotation=resume["next_reader"] if resume else 0,
        drop=0 if resume else start,
    )
    loader = worker_loader(dataset, stream.workers) if stream.workers else dataset
    index = start
    for batch in loader:
        reader = batch.pop("reader")
        states[reader] = batch.pop("reader_state")
        batch["index"] = torch.arange(index, index + batch_size)
        batch["data_state"] = {"readers": list(states), "next_reader": (reader + 1) % readers}
        index += batch_size
        yield batch


def worker_loader(dataset: IterableDataset, workers: int) -> DataLoader:
    """A DataLoader of `workers` processes, each yielding whole batches of `dataset`, started
    from a fork server (spawn where there is none) rather than forked: the training process may
    hold threads by then (torch's, JAX's when LiteRT is imported), and a fork copies locks such
    threads hold, which can deadlock the child. The workers get `dataset` pickled and import
    what it needs afresh; the server preloads this module (and so torch), so each worker starts
    from a forked copy of a process that never ran a thread."""
    context = multiprocessing.get_context(WORKER_START)
    if WORKER_START == "forkserver":  # takes effect when this process first starts the server
        context.set_forkserver_preload(["__main__", __name__])
    return DataLoader(
        dataset, batch_size=None, num_workers=workers, multiprocessing_context=context
    )


def stream_report(data_state: dict[str, Any]) -> DataReport:
    """One DataReport for all the readers of a "data_state" (what they read and skipped)."""
    readers = [state for state in data_state["readers"] if state is not None]
    return DataReport.merged(DataReport(**state["report"]) for state in readers)


class _ReaderBatches(IterableDataset):
    """Each DataLoader worker w is reader (w + rotation) % readers of this rank, from its saved
    state; it yields whole batches with its reader number and state after the batch."""

    def __init__(
        self,
        spec: DataSpec,
        image_size: int | Buckets,
        batch_size: int,
        slot: tuple[int, int, int],
        states: list[dict | None],
        rotation: int,
        drop: int,
    ) -> None:
        super().__init__()
        self.spec, self.image_size, self.batch_size = spec, image_size, batch_size
        self.rank, self.world_size, self.readers = slot
        self.states, self.rotation, self.drop = states, rotation, drop

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        reader = ((info.id if info is not None else 0) + self.rotation) % self.readers
        saved = self.states[reader]
        done = saved.get("batches", 0) if saved else self.drop // self.batch_size
        if isinstance(self.image_size, Buckets):  # replayed (module docstring)
            groups = _bucket_groups(self._examples(reader, None), self.batch_size)
            groups = islice(groups, done, None)
        else:
            examples = islice(self._examples(reader, saved), self.drop, None)
            groups = iter(lambda: list(islice(examples, self.batch_size)), None)
        for made, chunk in enumerate(groups, done + 1):
            _, _, state = chunk[-1]  # the reader's last example: a bucket fills with it
            yield {
                "image": torch.stack([image for image, _, _ in chunk]),
                "caption": [caption for _, caption, _ in chunk],
                "reader": reader,
                "reader_state": {**state, "batches": made},
            }

    def _examples(
        self, reader: int, saved: dict | None
    ) -> Iterator[tuple[torch.Tensor, str, dict]]:
        """(image, caption, reader state after it), pass after pass, from the saved state."""
        epoch = saved["pass"] if saved else 0
        position = StreamPosition(saved["shard"], saved["offset"]) if saved else None
        report = DataReport(**saved["report"]) if saved else DataReport()
        while True:
            source = open_image_captions(
                self.spec, self.image_size, self.rank, self.world_size, reader, self.readers,
                position,
            )  # fmt: skip
            source.report = report  # counts go on across passes and resumes
            count = 0
            for example in source:
                count += 1
                at = example.next_position
                state = {"pass": epoch, "shard": at.shard, "offset": at.offset}
                yield example.image, example.caption, {**state, "report": asdict(report)}
            if count == 0 and position is None:
                raise InputError(
                    f"--data {self.spec.path}: reader {reader} of rank {self.rank} "
                    f"(of {self.world_size}) read no usable sample ({report.summary()})"
                )
            epoch, position = epoch + 1, None


def _bucket_groups(examples: Iterator[tuple], batch_size: int) -> Iterator[list[tuple]]:
    """batch_size examples of one image shape at a time, in the order the shapes' queues fill."""
    waiting: dict[tuple[int, ...], list[tuple]] = {}
    for example in examples:
        shape = tuple(example[0].shape)
        group = waiting.setdefault(shape, [])
        group.append(example)
        if len(group) == batch_size:
            yield waiting.pop(shape)


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
