"""Calibration samples (sfmobile.export.calibration): every row the phone's UNet will see."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.export.calibration import collect_calibration
from sfmobile.models.random_init import random_model
from sfmobile.tokenizer import ClipTokenizer


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield random_model("tiny")
    torch.set_num_threads(threads)


def test_batch_1_calibration_keeps_the_unconditional_row(model):
    pairs = collect_calibration(model, prompts=1, steps=2, height=64, width=64, unet_batch=2)
    rows = collect_calibration(model, prompts=1, steps=2, height=64, width=64, unet_batch=1)
    assert len(pairs.unet) == 2 and len(rows.unet) == 4
    empty = TorchBackend(model).encode_text(np.array([ClipTokenizer.default().encode("")]))
    for pair, uncond, cond in zip(pairs.unet, rows.unet[0::2], rows.unet[1::2], strict=True):
        assert uncond[0].shape == (1, *pair[0].shape[1:]) and uncond[1].shape == (1,)
        np.testing.assert_array_equal(uncond[2], empty)  # the unconditional branch is there
        for tensor, both, one, other in zip(range(3), pair, uncond, cond, strict=True):
            np.testing.assert_array_equal(both, np.concatenate([one, other]), err_msg=str(tensor))
