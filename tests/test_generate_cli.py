"""`sfmobile generate` on an sfmobile checkpoint: output files, metadata, and bad input."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.models.random_init import random_model
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "ckpt"
    save_checkpoint(random_model("tiny", seed=0), folder)
    return folder


def run(*args: str):
    _register_commands()
    return CliRunner().invoke(app, ["generate", *args])


def test_writes_png_with_metadata_and_timings(tiny_checkpoint, tmp_path):
    result = run(
        "--model", str(tiny_checkpoint), "--prompt", "a red circle", "--height", "32",
        "--width", "48", "--seed", "5", "--steps", "3", "--out", str(tmp_path / "a.png"),
        "--timings", str(tmp_path / "t.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    image = Image.open(tmp_path / "a.png")
    assert image.size == (48, 32)
    assert image.text["prompt"] == "a red circle"
    assert (image.text["seed"], image.text["steps"], image.text["guidance"]) == ("5", "3", "7.5")
    timings = json.loads((tmp_path / "t.json").read_text())
    assert len(timings["unet"]) == 3  # one batch-2 call per step with guidance on
    assert timings["total"] >= timings["unet_total"]


def test_same_seed_same_image_and_cfg_batch_does_not_change_it(tiny_checkpoint, tmp_path):
    common = ["--model", str(tiny_checkpoint), "--prompt", "x", "--height", "32", "--width", "32"]
    run(*common, "--steps", "2", "--out", str(tmp_path / "a.png"))
    run(*common, "--steps", "2", "--cfg-batch", "1", "--out", str(tmp_path / "b.png"))
    a = np.asarray(Image.open(tmp_path / "a.png"), dtype=np.int16)
    b = np.asarray(Image.open(tmp_path / "b.png"), dtype=np.int16)
    assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--height", "30"], "--height"),
        (["--width", "0"], "--width"),
        (["--steps", "0"], "--steps"),
        (["--init-latents", "missing.npy"], "--init-latents"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tiny_checkpoint, args, names):
    result = run("--model", str(tiny_checkpoint), "--prompt", "x", *args)
    assert result.exit_code == 2
    assert names in result.output
    assert "Traceback" not in result.output


def test_missing_model_path_exits_2(tmp_path):
    result = run("--model", str(tmp_path / "nope"), "--prompt", "x")
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "latents", [np.zeros((1, 4, 8, 8), np.float32), np.zeros((1, 4, 16, 16), np.float64)]
)
def test_init_latents_of_wrong_shape_or_dtype_exit_2(tiny_checkpoint, tmp_path, latents):
    np.save(tmp_path / "l.npy", latents)
    result = run(
        "--model", str(tiny_checkpoint), "--prompt", "x", "--height", "32", "--width", "32",
        "--init-latents", str(tmp_path / "l.npy"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "init_latents" in result.output and "float32" in result.output


def test_without_backend_a_bundle_runs_on_its_own_format(tmp_path):
    """No --backend: a bundle picks its recipe's format, anything else (or nothing) torch."""
    from sfmobile.backends.factory import default_backend

    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"created_by": {"recipe": {"format": "tflite"}}}')
    assert default_backend(bundle) == "tflite"
    (bundle / "manifest.json").write_text("not json")
    assert default_backend(bundle) == "onnx"  # whose reader then names the fault
    assert default_backend(tmp_path) == "torch"
    assert default_backend(None) == "torch"
