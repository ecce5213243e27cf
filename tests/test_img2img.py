"""Image-to-image: `sfmobile generate --init-image` against diffusers'
StableDiffusionImg2ImgPipeline (same picture, same noise, the encoder's mean on both sides),
and the exported encoder of ONNX and TFLite bundles against the PyTorch one."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img
from PIL import Image, ImageDraw
from reference_pipelines import (
    TINY_SIZE,
    assert_same_picture,
    build_tiny_reference,
    diffusers_levels,
    generate_with_cli,
)
from typer.testing import CliRunner

from sfmobile.backends.onnx_backend import OnnxBackend
from sfmobile.backends.tflite_backend import TfliteBackend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle
from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import BundleError, InputError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.init_image import image_array
from sfmobile.models.random_init import random_model
from sfmobile.noise import gaussian_noise
from sfmobile.pipeline import Pipeline, img2img_start
from sfmobile.verify import verify_bundle
from sfmobile.weights import load_model

PROMPT = "a small red circle above a blue square"
SEED = 7


def picture(width: int = TINY_SIZE, height: int = TINY_SIZE) -> Image.Image:
    """A picture with edges and colours: a gradient, a disc and a bar."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack([np.broadcast_to(x, (height, width)), y + 0 * x, 255 - (x + y) / 2], -1)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 8, height // 8, width // 2, height // 2), fill=(220, 30, 40))
    draw.rectangle((width // 2, 2 * height // 3, width - 4, height - 6), fill=(20, 40, 200))
    return image


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("img2img")
    return build_tiny_reference(folder), folder


@pytest.fixture(scope="module")
def onnx_bundle(reference):
    _, folder = reference
    out = folder / "onnx-bundle"
    model = load_model(folder / "model")
    return export_bundle(
        model, out, "onnx", "fp32", height=TINY_SIZE, width=TINY_SIZE, with_encoder=True
    )


@pytest.mark.parametrize("strength", [0.6, 1.0])
def test_generate_init_image_matches_diffusers_img2img(reference, tmp_path, monkeypatch, strength):
    pipe, folder = reference
    image = picture()
    image.save(tmp_path / "photo.png")
    # diffusers samples the posterior and draws torch noise; give it the mean and our noise
    sample_latents = img2img.retrieve_latents
    monkeypatch.setattr(
        img2img,
        "retrieve_latents",
        lambda output, generator=None: sample_latents(output, sample_mode="argmax"),
    )
    monkeypatch.setattr(
        img2img,
        "randn_tensor",
        lambda shape, **_: torch.from_numpy(gaussian_noise(SEED, tuple(shape))),
    )
    expected = StableDiffusionImg2ImgPipeline(**pipe.components)(
        PROMPT,
        image=image,
        strength=strength,
        num_inference_steps=8,
        guidance_scale=7.5,
        output_type="np",
    ).images[0]
    expected = diffusers_levels(expected)

    actual = generate_with_cli(
        [
            "--model", str(folder / "model"),
            "--prompt", PROMPT,
            "--steps", "8",
            "--guidance", "7.5",
            "--seed", str(SEED),
            "--height", str(TINY_SIZE),
            "--width", str(TINY_SIZE),
            "--init-image", str(tmp_path / "photo.png"),
            "--strength", str(strength),
        ],
        tmp_path / "ours.png",
    )  # fmt: skip
    assert_same_picture(actual, expected)
    if strength == 1.0:  # at t=876 the picture is mostly noise: nothing more to tell apart
        return
    # and it is image-to-image: text-to-image from the same seed gives another picture
    text_only = Pipeline(TorchBackend(load_model(folder / "model"))).generate(
        PROMPT, seed=SEED, height=TINY_SIZE, width=TINY_SIZE
    )
    assert np.abs(np.asarray(text_only.image, np.int16) - expected).mean() > 5


@pytest.mark.parametrize(
    ("steps", "strength", "start"), [(8, 0.6, 4), (8, 1.0, 0), (8, 0.125, 7), (10, 0.75, 3)]
)
def test_strength_keeps_the_last_int_steps_times_strength_timesteps(steps, strength, start):
    assert img2img_start(steps, strength) == start


@pytest.mark.parametrize("strength", [0.0, -0.5, 1.5, float("nan"), float("inf"), 0.1])
def test_strength_outside_the_range_or_too_small_to_run_a_step_is_refused(strength):
    with pytest.raises(InputError, match="strength"):
        img2img_start(8, strength)


def test_picture_of_another_aspect_ratio_is_refused_naming_both_sizes():
    with pytest.raises(InputError, match=r"80x64.*64x64"):
        image_array(picture(80, 64), 64, 64)


def test_picture_of_the_same_aspect_ratio_is_resized_with_lanczos():
    big = picture(128, 128)
    expected = np.asarray(big.resize((64, 64), Image.Resampling.LANCZOS), np.float32)
    array = image_array(big, 64, 64)
    assert array.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(array[0].transpose(1, 2, 0), expected / 255 * 2 - 1, atol=1e-6)


def test_onnx_bundle_encoder_matches_torch_and_makes_the_same_image(reference, onnx_bundle):
    _, folder = reference
    manifest = read_bundle(onnx_bundle).manifest
    encoder = manifest.components["encoder"]
    assert [t.shape for t in encoder.inputs] == [[1, 3, TINY_SIZE, TINY_SIZE]]
    assert [t.shape for t in encoder.outputs] == [[1, 4, TINY_SIZE // 4, TINY_SIZE // 4]]
    torch_backend = TorchBackend(load_model(folder / "model"))
    onnx_backend = OnnxBackend(read_bundle(onnx_bundle))
    pixels = image_array(picture(), TINY_SIZE, TINY_SIZE)
    np.testing.assert_allclose(
        onnx_backend.encode_image(pixels), torch_backend.encode_image(pixels), atol=1e-4
    )
    kwargs = dict(seed=SEED, height=TINY_SIZE, width=TINY_SIZE, init_image=picture(), strength=0.5)
    ours = np.asarray(Pipeline(onnx_backend).generate(PROMPT, **kwargs).image, np.int16)
    expected = np.asarray(Pipeline(torch_backend).generate(PROMPT, **kwargs).image, np.int16)
    assert (np.abs(ours - expected) <= 1).mean() >= 0.999


def test_verify_checks_the_encoder_of_a_bundle_that_has_one(reference, onnx_bundle):
    _, folder = reference
    report = verify_bundle(onnx_bundle, load_model(folder / "model"), prompts=1)
    checks = {c.component: c for c in report.components}
    assert checks["encoder"].samples == 1 and checks["encoder"].max_abs < 1e-4
    assert report.passed


def test_static_int8_calibrates_the_encoder_on_decoded_images(reference, tmp_path):
    _, folder = reference
    model = load_model(folder / "model")
    path = export_bundle(
        model,
        tmp_path / "int8",
        "onnx",
        "int8",
        "static",
        height=TINY_SIZE,
        width=TINY_SIZE,
        calibration_prompts=2,
        with_encoder=True,
    )
    assert read_bundle(path).manifest.components["encoder"].precision == "int8-static"
    pixels = image_array(picture(), TINY_SIZE, TINY_SIZE)
    expected = TorchBackend(model).encode_image(pixels)
    error = np.abs(OnnxBackend(read_bundle(path)).encode_image(pixels) - expected).max()
    print(f"int8-static encoder max abs error {error:.4f}, output max {np.abs(expected).max():.3f}")
    assert error < 0.15 * np.abs(expected).max()  # measured 0.085 of 1.07


def test_bundle_without_encoder_says_to_export_with_encoder(reference, tmp_path):
    _, folder = reference
    model = load_model(folder / "model")
    path = export_bundle(model, tmp_path / "b", "onnx", "fp32", height=TINY_SIZE, width=TINY_SIZE)
    assert "encoder" not in read_bundle(path).manifest.components
    pipeline = Pipeline(OnnxBackend(read_bundle(path)))
    with pytest.raises(BundleError, match="--with-encoder"):
        pipeline.generate(PROMPT, height=TINY_SIZE, width=TINY_SIZE, init_image=picture())


def test_tflite_bundle_encoder_matches_torch(tmp_path):
    model = random_model("tiny")
    path = export_bundle(
        model, tmp_path / "b", "tflite", "fp32", height=32, width=32, with_encoder=True
    )
    pixels = image_array(picture(32, 32), 32, 32)
    ours = TfliteBackend(read_bundle(path)).encode_image(pixels)
    np.testing.assert_allclose(ours, TorchBackend(model).encode_image(pixels), atol=1e-4)


def test_cli_refuses_strength_without_init_image_and_lora_on_a_bundle(onnx_bundle, tmp_path):
    _register_commands()
    runner = CliRunner()
    base = ["generate", "--prompt", PROMPT, "--out", str(tmp_path / "x.png")]
    result = runner.invoke(app, [*base, "--strength", "0.5"])
    assert result.exit_code == 2 and "--init-image" in result.output
    result = runner.invoke(
        app, [*base, "--model", str(onnx_bundle), "--backend", "onnx", "--lora", "a.safetensors"]
    )
    assert result.exit_code == 2 and "export --lora" in result.output
