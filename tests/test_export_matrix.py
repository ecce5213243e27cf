"""Export as a user runs it (issue #4): every format x precision of one checkpoint, an export
killed midway, and both third-party checkpoint formats feeding export unchanged.

1. The matrix: the `tiny` preset (random weights, saved as an sfmobile checkpoint and loaded
   back) exported by export_bundle at 32x32 in {onnx, tflite} x {fp32, fp16, int8 dynamic,
   int8 static}. Each cell opens its bundle with open_backend, generates an image through the
   Pipeline at 3 steps (PSNR against the PyTorch image at verify's threshold) and passes
   verify_bundle; fp32 components are within 1e-4 of PyTorch. The checkpoint's scheduler says
   3 default steps, so calibration and verification run 3-step trajectories too.
   litert-torch's float conversion is the slow step (about 10 s per component) and the same for
   every precision: the module-scoped `one_float_conversion` runs it once per component and
   copies its file for the other TFLite cells; everything else export_bundle does (fp16 / int8
   quantization, calibration, manifest, atomic write) runs in every cell.
2. `sfmobile export` killed with SIGKILL while its staging folder is being filled leaves nothing
   at the destination, and the same command then writes a bundle that loads; re-exporting over
   an existing bundle and interrupted while the old one is removed leaves a complete bundle.
3. A diffusers folder (StableDiffusionPipeline.save_pretrained) and a CompVis single file with
   the same weights export to ONNX fp32 bundles whose components compute what diffusers'
   modules compute (for the CompVis file: the modules diffusers' own single-file conversion
   builds from it), and whose manifests record the same weights fingerprint.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_pipelines import save_reference_pipeline
from safetensors.torch import save_file

import sfmobile.export.tflite as tflite_export
from sfmobile.backends.factory import open_backend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle
from sfmobile.export.bundle_export import export_bundle
from sfmobile.models.random_init import random_model
from sfmobile.pipeline import Pipeline
from sfmobile.presets import preset
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.verify import THRESHOLDS, psnr, verify_bundle
from sfmobile.weights import load_model
from sfmobile.weights.components import COMPONENTS
from sfmobile.weights.fingerprint import weights_fingerprint
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

SIZE = 32  # image side; the tiny VAE downsamples by 2, so latents are 16x16
STEPS = 3
PROMPT = "a green square above a yellow triangle"
CELLS = {  # test id: (format, precision, quantization)
    f"{format}-{label}": (format, *recipe)
    for format in ("onnx", "tflite")
    for label, recipe in {
        "fp32": ("fp32", None),
        "fp16": ("fp16", None),
        "int8-dynamic": ("int8", "dynamic"),
        "int8-static": ("int8", "static"),
    }.items()
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """References run single-threaded: on a loaded 2-core machine torch's spinning worker
    threads make tiny calls many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """One source for the matrix and the CLI: a tiny random model whose scheduler defaults to
    3 steps, as an sfmobile checkpoint."""
    model = random_model("tiny", seed=4)
    model.scheduler = replace(model.scheduler, default_steps=STEPS)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def source(checkpoint):
    return load_model(checkpoint)


@pytest.fixture(scope="module")
def torch_image(source) -> np.ndarray:
    generation = Pipeline(TorchBackend(source)).generate(
        PROMPT, steps=STEPS, seed=3, height=SIZE, width=SIZE
    )
    return np.asarray(generation.image)


@pytest.fixture(scope="module")
def one_float_conversion(tmp_path_factory):
    """tflite.convert_float run once per component of the source model (see the docstring)."""
    folder = tmp_path_factory.mktemp("float-tflite")
    convert = tflite_export.convert_float
    converted: dict[tuple, Path] = {}

    def convert_once(target, path: Path) -> Path:
        wrapped = next(target.module.children())  # the model's text encoder, UNet or decoder
        key = (target.name, id(wrapped), tuple(tuple(t.shape) for t in target.inputs))
        if key not in converted:
            converted[key] = convert(target, folder / f"{len(converted)}-{target.name}.tflite")
        shutil.copyfile(converted[key], path)
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tflite_export, "convert_float", convert_once)
        yield


@pytest.mark.parametrize("cell", list(CELLS))
def test_export_matrix_cell_generates_and_passes_verify(
    cell, source, torch_image, one_float_conversion, tmp_path
):
    format, precision, quantization = CELLS[cell]
    label = cell.removeprefix(f"{format}-")
    path = export_bundle(
        source, tmp_path / cell, format, precision, quantization, SIZE, SIZE, calibration_prompts=2
    )
    manifest = read_bundle(path).manifest
    assert {(c.format, c.precision) for c in manifest.components.values()} == {(format, label)}
    recipe = manifest.created_by["recipe"]
    assert (recipe["format"], recipe["precision"], recipe["quantization"]) == CELLS[cell]

    backend = open_backend(path, format)
    image = Pipeline(backend).generate(PROMPT, steps=STEPS, seed=3, height=SIZE, width=SIZE).image
    assert image.size == (SIZE, SIZE)
    assert psnr(np.asarray(image), torch_image) >= THRESHOLDS[label].min_psnr_db

    report = verify_bundle(path, source, prompts=1)
    print(cell, [(c.component, c.max_abs) for c in report.components], report.images[0].psnr_db)
    assert report.passed, report.to_dict()
    if precision == "fp32":
        assert all(check.max_abs <= 1e-4 for check in report.components), report.to_dict()


def sfmobile_script() -> Path:
    """The console script installed beside the interpreter running the tests."""
    return Path(sys.executable).parent / "sfmobile"


def export_command(checkpoint: Path, out: Path) -> list[str]:
    return [
        str(sfmobile_script()),
        "export",
        "--model", str(checkpoint),
        "--format", "onnx",
        "--precision", "fp32",
        "--out", str(out),
        "--height", str(SIZE),
        "--width", str(SIZE),
    ]  # fmt: skip


def wait_for_a_staged_model_file(process, parent: Path, name: str, timeout: float) -> bool:
    """Poll until the export's staging folder holds a model file (the export is midway: more
    components are still to come) or `timeout` seconds pass; True when one was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for staging in parent.glob(f".{name}.partial-*"):
            if any(path.suffix == ".onnx" for path in staging.rglob("*")):
                return True
        time.sleep(0.02)
    return False


def test_export_killed_midway_leaves_nothing_at_the_destination(checkpoint, tmp_path):
    """Timeouts are generous guards against hangs only: on a shared machine a niced export can
    take minutes. The kill comes after a model file is staged, while two are still to come."""
    assert sfmobile_script().is_file(), f"no console script at {sfmobile_script()}"
    out = tmp_path / "bundle"
    command = export_command(checkpoint, out)
    with open(tmp_path / "killed.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            midway = wait_for_a_staged_model_file(process, tmp_path, out.name, timeout=600)
            assert process.poll() is None, "the export finished before it could be killed"
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
    assert midway, (tmp_path / "killed.log").read_text()[-2000:]
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    backend = open_backend(out, "onnx")
    assert backend.info.image_size == (SIZE, SIZE)


def test_replacing_a_bundle_interrupted_midway_never_leaves_it_half_deleted(
    checkpoint, tmp_path, monkeypatch
):
    """Re-exporting over an existing bundle: an interrupt while the old bundle is being
    removed (here: after its first file is gone) must leave a complete bundle in place."""
    import sfmobile.bundle as bundle_module

    out = export_bundle(load_model(checkpoint), tmp_path / "bundle", "onnx", "fp32", None, 8, 8)
    old = read_bundle(out)
    remove = shutil.rmtree
    interrupted = []

    def interrupted_rmtree(path, *args, **kwargs):
        if not interrupted:
            interrupted.append(path)
            next(p for p in Path(path).rglob("*") if p.is_file()).unlink()
            raise KeyboardInterrupt
        remove(path, *args, **kwargs)

    monkeypatch.setattr(bundle_module.shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt), bundle_module.BundleWriter(out) as writer:
        shutil.copytree(out, writer.dir, dirs_exist_ok=True)
        (writer.dir / "manifest.json").unlink()
        writer.finish(old.manifest)
    assert interrupted
    read_bundle(out)  # complete: the old bundle or the new one, never half of either


# --- 3. diffusers folders and CompVis files feed export unchanged ----------------------------


def diffusers_pipeline(folder: Path):
    """A diffusers StableDiffusionPipeline of the `tiny` preset's architecture (random
    weights), saved with save_pretrained to `folder`."""
    from diffusers import (
        AutoencoderKL,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        sample_size=SIZE // 2,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        layers_per_block=1,
    )
    return save_reference_pipeline(folder, unet, vae)


def compvis_state(pipe) -> dict[str, torch.Tensor]:
    """The diffusers pipeline's weights under CompVis single-file names, in CompVis shapes
    (the VAE's attention projections are 1x1 convolutions there), plus a schedule buffer."""
    modules = {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "vae": pipe.vae}
    config = preset("tiny")
    state = {"alphas_cumprod": torch.linspace(1, 0, 1000)}
    for component in COMPONENTS:
        sub_config = component.config_of(config)
        tensors = modules[component.name].state_dict()
        ours_to_diffusers = {  # the map knows legacy diffusers names too: keep the saved ones
            o: d for d, o in component.diffusers_key_map(sub_config).items() if d in tensors
        }
        ours_to_compvis = {o: c for c, o in component.compvis_key_map(sub_config).items()}
        for ours, compvis in ours_to_compvis.items():
            tensor = tensors[ours_to_diffusers[ours]].clone()
            if ".mid.attn_1." in compvis and compvis.endswith("weight") and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]
            state[compvis] = tensor.contiguous()
    return state


def diffusers_modules_from_compvis(path: Path, pipe) -> dict[str, torch.nn.Module]:
    """What diffusers itself reads from the CompVis file: its single-file converters applied
    to the file, loaded strictly into fresh modules of the pipeline's configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    checkpoint = load_file(str(path))
    unet = UNet2DConditionModel.from_config(pipe.unet.config)
    unet.load_state_dict(convert_ldm_unet_checkpoint(checkpoint, pipe.unet.config))
    vae = AutoencoderKL.from_config(pipe.vae.config)
    vae.load_state_dict(convert_ldm_vae_checkpoint(checkpoint, pipe.vae.config))
    text_encoder = CLIPTextModel(pipe.text_encoder.config)
    # The converter keeps transformers-4 names (text_model.*); transformers 5 drops the prefix.
    text_state = {
        key.removeprefix("text_model."): tensor
        for key, tensor in convert_ldm_clip_checkpoint(checkpoint).items()
    }
    text_encoder.load_state_dict(text_state)
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
    }


@pytest.fixture(scope="module")
def checkpoint_formats(tmp_path_factory):
    """{format: (checkpoint path, fp32 ONNX bundle path, diffusers reference modules)}."""
    folder = tmp_path_factory.mktemp("formats")
    pipe = diffusers_pipeline(folder)
    compvis_file = folder / "tiny-compvis.safetensors"
    save_file(compvis_state(pipe), str(compvis_file))
    sources = {
        "diffusers": (
            folder / "model",
            None,
            {"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder},
        ),
        "compvis": (compvis_file, "tiny", diffusers_modules_from_compvis(compvis_file, pipe)),
    }
    result = {}
    for name, (path, preset_name, reference) in sources.items():
        model = load_model(path, preset_name)
        bundle = export_bundle(model, folder / f"bundle-{name}", "onnx", "fp32", None, SIZE, SIZE)
        result[name] = (path, bundle, {k: m.eval() for k, m in reference.items()})
    return result


def reference_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tokenizer = ClipTokenizer.default()
    return {
        "ids": np.array([tokenizer.encode(p) for p in ("", PROMPT)], np.int32),
        "latents": rng.standard_normal((2, 4, SIZE // 2, SIZE // 2)).astype(np.float32),
    }


@pytest.mark.parametrize("component", ["text_encoder", "unet", "decoder"])
@pytest.mark.parametrize("checkpoint_format", ["diffusers", "compvis"])
def test_bundle_from_checkpoint_format_computes_what_diffusers_computes(
    checkpoint_formats, checkpoint_format, component
):
    _, bundle, reference = checkpoint_formats[checkpoint_format]
    backend = open_backend(bundle, "onnx")
    inputs = reference_inputs()
    with torch.no_grad():
        text = reference["text_encoder"](torch.from_numpy(inputs["ids"]).long()).last_hidden_state
        latents = torch.from_numpy(inputs["latents"])
        if component == "text_encoder":
            got = np.concatenate([backend.encode_text(row[None]) for row in inputs["ids"]])
            expected = text.numpy()
        elif component == "unet":
            got = np.concatenate(
                [backend.predict(inputs["latents"], t, text.numpy()) for t in (999.0, 500.0, 1.0)]
            )
            expected = np.concatenate(
                [
                    reference["unet"](latents, t, encoder_hidden_states=text).sample.numpy()
                    for t in (999.0, 500.0, 1.0)
                ]
            )
        else:
            got = backend.decode(inputs["latents"][:1])
            expected = reference["vae"].decode(latents[:1]).sample.numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def test_manifest_records_the_source_and_the_same_weights_fingerprint_for_both_formats(
    checkpoint_formats, source
):
    recorded = {}
    for name, (path, bundle, _) in checkpoint_formats.items():
        created_by = read_bundle(bundle).manifest.created_by
        assert created_by["source"] == str(path)
        recorded[name] = created_by["source_sha256"]
    assert recorded["diffusers"] == recorded["compvis"]
    other_weights = weights_fingerprint(source.modules())
    assert recorded["diffusers"] != other_weights
