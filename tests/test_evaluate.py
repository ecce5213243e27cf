"""Evaluation: FD-VAE64 against scipy and closed forms, adherence against the analyser used
directly, UNet call counts against a hook on the UNet, and `sfmobile evaluate` on a tiny random
model (every requested cell in JSON and Markdown, one-line errors with exit code 2)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import tiny_models
import torch
from typer.testing import CliRunner

import sfmobile.cli.evaluate_cmd  # noqa: F401  (registers `evaluate` alone, not every command)
from sfmobile.cli import app
from sfmobile.cli.app import COMMAND_MODULES
from sfmobile.config import ModelConfig
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.evaluation.evaluate import RealReference, evaluate, round_trip_adherence
from sfmobile.train.evaluation.frechet import (
    VaeFeatures,
    frechet_distance,
    gaussian_frechet_distance,
)
from sfmobile.train.scenes.analyser import adheres, analyse
from sfmobile.train.scenes.generator import heldout_prompts
from sfmobile.train.scenes.render import render_scene, to_model_input
from sfmobile.train.stages.teacher import teacher_scheduler
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

TINY_VAE = tiny_models.vae(scaling_factor=0.5)
TINY_UNET = tiny_models.unet()
TINY_TEXT = tiny_models.TEXT


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model() -> StableDiffusion:
    torch.manual_seed(0)
    config = ModelConfig(unet=TINY_UNET, text_encoder=TINY_TEXT, vae=TINY_VAE)
    return StableDiffusion(
        config=config,
        unet=UNet(TINY_UNET),
        text_encoder=TextEncoder(TINY_TEXT),
        vae=AutoencoderKL(TINY_VAE),
        scheduler=teacher_scheduler(),
        source="tiny random",
    ).eval()


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula as pytorch-fid writes it, with scipy's general matrix square root."""
    linalg = pytest.importorskip("scipy.linalg")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float((mu_a - mu_b) @ (mu_a - mu_b) + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_matches_scipy_sqrtm_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.3, 1.5, size=(250, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance(a, b) == pytest.approx(reference_frechet(a, b), rel=1e-6)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    distance = gaussian_frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert distance == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_of_identical_feature_sets_is_zero():
    features = np.random.default_rng(1).normal(size=(200, 64))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_vae_features_are_scaled_latent_means_averaged_over_2x2_patches(tiny_model):
    images = np.stack([render_scene(s, 64) for s in heldout_prompts(3, seed=0)])
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        latents = tiny_model.vae.encode(x).numpy() * TINY_VAE.scaling_factor  # [3, 4, 8, 8]
    pooled = latents.reshape(3, 4, 4, 2, 4, 2).mean(axis=(3, 5)).reshape(3, 64)
    extractor = VaeFeatures(tiny_model.vae)
    assert extractor.name == "FD-VAE64"
    np.testing.assert_allclose(extractor(images), pooled, rtol=1e-5, atol=1e-6)


def test_real_render_adherence_equals_the_analyser_applied_directly(tiny_model):
    scenes = heldout_prompts(12, seed=0)
    reference = RealReference.build(scenes, 64, VaeFeatures(tiny_model.vae))
    checks = [adheres(analyse(render_scene(scene, 64)), scene) for scene in scenes]
    assert reference.adherence.rate == pytest.approx(np.mean([c["all"] for c in checks]))
    for key in ("colour", "shape", "background", "relation", "position"):
        stated = [c[key] for c in checks if key in c]
        assert reference.adherence.attributes[key] == pytest.approx(np.mean(stated))
        assert reference.adherence.counts[key] == len(stated)


def test_round_trip_adherence_is_the_analyser_on_each_render_through_the_vae(tiny_model):
    scenes = heldout_prompts(5, seed=0)
    reference = RealReference.build(scenes, 64, VaeFeatures(tiny_model.vae))
    checks = []
    for scene in scenes:  # one picture at a time, by hand, as an independent reference
        image = torch.from_numpy(to_model_input(render_scene(scene, 64)))[None]
        with torch.no_grad():
            decoded = tiny_model.vae.decode(tiny_model.vae.encode(image))[0]
        pixels = ((decoded / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        checks.append(adheres(analyse(pixels.permute(1, 2, 0).numpy()), scene))
    score = round_trip_adherence(tiny_model, reference, batch_size=2)
    assert score.rate == pytest.approx(np.mean([c["all"] for c in checks]))
    assert score.attributes["background"] == pytest.approx(
        np.mean([c["background"] for c in checks])
    )


@pytest.mark.parametrize("guidance", [1.0, 4.5])
def test_unet_calls_per_image_counts_what_the_unet_sees(tiny_model, guidance):
    rows = []
    hook = tiny_model.unet.register_forward_hook(lambda m, args, out: rows.append(len(args[0])))
    try:
        result = evaluate(tiny_model, 2, guidance, heldout_prompts(3, seed=0), batch_size=2)
    finally:
        hook.remove()
    assert result.unet_calls_per_image == sum(rows) / 3
    assert result.unet_calls_per_image == (2 if guidance == 1.0 else 4)


def test_evaluate_is_reproducible(tiny_model):
    prompts = heldout_prompts(4, seed=0)
    first = evaluate(tiny_model, 2, 4.5, prompts, seed=7, batch_size=3)
    second = evaluate(tiny_model, 2, 4.5, prompts, seed=7, batch_size=3)
    assert (first.adherence, first.fd) == (second.adherence, second.fd)
    assert first.fd > 0.0 and first.prompts == 4  # generated and real renders differ


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_checkpoint(tiny_model, folder)
    return folder


def invoke(*args):
    return CliRunner().invoke(app, ["evaluate", *args])


def test_evaluate_command_is_registered():
    assert "evaluate_cmd" in COMMAND_MODULES


def test_cli_writes_every_requested_cell_to_json_and_markdown(checkpoint, tmp_path):
    outcome = invoke(
        "--model", f"a={checkpoint}@2", "--model", f"b={checkpoint}@1",
        "--guidance", "1,4.5", "--prompts", "3", "--batch-size", "3",
        "--json", str(tmp_path / "t.json"), "--markdown", str(tmp_path / "t.md"),
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    table = json.loads((tmp_path / "t.json").read_text())
    cells = {(r["label"], r["steps"], r["guidance"]) for r in table["results"]}
    assert cells == {("a", 2, 1.0), ("a", 2, 4.5), ("b", 1, 1.0), ("b", 1, 4.5)}
    assert table["feature_extractor"]["name"] == "FD-VAE64"
    assert list(table["vae_round_trip_ceilings"]) == ["a"]  # b shares a's VAE: one row
    markdown = (tmp_path / "t.md").read_text()
    assert "| model | steps | w = 1 | w = 4.5 |" in markdown
    assert "| real renders through a's VAE |" in markdown
    for label, steps in (("a", 2), ("b", 1)):
        row = next(
            line for line in markdown.splitlines() if line.startswith(f"| {label} | {steps} |")
        )
        assert row.count("%") == 2 and " - " not in row


def test_cli_spacing_replaces_the_models_timestep_spacing(checkpoint, tmp_path, monkeypatch):
    """`@2:leading` on a trailing-spacing model: the UNet sees SD-1.5's DDIM timesteps (T // n
    apart plus steps_offset 1: 501, 1) instead of the model's own (999, 499), in its own row."""
    from sfmobile.scheduler import DdimScheduler

    seen: list[float] = []
    forward = UNet.forward

    def recording(self, sample, timestep, *args, **kwargs):
        seen.append(float(timestep.reshape(-1)[0]))
        return forward(self, sample, timestep, *args, **kwargs)

    monkeypatch.setattr(UNet, "forward", recording)
    outcome = invoke(
        "--model", f"a={checkpoint}@2:leading", "--model", f"a={checkpoint}@2",
        "--guidance", "1", "--prompts", "2", "--batch-size", "2",
        "--json", str(tmp_path / "t.json"),
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    trailing = teacher_scheduler()
    leading = DdimScheduler(replace(trailing, timestep_spacing="leading")).timesteps(2).tolist()
    assert leading == [501, 1]
    assert seen == [*leading, *DdimScheduler(trailing).timesteps(2).tolist()]
    labels = [r["label"] for r in json.loads((tmp_path / "t.json").read_text())["results"]]
    assert labels == ["a (leading)", "a"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--model", "no-label-or-equals"], "--model"),
        (["--model", "x=.@8:sideways"], "sideways"),
        (["--model", "x=/no/such/model"], "/no/such/model"),
        (["--model", "x=.", "--guidance", "1,abc"], "--guidance"),
        (["--model", "x=.", "--guidance", "1,-2"], "--guidance"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_them(args, names):
    outcome = invoke(*args)
    assert outcome.exit_code == 2
    assert names in outcome.output and "Traceback" not in outcome.output
