"""The `--data` options every stage that trains on real images shares (train unet, distill,
train decoder): one help text each, and one place that turns them into a RealData."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sfmobile.train.stages.real_data import RealData

DATA = typer.Option(
    None,
    help="Images + captions: a folder with same-named .txt files, a .jsonl or .csv index, "
    "or WebDataset shards (see `sfmobile cache-latents --help`).",
)
CACHE = typer.Option(
    None, help="A `sfmobile cache-latents` folder made by the same teacher, not --data."
)
DATA_FORMAT = typer.Option("auto", help="auto | folder | jsonl | csv | webdataset")
BUCKETS = typer.Option(
    None,
    help="Aspect-ratio buckets instead of the square crop, HxW,HxW,... (e.g. "
    "512x512,448x576,576x448): each image goes to the nearest aspect ratio, each batch is one "
    "bucket's.",
)
SCENE_SIZE, DATA_SIZE = 64, 512  # the default image sizes of the scenes and of --data
DATA_IMAGE_SIZE = typer.Option(
    None,
    help=f"Image size: of the synthetic scenes, 64 or 128 (default {SCENE_SIZE}); with --data, "
    f"what images are resized and centre-cropped to, a multiple of 8 (default {DATA_SIZE}).",
)
TEACHER_PRESET = typer.Option(
    None, help="Architecture of a single-file (CompVis) teacher checkpoint (default sd15)."
)


def data_or_scenes(
    data: str | None,
    data_format: str,
    cache: Path | None,
    image_size: int | None,
    buckets: str | None,
    workers: int,
) -> tuple[RealData | None, int]:
    """For a stage that trains on the scenes unless given --data/--cache: (the RealData, or
    None for the scenes; the scene size for TrainConfig, SCENE_SIZE when the data is real).
    `workers`: --data-workers, refused without --data images to decode."""
    if data is None and cache is None and buckets is None:
        from sfmobile.train.stages.real_data import check_data_workers

        check_data_workers(workers, None)
        return None, image_size or SCENE_SIZE
    source = real_data(data, data_format, cache, image_size or DATA_SIZE, buckets, workers)
    return source, SCENE_SIZE


def real_data(
    data: str | None,
    data_format: str,
    cache: Path | None,
    image_size: int,
    buckets: str | None,
    workers: int,
) -> RealData:
    """The RealData these options describe (one-line errors for bad combinations, --data-workers
    with --cache among them)."""
    from sfmobile.train.data.images import Buckets
    from sfmobile.train.data.source import DataSpec
    from sfmobile.train.stages.real_data import RealData, check_data_workers

    source = RealData(
        data=DataSpec(data, data_format) if data is not None else None,
        cache=cache,
        image_size=image_size,
        buckets=Buckets.parse(buckets) if buckets is not None else None,
    )
    check_data_workers(workers, source)
    return source
