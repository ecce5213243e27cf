"""The shipped demo model's loading route, `sfmobile ship-demo` and `sfmobile demo`, on tiny
stand-in checkpoints (the real model is trained separately and dropped in as a folder).

References: the source checkpoints run through the torch Pipeline (what the shipped fp16 copy
must reproduce within sfmobile.verify's fp16 threshold), and the torch images of the demo itself
(what every bundle's images are compared with).
"""

import math
import re
import stat
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

import sfmobile.cli.demo_cmd
import sfmobile.cli.generate_cmd
import sfmobile.cli.ship_demo_cmd
import sfmobile.shipped
import sfmobile.train.assembly.ship_demo
from sfmobile.apps.demo import demo_prompts
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.cli.app import app
from sfmobile.errors import CheckpointError
from sfmobile.models.random_init import random_model
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.vae import AutoencoderKL
from sfmobile.pipeline import Pipeline
from sfmobile.scheduler import SchedulerConfig
from sfmobile.train.assembly.ship_demo import SIZE_LIMIT_BYTES, component_sizes
from sfmobile.train.stages.vae import save_vae
from sfmobile.verify import THRESHOLDS, psnr
from sfmobile.weights import load_model
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

SIZE = 32  # tiny preset: 16x16 latents
STUDENT_SCHEDULER = replace(SchedulerConfig(), default_steps=2, default_guidance=3.0)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Single-threaded torch, as in test_export_onnx.py: on a loaded 2-core machine torch's
    spinning worker threads made tiny UNet calls 25x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A tiny 'student' checkpoint (2-step scheduler), a decoder run's folder holding a VAE with
    a half-width decoder (as the decoder stage writes), and the two assembled in fp32."""
    root = tmp_path_factory.mktemp("runs")
    student = replace(random_model("tiny", seed=0), scheduler=STUDENT_SCHEDULER)
    save_checkpoint(student, root / "s8" / "student")
    torch.manual_seed(1)
    vae = AutoencoderKL(replace(student.config.vae, norm_groups=16).pruned()).eval()
    save_vae(vae, root / "decoder" / "decoder")
    assembled = replace(student, vae=vae, config=replace(student.config, vae=vae.config))
    return root / "s8" / "student", root / "decoder" / "decoder", assembled


@pytest.fixture(scope="module")
def shipped(sources, tmp_path_factory):
    student, decoder, _ = sources
    out = tmp_path_factory.mktemp("package") / "demo_model"
    result = run(
        "ship-demo", "--student", str(student), "--decoder", str(decoder), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def shipped_in_package(shipped, monkeypatch):
    monkeypatch.setattr(sfmobile.shipped, "SHIPPED_DEMO_DIR", shipped)
    return shipped


def test_ship_demo_writes_fp16_weights_readable_by_every_user(shipped):
    with safe_open(str(shipped / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(key).get_dtype() for key in weights.keys()}  # noqa: SIM118
    assert dtypes == {"F16"}
    for path in [shipped, *shipped.rglob("*")]:
        assert path.stat().st_mode & stat.S_IROTH


def test_no_path_loads_the_shipped_model_as_float32_with_the_students_scheduler(
    shipped_in_package,
):
    model = load_model(None, preset="demo")
    assert model.scheduler == STUDENT_SCHEDULER
    assert model.config.vae.decoder_channels == (16, 32)  # the decoder run's, not the student's
    assert {p.dtype for m in model.modules().values() for p in m.parameters()} == {torch.float32}


def test_generate_without_model_reproduces_the_source_checkpoints_within_fp16_tolerance(
    shipped_in_package, sources, tmp_path
):
    _, _, assembled = sources
    result = run(
        "generate", "--prompt", "a red circle", "--height", str(SIZE), "--width", str(SIZE),
        "--seed", "3", "--out", str(tmp_path / "a.png"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    image = Image.open(tmp_path / "a.png")
    assert (image.text["steps"], image.text["guidance"]) == ("2", "3.0")  # the model's defaults
    expected = Pipeline(TorchBackend(assembled)).generate(
        "a red circle", steps=2, guidance_scale=3.0, seed=3, height=SIZE, width=SIZE
    )
    assert psnr(np.asarray(image), np.asarray(expected.image)) >= THRESHOLDS["fp16"].min_psnr_db


def test_generate_without_model_defaults_to_the_demo_image_size(shipped_in_package, tmp_path):
    result = run("generate", "--prompt", "x", "--steps", "1", "--out", str(tmp_path / "a.png"))
    assert result.exit_code == 0, result.output
    size = sfmobile.shipped.DEMO_IMAGE_SIZE
    assert Image.open(tmp_path / "a.png").size == (size, size)


def test_generate_without_model_or_shipped_model_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(sfmobile.shipped, "SHIPPED_DEMO_DIR", tmp_path / "demo_model")
    result = run("generate", "--prompt", "x", "--out", str(tmp_path / "a.png"))
    assert result.exit_code == 2
    assert "shipped demo model is not in this install" in result.output
    assert "--model" in result.output and "ship-demo" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "a.png").exists()


def test_shipped_demo_path_raises_checkpoint_error_naming_the_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(sfmobile.shipped, "SHIPPED_DEMO_DIR", tmp_path / "gone")
    with pytest.raises(CheckpointError, match="gone"):
        sfmobile.shipped.shipped_demo_path()


def test_no_path_with_another_preset_is_refused_naming_it(shipped_in_package):
    with pytest.raises(CheckpointError, match="'sd15'"):
        load_model(None, preset="sd15")


def test_bundle_backends_without_model_ask_for_one(shipped_in_package):
    result = run("generate", "--prompt", "x", "--backend", "onnx")
    assert result.exit_code == 2
    assert "--model" in result.output and "Traceback" not in result.output


def test_ship_demo_over_the_size_limit_is_refused_naming_each_component(
    sources, monkeypatch, tmp_path
):
    student, decoder, _ = sources
    monkeypatch.setattr(sfmobile.train.assembly.ship_demo, "SIZE_LIMIT_BYTES", 1_000_000)
    out = tmp_path / "demo_model"
    result = run(
        "ship-demo", "--student", str(student), "--decoder", str(decoder), "--out", str(out)
    )
    assert result.exit_code == 2
    assert "exceeds the 1 MB" in result.output
    assert all(name in result.output for name in ("unet", "text_encoder", "vae"))
    assert not out.exists()


def test_ship_demo_refuses_a_decoder_with_another_latent_scale(sources, tmp_path):
    student, _, assembled = sources
    vae = AutoencoderKL(replace(assembled.config.vae, scaling_factor=0.5))
    save_vae(vae, tmp_path / "decoder")
    result = run(
        "ship-demo", "--student", str(student), "--decoder", str(tmp_path / "decoder"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "scaling_factor" in result.output and str(tmp_path / "decoder") in result.output


def test_the_demo_preset_fits_the_shipping_limit_in_fp16():
    model: StableDiffusion = random_model("demo")
    assert sum(size.bytes for size in component_sizes(model)) < SIZE_LIMIT_BYTES


@pytest.fixture(scope="module")
def demo_report(sources, tmp_path_factory):
    """`sfmobile demo` on the tiny student: torch and ONNX fp16, two prompts."""
    student, _, _ = sources
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run(
        "demo", "--model", str(student), "--size", str(SIZE), "--prompts", "2",
        "--backends", "torch,onnx-fp16", "--torch-threads", "1", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(out / "report.md") in result.output
    return out / "report.md"


def section(report: str, title: str) -> list[list[str]]:
    """The body rows of the first table under `## title`, as lists of cells."""
    body = report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def test_demo_report_names_every_backend_in_every_section(demo_report):
    text = demo_report.read_text()
    grid = text.split("## Images\n", 1)[1].splitlines()[1]
    assert "torch" in grid and "onnx-fp16" in grid
    assert [row[0] for row in section(text, "Timings")] == ["torch", "onnx-fp16"]
    assert [row[0] for row in section(text, "Agreement with PyTorch")] == ["onnx-fp16"]
    assert section(text, "Bundles")[1][0].startswith("onnx-fp16")


def test_demo_report_states_the_setup_it_ran(demo_report):
    text = demo_report.read_text()
    assert f"image: {SIZE}x{SIZE}, 2 steps, guidance 3" in text  # the model's scheduler defaults
    assert "torch threads 1" in text


def test_demo_report_links_one_existing_png_per_prompt_and_backend(demo_report):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", demo_report.read_text())
    assert len(links) == 2 * 2
    for link in links:
        assert not link.startswith("/")
        assert Image.open(demo_report.parent / link).size == (SIZE, SIZE)


def test_demo_fp16_onnx_images_agree_with_torch_above_the_fp16_threshold(demo_report):
    row = section(demo_report.read_text(), "Agreement with PyTorch")[0]
    min_psnr, mean_psnr, max_diff = float(row[2]), float(row[3]), int(row[4])
    assert all(math.isfinite(v) for v in (min_psnr, mean_psnr)) and 0 <= max_diff <= 255
    assert min_psnr >= THRESHOLDS["fp16"].min_psnr_db
    for index in range(2):  # the report's number, recomputed from the images it links
        torch_image = np.asarray(Image.open(demo_report.parent / f"images/p{index}-torch.png"))
        onnx_image = np.asarray(Image.open(demo_report.parent / f"images/p{index}-onnx-fp16.png"))
        assert psnr(onnx_image, torch_image) >= min_psnr - 0.05


def test_demo_torch_images_are_the_pipelines_at_the_models_default_steps(demo_report, sources):
    caption = demo_prompts(1)[0]
    assert f"| {caption} (seed 0) |" in demo_report.read_text()
    expected = Pipeline(TorchBackend(load_model(sources[0]))).generate(
        caption, steps=2, guidance_scale=3.0, seed=0, height=SIZE, width=SIZE
    )
    got = Image.open(demo_report.parent / "images/p0-torch.png")
    assert np.array_equal(np.asarray(got), np.asarray(expected.image))


def test_demo_bad_backend_name_exits_2_naming_the_option(tmp_path):
    result = run("demo", "--backends", "torch,coreml", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "--backends" in result.output and "coreml" in result.output


def test_demo_without_model_or_shipped_model_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(sfmobile.shipped, "SHIPPED_DEMO_DIR", tmp_path / "demo_model")
    result = run("demo", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "shipped demo model is not in this install" in result.output
    assert "Traceback" not in result.output
