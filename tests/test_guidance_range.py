"""The guidance range a model was distilled for: recorded by the distill stage, kept by the
checkpoint (sfmobile.json) and the bundle manifest (guidance.distilled_range), and a one-line
warning from `sfmobile generate` outside it."""

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from sfmobile.backends.onnx_backend import OnnxBackend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle
from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import CheckpointError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.models.random_init import random_model
from sfmobile.pipeline import Pipeline
from sfmobile.train.stages.distill import DistillConfig, DistillStage
from sfmobile.weights.sfmobile_checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint

RANGE = (2.0, 14.0)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """A tiny model that says it was distilled for guidance 2..14, saved as a checkpoint."""
    folder = tmp_path_factory.mktemp("distilled") / "ckpt"
    save_checkpoint(replace(random_model("tiny", seed=0), guidance_range=RANGE), folder)
    return folder


@pytest.mark.parametrize(
    ("conditioned", "cfg_aware_prob", "expected"),
    [(False, 0.5, RANGE), (True, 0.5, (1.0, 14.0)), (False, 0.0, (1.0, 1.0))],
)
def test_distill_stage_records_the_range_it_trains(conditioned, cfg_aware_prob, expected):
    teacher = random_model("tiny", seed=0)
    teacher = replace(
        teacher,
        scheduler=replace(
            teacher.scheduler, prediction_type="v_prediction", timestep_spacing="trailing"
        ),
    )
    config = DistillConfig(
        student_steps=2,
        teacher_steps=4,
        guidance_range=RANGE,
        guidance_conditioned=conditioned,
        cfg_aware_prob=cfg_aware_prob,
    )
    assert DistillStage(teacher, config).model().guidance_range == expected


def test_checkpoint_keeps_the_range(distilled):
    assert json.loads((distilled / CONFIG_FILE).read_text())["guidance_range"] == list(RANGE)
    assert load_checkpoint(distilled).guidance_range == RANGE


def test_checkpoint_without_a_range_loads_as_unknown(tmp_path):
    save_checkpoint(random_model("tiny", seed=0), tmp_path / "plain")
    assert "guidance_range" not in json.loads((tmp_path / "plain" / CONFIG_FILE).read_text())
    assert load_checkpoint(tmp_path / "plain").guidance_range is None


@pytest.mark.parametrize("bad", [[3.0], [5.0, 2.0], [-1, 2], ["2", 14], [1, float("inf")]])
def test_checkpoint_with_a_bad_range_is_refused_naming_the_file(distilled, tmp_path, bad):
    folder = tmp_path / "ckpt"
    save_checkpoint(load_checkpoint(distilled), folder)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**meta, "guidance_range": bad}))
    with pytest.raises(CheckpointError, match=r"sfmobile\.json: guidance_range must be"):
        load_checkpoint(folder)


@pytest.mark.parametrize(("guidance", "warns"), [(1.0, True), (2.0, False), (14.0, False),
                                                 (14.5, True)])  # fmt: skip
def test_pipeline_warns_outside_the_range_only(distilled, guidance, warns):
    warning = Pipeline(TorchBackend(load_checkpoint(distilled))).guidance_warning(guidance)
    assert (warning is not None) == warns
    if warns:
        assert f"guidance {guidance:g}" in warning and "[2, 14]" in warning


def test_model_without_a_range_never_warns():
    assert Pipeline(TorchBackend(random_model("tiny", seed=0))).guidance_warning(1.0) is None


@pytest.mark.parametrize(("guidance", "lines"), [("1", 1), ("5", 0)])
def test_generate_prints_one_warning_line_on_stderr(distilled, tmp_path, guidance, lines):
    _register_commands()
    args = ["generate", "--model", str(distilled), "--prompt", "x", "--height", "32"]
    args += ["--width", "32", "--steps", "1", "--guidance", guidance]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == lines
    assert "warning:" not in result.stdout


def test_bundle_manifest_carries_the_range(distilled, tmp_path):
    bundle = export_bundle(load_checkpoint(distilled), tmp_path / "b", "onnx", "fp32", None, 32, 32)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["guidance"]["distilled_range"] == list(RANGE)
    backend = OnnxBackend(read_bundle(bundle))
    assert backend.info.guidance_range == RANGE
    assert Pipeline(backend).guidance_warning(1.0) is not None
