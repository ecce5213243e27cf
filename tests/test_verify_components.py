"""verify judges every component on identical inputs, not only the final image: a bundle whose
one component is corrupted (noise added to one ONNX weight, the manifest's checksums recomputed so
that loading succeeds) fails, naming that component (and for the UNet the step), while the
untouched bundle passes; every recipe label has thresholds."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import sha256_of
from sfmobile.cli import app, verify_cmd  # noqa: F401 (registers `verify` on app)
from sfmobile.errors import BundleError, InputError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.export.recipe import (
    FORMATS,
    LABELS,
    PRECISIONS,
    QNN_PRECISIONS,
    QUANTIZATIONS,
    Recipe,
)
from sfmobile.models.random_init import random_model
from sfmobile.pipeline import Pipeline
from sfmobile.verify import verify_bundle
from sfmobile.verify_thresholds import THRESHOLDS, thresholds_for
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

SIZE = 16
COMPONENTS = ("text_encoder", "unet", "decoder", "encoder")
STEPS = 3


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tiny = random_model("tiny", seed=2)
    tiny.scheduler = replace(tiny.scheduler, default_steps=STEPS)
    yield tiny
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bundle(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify")
    return export_bundle(model, folder / "b", "onnx", "fp32", None, SIZE, SIZE)


def corrupted(bundle, component: str, tmp_path):
    """A copy of `bundle` whose `component` has noise of 10% of its largest weight's standard
    deviation added to that weight, with the manifest's sha256 and size of the changed file
    recomputed (so only verify can catch it). Noise, not a scale: a convolution followed by a
    normalization would hide a scaled weight."""
    copy = tmp_path / f"{component}-corrupted"
    shutil.copytree(bundle, copy)
    file = copy / f"{component}.onnx"
    graph = onnx.load(file)
    largest = max(graph.graph.initializer, key=lambda t: np.prod(t.dims))
    weight = numpy_helper.to_array(largest)
    noise = np.random.default_rng(0).standard_normal(weight.shape) * 0.1 * weight.std()
    largest.CopyFrom(numpy_helper.from_array((weight + noise).astype(weight.dtype), largest.name))
    onnx.save(graph, file)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][file.name] = {"sha256": sha256_of(file), "bytes": file.stat().st_size}
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


def test_a_correct_bundle_passes_with_one_unet_check_per_step(bundle, model):
    report = verify_bundle(bundle, model, prompts=1)
    assert report.passed and report.failures() == []
    unet = [c for c in report.components if c.component == "unet"]
    timesteps = Pipeline(TorchBackend(model)).scheduler.timesteps(STEPS)
    assert [(c.step, c.timestep) for c in unet] == [
        (i + 1, float(t)) for i, t in enumerate(timesteps)
    ]
    assert [c.component for c in report.components if c.step is None] == [
        "text_encoder",
        "decoder",
    ]
    for check in report.components:
        assert check.threshold == THRESHOLDS["fp32"].component(check.component)
        assert 0 <= check.rel_error <= check.threshold and check.passed


def test_a_batch_1_unet_is_checked_per_step_on_both_rows_of_the_guidance_pair(model, tmp_path):
    path = export_bundle(model, tmp_path / "b1", "onnx", "fp32", None, SIZE, SIZE, cfg_batch=1)
    report = verify_bundle(path, model, prompts=1)
    unet = [c for c in report.components if c.component == "unet"]
    assert [(c.step, c.samples) for c in unet] == [(step, 2) for step in range(1, STEPS + 1)]
    assert report.passed


@pytest.mark.parametrize("component", ["text_encoder", "unet", "decoder"])
def test_a_corrupted_component_fails_verify_naming_it(bundle, model, component, tmp_path):
    report = verify_bundle(corrupted(bundle, component, tmp_path), model, prompts=1)
    assert not report.passed
    failed = [c for c in report.components if not c.passed]
    assert failed and {c.component for c in failed} == {component}
    expected = STEPS if component == "unet" else 1  # a UNet weight changes every step
    assert len(failed) == expected
    for check in failed:
        assert check.rel_error > check.threshold
        line = check.failure()
        assert line.startswith(f"{check.name} (fp32): relative error ")
        assert f"> threshold {check.threshold:.3g}" in line
        assert line in report.failures()
    if component == "unet":
        assert failed[0].name.startswith("unet step 1 (t=")


def test_the_cli_exits_1_naming_the_failed_step_and_writes_every_check(bundle, model, tmp_path):
    checkpoint = tmp_path / "ckpt"
    save_checkpoint(model, checkpoint)
    bad = corrupted(bundle, "unet", tmp_path)
    out = tmp_path / "report.json"
    args = ["verify", str(bad), "--reference", str(checkpoint), "--prompts", "1"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "FAIL unet step 1 (t=" in result.output
    data = json.loads(out.read_text())
    assert data["passed"] is False
    assert len(data["components"]) == 2 + STEPS
    assert any(line.startswith("unet step 2 ") for line in data["failures"])
    for line in data["failures"]:  # each printed whole on one line
        assert f"FAIL {line}" in result.output.splitlines()


def all_recipes() -> list[Recipe]:
    recipes = []
    for fmt, precision, quantization in itertools.product(
        FORMATS, PRECISIONS + QNN_PRECISIONS, (None, *QUANTIZATIONS)
    ):
        try:
            recipes.append(Recipe(fmt, precision, quantization))
        except InputError:
            continue
    return recipes


def test_every_recipe_label_has_thresholds():
    """A new recipe label without a row here fails (and sfmobile.verify_thresholds refuses to
    import when its table and LABELS differ)."""
    labels = {recipe.label for recipe in all_recipes()}
    assert labels == set(LABELS) == set(THRESHOLDS)
    for label, row in THRESHOLDS.items():
        limits = [row.component(c) for c in COMPONENTS]
        assert all(0 < limit <= 1 for limit in limits), label
        fp32 = THRESHOLDS["fp32"]
        assert all(limit >= fp32.component(c) for limit, c in zip(limits, COMPONENTS, strict=True))
        assert 0 < row.min_psnr_db <= fp32.min_psnr_db


def test_a_precision_without_thresholds_is_an_error_naming_the_component():
    with pytest.raises(BundleError, match=r"manifest component unet: precision 'int4'"):
        thresholds_for("int4", "manifest component unet")
