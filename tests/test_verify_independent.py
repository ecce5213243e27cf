"""verify cannot be fooled: prompts apart from calibration, the reference must be the source."""

from __future__ import annotations

import pytest
import torch

from sfmobile.errors import InputError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.export.calibration import CALIBRATION_PROMPTS
from sfmobile.models.random_init import random_model
from sfmobile.verify import verify_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = random_model("tiny")
    path = export_bundle(model, tmp_path_factory.mktemp("v") / "b", "onnx", "fp32", None, 16, 16)
    yield path, model
    torch.set_num_threads(threads)


def test_verify_passes_on_prompts_the_calibration_never_used(bundle):
    path, model = bundle
    report = verify_bundle(path, model, prompts=2)
    assert report.passed and len(report.images) == 2
    assert not {i.prompt for i in report.images} & set(CALIBRATION_PROMPTS)


def test_verify_against_other_weights_is_an_error_not_a_pass(bundle):
    path, _ = bundle
    other = random_model("tiny", seed=1)
    other.source = "other-weights"
    with pytest.raises(InputError, match=r"--reference other-weights: .*source_sha256"):
        verify_bundle(path, other, prompts=1)
