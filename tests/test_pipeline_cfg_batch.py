"""Pipeline's cfg_batch: the bundle's own by default, and a batch the bundle cannot run is
refused naming --cfg-batch (never silently changed)."""

from dataclasses import replace

import pytest

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.errors import InputError
from sfmobile.models.random_init import random_model
from sfmobile.pipeline import Pipeline


@pytest.fixture(scope="module")
def model():
    return random_model("tiny", seed=0)


def static_batch(model, batches: tuple[int, ...], guidance_input: bool = False) -> TorchBackend:
    """A backend that says what an exported bundle says: its UNet takes only `batches`."""
    backend = TorchBackend(model)
    backend.info = replace(backend.info, unet_batches=batches, guidance_input=guidance_input)
    return backend


@pytest.mark.parametrize("batch", [1, 2])
def test_default_is_the_bundle_batch(model, batch):
    pipeline = Pipeline(static_batch(model, (batch,)))
    assert pipeline.cfg_batch == batch
    timings = pipeline.generate("x", steps=2, guidance_scale=5.0, height=32, width=32).timings
    assert len(timings.unet) == 2 * (3 - batch)  # batch 1: two UNet calls per step


def test_default_without_a_static_batch_is_2(model):
    assert Pipeline(TorchBackend(model)).cfg_batch == 2


def test_batch_the_bundle_cannot_run_is_refused(model):
    with pytest.raises(InputError, match=r"--cfg-batch 2: this bundle's UNet takes batch 1"):
        Pipeline(static_batch(model, (1,)), cfg_batch=2)


@pytest.mark.parametrize("batch", [0, 3])
def test_batch_outside_1_and_2_is_refused(model, batch):
    with pytest.raises(InputError, match="--cfg-batch must be 1 or 2"):
        Pipeline(TorchBackend(model), cfg_batch=batch)


def test_guidance_input_bundle_ignores_the_cfg_batch(model):
    """A guidance-input UNet runs one call per step whatever --cfg-batch says."""
    assert Pipeline(static_batch(model, (1,), guidance_input=True), cfg_batch=2).cfg_batch == 2
