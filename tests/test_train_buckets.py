"""Aspect-ratio buckets (train/data/images.Buckets, train/data/batches.py): each image goes to the
bucket nearest its aspect ratio, is resized to cover it and centre-cropped, and every batch holds
one bucket's images. References: hand-derived assignments and batch order, PIL's own bicubic
resize, a fresh stream for a resumed one, an uninterrupted training run for a resumed one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from reference_pipelines import build_tiny_reference
from tiny_data import CAPTIONS, write_photos

from sfmobile.errors import ConfigError, InputError
from sfmobile.train.data.batches import StreamOptions, image_batches
from sfmobile.train.data.images import Buckets, load_image
from sfmobile.train.data.source import DataSpec
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.engine.train_state import METRICS_FILE, MetricsLog
from sfmobile.train.scenes.render import to_model_input
from sfmobile.train.stages.unet import UNET_FOLDER, UnetStage, UnetTrainConfig
from sfmobile.weights import load_model
from sfmobile.weights.safe_io import read_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

# (height, width): square, tall (w/h = 1/2), wide (w/h = 2)
BUCKETS = Buckets.parse("32x32,48x24,24x48")
SQUARE, TALL, WIDE = BUCKETS.shapes
# the photos' (height, width), in file order img0..img5
SHAPES = [(64, 32), (32, 64), (40, 48), (64, 32), (48, 48), (32, 64)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"), SHAPES)


@pytest.mark.parametrize(
    ("width", "height", "bucket"),
    [
        (48, 48, SQUARE),
        (48, 40, SQUARE),  # w/h 1.2: log distance 0.18 to 1, 0.51 to 2
        (100, 60, WIDE),  # w/h 1.67: 0.51 to 1, 0.18 to 2
        (32, 64, TALL),
        (10, 40, TALL),  # w/h 1/4: beyond every bucket, nearest is 1/2
        (400, 100, WIDE),
    ],
)
def test_an_image_goes_to_the_bucket_nearest_its_aspect_ratio(width, height, bucket) -> None:
    assert BUCKETS.nearest(width, height) == bucket


def test_bucket_lists_are_parsed_as_height_by_width_and_checked() -> None:
    assert Buckets.parse(" 512x512, 448X576 ").shapes == ((512, 512), (448, 576))
    with pytest.raises(InputError, match="512x500 is not two multiples of 8"):
        Buckets.parse("512x512,512x500")
    with pytest.raises(InputError, match="'512' is not HxW"):
        Buckets.parse("512")
    with pytest.raises(InputError, match="listed twice"):
        Buckets.parse("64x64,64x64")


def test_a_bucketed_image_is_resized_to_cover_its_bucket_and_centre_cropped(photos) -> None:
    # img1.png is 32 high, 64 wide: the wide bucket 24x48 is exactly a 0.75 resize, no crop.
    expected = Image.open(photos / "img1.png").convert("RGB").resize((48, 24), Image.BICUBIC)
    got = load_image(photos / "img1.png", BUCKETS)
    assert got.shape == (3, 24, 48)
    torch.testing.assert_close(got, torch.from_numpy(to_model_input(np.asarray(expected))))
    # img4.jpg is 48x48: into the 32x32 bucket as the square crop does it.
    torch.testing.assert_close(load_image(photos / "img4.jpg", BUCKETS), load_image(
        photos / "img4.jpg", 32))  # fmt: skip


def test_every_batch_is_one_buckets_and_no_image_is_dropped(photos) -> None:
    stream = image_batches(DataSpec(str(photos)), BUCKETS, 2, 0, 1, 0)
    batches = [next(stream) for _ in range(6)]
    # Buckets fill in reading order: tall (0, 3), then square (2, 4), then wide (1, 5).
    expected = [([0, 3], TALL), ([2, 4], SQUARE), ([1, 5], WIDE)] * 2
    for batch, (numbers, (height, width)) in zip(batches, expected, strict=True):
        assert batch["caption"] == [CAPTIONS[i] for i in numbers]
        assert batch["image"].shape == (2, 3, height, width)
    assert [b["index"].tolist() for b in batches[:2]] == [[0, 1], [2, 3]]


def test_a_bucketed_stream_resumes_at_the_batch_it_stopped_at(photos) -> None:
    spec = DataSpec(str(photos))
    fresh = image_batches(spec, BUCKETS, 2, 0, 1, 0)
    expected = [next(fresh) for _ in range(4)][2:]
    resumed = image_batches(spec, BUCKETS, 2, 0, 1, 4)
    for want in expected:
        got = next(resumed)
        assert got["caption"] == want["caption"]
        assert torch.equal(got["image"], want["image"])
        assert torch.equal(got["index"], want["index"])


def test_a_bucketed_stream_of_two_workers_resumes_from_its_saved_state(photos) -> None:
    # Each worker buckets its own share (img0, 2, 4 / img1, 3, 5); a resume from the state of
    # the third batch replays each worker's share and gives the batches that followed it.
    spec = DataSpec(str(photos))
    fresh = image_batches(spec, BUCKETS, 2, 0, 1, 0, StreamOptions(workers=2))
    batches = [next(fresh) for _ in range(6)]
    assert {b["image"].shape[2:] for b in batches} == {SQUARE, TALL, WIDE}
    saved = batches[2]["data_state"]
    assert [reader["batches"] for reader in saved["readers"]] == [2, 1]
    resumed = image_batches(spec, BUCKETS, 2, 0, 1, 6, StreamOptions(2, resume=saved))
    for want in batches[3:]:
        got = next(resumed)
        assert got["caption"] == want["caption"]
        assert torch.equal(got["image"], want["image"])
        assert got["data_state"] == want["data_state"]


def test_ranks_bucket_their_own_share(photos) -> None:
    rank1 = image_batches(DataSpec(str(photos)), BUCKETS, 2, 1, 2, 0)
    first = next(rank1)  # rank 1 reads img1, img3, img5: wide, tall, wide
    assert first["caption"] == [CAPTIONS[1], CAPTIONS[5]]
    assert first["image"].shape[2:] == WIDE


def test_buckets_with_cached_latents_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--buckets needs --data"):
        UnetTrainConfig(cache=tmp_path, buckets=BUCKETS)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    build_tiny_reference(folder)
    return folder / "model"


def bucketed_unet_stage(teacher_dir, photos) -> UnetStage:
    teacher = load_model(teacher_dir)
    config = UnetTrainConfig(data=DataSpec(str(photos)), image_size=32, buckets=BUCKETS)
    return UnetStage(teacher, teacher.config.unet, config, seed=0)


def test_bucketed_unet_training_resumes_bit_for_bit(teacher_dir, photos, tmp_path) -> None:
    def config(out, **more):
        return TrainConfig(out=out, steps=3, batch_size=2, log_every=1, lr=1e-3, **more)

    whole, split = tmp_path / "whole", tmp_path / "split"
    Trainer(bucketed_unet_stage(teacher_dir, photos), config(whole)).run()
    Trainer(bucketed_unet_stage(teacher_dir, photos), config(split, stop_after=2)).run()
    assert Trainer(bucketed_unet_stage(teacher_dir, photos), config(split)).run().finished
    expected = read_tensors(whole / UNET_FOLDER / "model.safetensors")
    actual = read_tensors(split / UNET_FOLDER / "model.safetensors")
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    losses = [r["loss"] for r in MetricsLog(whole / METRICS_FILE).records()]
    assert [r["loss"] for r in MetricsLog(split / METRICS_FILE).records()] == losses
    assert all(np.isfinite(losses))
