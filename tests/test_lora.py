"""LoRA files merged into the weights (sfmobile/weights/lora.py), in the kohya and the
diffusers/PEFT layout, against two references: the low-rank update applied by hand to the
diffusers modules, and diffusers' own `load_lora_weights` + `fuse_lora`."""

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference_pipelines import TINY_SIZE, build_tiny_reference
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle, sha256_of
from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import CheckpointError, InputError
from sfmobile.pipeline import Pipeline
from sfmobile.weights import load_model
from sfmobile.weights.fingerprint import weights_fingerprint
from sfmobile.weights.lora import LoraFile, merge_lora

RANK, ALPHA, SCALE = 2, 3.0, 0.7
# Modules a LoRA trainer targets: attention, feed-forward and projections, a ResNet conv (3x3),
# a time projection; in the text encoder the attention and the MLP.
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.2", "proj_in", "conv1", "time_emb_proj")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1")


def targets(module: nn.Module, leaves: tuple[str, ...]) -> dict[str, nn.Module]:
    return {
        name: child
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear | nn.Conv2d) and name.endswith(leaves)
    }


def low_rank_pair(layer: nn.Module, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(down, up) for a Linear, or a Conv whose down half has its kernel (kohya's LoCon)."""
    if isinstance(layer, nn.Conv2d):
        down_shape = (RANK, layer.in_channels, *layer.kernel_size)
        up_shape = (layer.out_channels, RANK, 1, 1)
    else:
        down_shape, up_shape = (RANK, layer.in_features), (layer.out_features, RANK)
    return (
        torch.randn(down_shape, generator=generator) * 0.3,
        torch.randn(up_shape, generator=generator) * 0.3,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny diffusers pipeline, its folder, and a LoRA for it: {(component, module): pair}."""
    folder = tmp_path_factory.mktemp("lora")
    pipe = build_tiny_reference(folder)
    generator = torch.Generator().manual_seed(3)
    pairs = {}
    for component, module, leaves in (
        ("unet", pipe.unet, UNET_TARGETS),
        ("text_encoder", pipe.text_encoder, TEXT_TARGETS),
    ):
        for name, layer in targets(module, leaves).items():
            pairs[component, name] = low_rank_pair(layer, generator)
    return pipe, folder, pairs


def write_lora(path, pairs, layout: str):
    tensors = {}
    for (component, name), (down, up) in pairs.items():
        if layout == "kohya":
            prefix = {"unet": "lora_unet_", "text_encoder": "lora_te_"}[component]
            key = prefix + name.replace(".", "_")
            tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up}
            tensors[f"{key}.alpha"] = torch.tensor(ALPHA)
        else:
            key = f"{component}.{name}"
            tensors |= {f"{key}.lora_A.weight": down, f"{key}.lora_B.weight": up}
    save_file({k: v.clone() for k, v in tensors.items()}, str(path))
    return path


def alpha_over_rank(layout: str) -> float:
    return ALPHA / RANK if layout == "kohya" else 1.0  # diffusers layout: no alpha, alpha = rank


def outputs(backend: TorchBackend) -> tuple[np.ndarray, np.ndarray]:
    """The text encoder's and the UNet's outputs on fixed inputs."""
    ids = np.array([[49406, 320, 1929, 3010, 49407] + [49407] * 72], dtype=np.int32)
    text = backend.encode_text(ids)
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    return text, backend.predict(latents, 501.0, text)


@pytest.mark.parametrize("layout", ["kohya", "peft"])
def test_merge_equals_the_update_applied_by_hand(reference, tmp_path, layout):
    pipe, folder, pairs = reference
    lora = write_lora(tmp_path / "style.safetensors", pairs, layout)
    merged = load_model(folder / "model")
    record = merge_lora(merged, LoraFile(lora, SCALE))

    by_hand = copy.deepcopy(pipe)
    modules = {"unet": by_hand.unet, "text_encoder": by_hand.text_encoder}
    with torch.no_grad():
        for (component, name), (down, up) in pairs.items():
            weight = modules[component].get_submodule(name).weight
            update = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
            weight += SCALE * alpha_over_rank(layout) * update
    by_hand.save_pretrained(tmp_path / "by_hand")
    expected = load_model(tmp_path / "by_hand")

    for ours, theirs in zip(
        outputs(TorchBackend(merged)), outputs(TorchBackend(expected)), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)
    assert weights_fingerprint(merged.modules()) != weights_fingerprint(
        load_model(folder / "model").modules()
    )
    assert record["scale"] == SCALE and len(record["sha256"]) == 64
    assert merged.loras == [record]


@pytest.mark.parametrize("layout", ["kohya", "peft"])
def test_merge_equals_diffusers_fuse_lora(reference, tmp_path, layout):
    pipe, folder, pairs = reference
    lora = write_lora(tmp_path / "style.safetensors", pairs, layout)
    fused = copy.deepcopy(pipe)
    fused.load_lora_weights(str(lora))
    fused.fuse_lora(lora_scale=SCALE)

    ours = load_model(folder / "model")
    merge_lora(ours, LoraFile(lora, SCALE))
    text, noise = outputs(TorchBackend(ours))
    ids = torch.tensor([[49406, 320, 1929, 3010, 49407] + [49407] * 72])
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    with torch.no_grad():
        their_text = fused.text_encoder(ids)[0]
        their_noise = fused.unet(torch.from_numpy(latents), 501, their_text).sample
    np.testing.assert_allclose(text, their_text.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(noise, their_noise.numpy(), atol=1e-4, rtol=1e-4)
    # the LoRA changes the result well beyond that tolerance
    _, plain_noise = outputs(TorchBackend(load_model(folder / "model")))
    assert np.abs(plain_noise - noise).max() > 1e-2


def test_unmatched_modules_are_named_and_nothing_is_merged(reference, tmp_path):
    _, folder, pairs = reference
    extra = dict(pairs)
    extra["unet", "down_blocks.7.attentions.0.proj_in"] = next(iter(pairs.values()))
    lora = write_lora(tmp_path / "other_model.safetensors", extra, "kohya")
    model = load_model(folder / "model")
    before = weights_fingerprint(model.modules())
    with pytest.raises(CheckpointError, match="lora_unet_down_blocks_7_attentions_0_proj_in"):
        merge_lora(model, LoraFile(lora))
    assert weights_fingerprint(model.modules()) == before and model.loras == []


def test_partial_merges_what_matches_with_a_warning(reference, tmp_path):
    _, folder, pairs = reference
    extra = dict(pairs)
    extra["unet", "down_blocks.7.attentions.0.proj_in"] = next(iter(pairs.values()))
    partial = load_model(folder / "model")
    with pytest.warns(UserWarning, match="skipped 1 LoRA modules"):
        merge_lora(partial, LoraFile(write_lora(tmp_path / "a.safetensors", extra, "peft")), True)
    whole = load_model(folder / "model")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merge_lora(whole, LoraFile(write_lora(tmp_path / "b.safetensors", pairs, "peft")))
    assert weights_fingerprint(partial.modules()) == weights_fingerprint(whole.modules())


def test_tensors_that_are_not_lora_halves_are_refused(reference, tmp_path):
    _, folder, _ = reference
    path = tmp_path / "loha.safetensors"
    save_file({"lora_unet_conv_in.hada_w1_a": torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match="hada_w1_a"):
        merge_lora(load_model(folder / "model"), LoraFile(path))


@pytest.mark.parametrize(
    ("text", "path", "scale"),
    [
        ("style.safetensors", "style.safetensors", 1.0),
        ("style.safetensors:0.5", "style.safetensors", 0.5),
        ("dir/a:b.safetensors:-1e-1", "dir/a:b.safetensors", -0.1),
        ("C:\\loras\\style.safetensors", "C:\\loras\\style.safetensors", 1.0),
    ],
)
def test_lora_argument_parses_file_and_scale(text, path, scale):
    assert LoraFile.parse(text) == LoraFile(Path(path), scale)


def test_lora_scale_must_be_finite():
    with pytest.raises(InputError, match="finite"):
        LoraFile.parse("style.safetensors:1e999")


def test_export_lora_records_file_and_scale_and_fingerprints_the_merged_weights(
    reference, tmp_path
):
    _, folder, pairs = reference
    lora = write_lora(tmp_path / "style.safetensors", pairs, "kohya")
    _register_commands()
    args = ["export", "--model", str(folder / "model"), "--format", "onnx", "--precision", "fp32"]
    args += ["--height", str(TINY_SIZE), "--width", str(TINY_SIZE)]
    result = CliRunner().invoke(
        app, [*args, "--lora", f"{lora}:0.5", "--out", str(tmp_path / "bundle")]
    )
    assert result.exit_code == 0, result.output
    created_by = read_bundle(tmp_path / "bundle").manifest.created_by
    assert created_by["recipe"]["lora"] == [
        {"file": "style.safetensors", "sha256": sha256_of(lora), "scale": 0.5}
    ]
    merged = load_model(folder / "model")
    merge_lora(merged, LoraFile(lora, 0.5))
    assert created_by["source_sha256"] == weights_fingerprint(merged.modules())


def test_generate_lora_on_torch_makes_the_merged_models_image(reference, tmp_path):
    _, folder, pairs = reference
    lora = write_lora(tmp_path / "style.safetensors", pairs, "peft")
    _register_commands()
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--model", str(folder / "model"),
            "--prompt", "a red circle",
            "--height", str(TINY_SIZE),
            "--width", str(TINY_SIZE),
            "--lora", f"{lora}:0.8",
            "--out", str(tmp_path / "ours.png"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    merged = load_model(folder / "model")
    merge_lora(merged, LoraFile(lora, 0.8))
    size = dict(height=TINY_SIZE, width=TINY_SIZE)
    expected = Pipeline(TorchBackend(merged)).generate("a red circle", **size).image
    plain = Pipeline(TorchBackend(load_model(folder / "model"))).generate("a red circle", **size)
    ours = np.asarray(Image.open(tmp_path / "ours.png").convert("RGB"))
    assert np.array_equal(ours, np.asarray(expected))
    assert not np.array_equal(ours, np.asarray(plain.image))
