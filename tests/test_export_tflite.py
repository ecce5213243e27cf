"""TFLite export and the LiteRT backend, against the PyTorch modules they came from.

The tiny preset at 32x32 (latents 16x16, CFG batch 2). fp32 goes through export_bundle (the
real orchestration); fp16 and int8 are made from its files with component_from_float, so the
slow conversion runs once; export_component itself runs end to end on the decoder. Every
component is compared with its torch module on the export's example inputs and on realistic
ones: real token ids; UNet latents noised to t=999 and t=1 from a held-out trajectory's final
latents with its text embeddings; that trajectory's decoder latents. Static int8 is calibrated
on other prompts and seeds than the ones it is judged on.
"""

import copy
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from sfmobile.backends.tflite_backend import TfliteBackend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import (
    TFLITE_SIGNATURE,
    Bundle,
    ComponentSpec,
    Quantization,
    TensorSpec,
    read_bundle,
)
from sfmobile.config import StageConfig, UNetConfig
from sfmobile.errors import BundleError, InputError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.export.calibration import collect_calibration
from sfmobile.export.targets import ExportTarget, export_targets
from sfmobile.export.tflite import component_from_float, export_component
from sfmobile.models.random_init import random_model
from sfmobile.models.unet import UNet
from sfmobile.scheduler import DdimScheduler
from sfmobile.tokenizer import ClipTokenizer

SIZE = 32
COMPONENTS = ("text_encoder", "unet", "decoder")
# max |tflite - torch| per precision and component: (realistic inputs, example inputs).
# Measured (tiny preset, random weights), limits set with a margin above:
#   fp32          1.2e-6 / 1.8e-6 / 1.2e-6      (1.1e-6 / 2.0e-6 / 2.5e-6 on example inputs)
#   fp16          1.2e-3 / 9.5e-4 / 6.2e-4      (1.2e-3 / 1.2e-3 / 1.6e-3)
#   int8-dynamic  3.6e-2 / 4.5e-2 / 2.7e-2      (3.7e-2 / 4.4e-2 / 7.2e-2)
#   int8-static   1.3e-1 / 1.9e-1 / 1.2e-1      (2.7e-1 / 1.6e-1 / 1.1: random-normal
#                 decoder latents are far outside the calibrated range); with averaged
#                 calibration ranges (before min/max, tflite_quantize.py) the UNet was 4.6e-1 at t=1
THRESHOLDS = {
    "fp32": {"text_encoder": (1e-4, 1e-4), "unet": (1e-4, 1e-4), "decoder": (1e-4, 1e-4)},
    "fp16": {"text_encoder": (3e-3, 3e-3), "unet": (3e-3, 3e-3), "decoder": (3e-3, 3e-3)},
    "int8-dynamic": {
        "text_encoder": (0.06, 0.06),
        "unet": (0.07, 0.07),
        "decoder": (0.05, 0.1),
    },
    "int8-static": {"text_encoder": (0.25, 0.45), "unet": (0.3, 0.3), "decoder": (0.25, 1.5)},
}
RECIPES = {
    "fp16": ("fp16", None),
    "int8-dynamic": ("int8", "dynamic"),
    "int8-static": ("int8", "static"),
}


@pytest.fixture(scope="module")
def model():
    return random_model("tiny")


@pytest.fixture(scope="module")
def targets(model):
    return {t.name: t for t in export_targets(model, SIZE, SIZE, cfg_batch=2)}


@pytest.fixture(scope="module")
def realistic(model):
    """Per component, named input tuples a real generation feeds it."""
    trajectory = collect_calibration(model, prompts=1, seed=123, height=SIZE, width=SIZE)
    text = trajectory.unet[0][2]  # [uncond, cond] embeddings of a held-out prompt
    x0 = trajectory.decoder[0][0] * model.config.vae.scaling_factor
    noise = np.random.default_rng(7).standard_normal((2, *x0.shape[1:])).astype(np.float32)
    scheduler = DdimScheduler(model.scheduler)
    tokenizer = ClipTokenizer.default()
    return {
        "text_encoder": [
            (f"tokens of {prompt!r}", (np.array([tokenizer.encode(prompt)], np.int32),))
            for prompt in ("a watercolor portrait of an old man", "")
        ],
        "unet": [
            (
                f"t={t}",
                (
                    scheduler.add_noise(np.repeat(x0, 2, axis=0), noise, t).astype(np.float32),
                    np.full((2,), t, np.float32),
                    text,
                ),
            )
            for t in (999, 1)
        ],
        "decoder": [("trajectory latents", trajectory.decoder[0])],
    }


def run_tflite(path, spec, arrays):
    """The file's signature run on real-valued inputs (int8 tensors (de)quantized here)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner(TFLITE_SIGNATURE)
    feed = {}
    for tensor, array in zip(spec.inputs, arrays, strict=True):
        q = tensor.quantization
        feed[tensor.name] = (
            np.clip(np.round(array / q.scale) + q.zero_point, -128, 127).astype(np.int8)
            if q
            else np.asarray(array, dtype=tensor.dtype)
        )
    out = runner(**feed)[spec.outputs[0].name]
    q = spec.outputs[0].quantization
    return (out.astype(np.float32) - q.zero_point) * q.scale if q else out


def errors_against_torch(target: ExportTarget, path, spec, cases):
    """{input description: max abs error against the torch module}."""
    errors = {}
    for name, arrays in cases:
        with torch.no_grad():
            expected = target.module(*(torch.from_numpy(np.asarray(a)) for a in arrays)).numpy()
        errors[name] = float(np.abs(run_tflite(path, spec, arrays) - expected).max())
    return errors


@pytest.fixture(scope="module")
def fp32_bundle(model, tmp_path_factory):
    """The fp32 export, through the orchestration that writes real bundles."""
    out = tmp_path_factory.mktemp("fp32") / "bundle"
    return read_bundle(export_bundle(model, out, "tflite", "fp32", height=SIZE, width=SIZE))


@pytest.fixture(scope="module")
def calibration(model):
    return collect_calibration(model, prompts=2, seed=0, height=SIZE, width=SIZE)


@pytest.fixture(scope="module")
def exports(targets, fp32_bundle, calibration, tmp_path_factory):
    """label -> {component: (path, ComponentSpec)}, quantized from the fp32 bundle's files."""
    cache = {"fp32": {}}
    for name, spec in fp32_bundle.manifest.components.items():
        cache["fp32"][name] = (fp32_bundle.file(spec.files[0]), spec)

    def get(label):
        if label not in cache:
            out = tmp_path_factory.mktemp(label)
            precision, quantization = RECIPES[label]
            cache[label] = {}
            for name, target in targets.items():
                samples = calibration.for_target(name) if quantization == "static" else None
                float_model = cache["fp32"][name][0]
                spec = component_from_float(
                    target, float_model, precision, quantization, samples, out
                )
                cache[label][name] = (out / spec.files[0], spec)
        return cache[label]

    return get


@pytest.mark.parametrize("label", list(THRESHOLDS))
@pytest.mark.parametrize("name", COMPONENTS)
def test_component_matches_torch_within_the_precision_threshold(
    label, name, targets, realistic, exports
):
    path, spec = exports(label)[name]
    target = targets[name]
    example = [("example inputs", tuple(a.numpy() for a in target.example_args()))]
    real_errors = errors_against_torch(target, path, spec, realistic[name])
    example_errors = errors_against_torch(target, path, spec, example)
    print(f"{label} {name}: {real_errors} {example_errors}")
    real_limit, example_limit = THRESHOLDS[label][name]
    assert max(real_errors.values()) <= real_limit, real_errors
    assert max(example_errors.values()) <= example_limit, example_errors


@pytest.mark.parametrize("label", list(THRESHOLDS))
def test_manifest_entries_carry_the_contract_names_and_float_io(label, targets, exports):
    for name, (path, spec) in exports(label).items():
        target = targets[name]
        assert (spec.format, spec.precision, spec.files) == ("tflite", label, [path.name])
        assert spec.inputs == target.inputs and spec.outputs == target.outputs


@pytest.mark.parametrize("name", ["text_encoder", "unet"])
def test_fp16_halves_and_int8_cuts_the_file_to_about_a_third(name, exports):
    """The text encoder's size is mostly its token table, which int8 static keeps int8 too."""
    size = {label: exports(label)[name][0].stat().st_size for label in THRESHOLDS}
    print(name, size)
    assert size["fp16"] < 0.6 * size["fp32"]
    assert size["int8-dynamic"] < 0.4 * size["fp32"]
    assert size["int8-static"] < 0.42 * size["fp32"]


def test_export_component_writes_only_the_model_file_and_reports_its_phases(
    targets, calibration, tmp_path
):
    phases = []
    spec = export_component(
        targets["decoder"], "int8", "static", calibration.decoder, tmp_path, phases.append
    )
    assert os.listdir(tmp_path) == ["decoder.tflite"] == spec.files
    assert phases == ["convert", "calibrate", "quantize", "write"]
    assert spec.precision == "int8-static"


def test_static_ranges_are_the_min_and_max_over_all_samples(fp32_bundle, targets, calibration):
    """Each tensor's calibrated range is the union of the ranges each sample gives alone, not
    an average of them (ai-edge-quantizer's default), which clips the widest samples."""
    from sfmobile.export.tflite_quantize import calibrate_min_max, calibration_data, static_recipe

    model = fp32_bundle.file(fp32_bundle.manifest.components["decoder"].files[0])
    (latents,) = calibration.decoder[0]
    samples = [(latents,), (3.0 * latents,), (0.5 * latents,)]
    recipe = static_recipe()

    def ranges(chosen):
        return calibrate_min_max(model, recipe, calibration_data(targets["decoder"], chosen))

    together = ranges(samples)
    alone = [ranges([sample]) for sample in samples]
    activations = [name for name, qsv in together.items() if np.size(qsv["max"]) == 1]
    assert len(activations) > 10
    for name in activations:
        np.testing.assert_array_equal(together[name]["min"], min(a[name]["min"] for a in alone))
        np.testing.assert_array_equal(together[name]["max"], max(a[name]["max"] for a in alone))


def test_static_int8_keeps_the_first_and_last_convolution_float(exports):
    """As ONNX's static recipe does: the input and output layers keep float weights, every
    other convolution has int8 weights."""
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as flatbuffer

    for name in ("unet", "decoder"):
        graph = flatbuffer.read_model(str(exports("int8-static")[name][0]))
        subgraph = graph.subgraphs[0]
        codes = [flatbuffer.TFL_OP_CODE_TO_NAME.get(c.builtinCode) for c in graph.operatorCodes]
        weights = [
            flatbuffer.TENSOR_CODE_TO_TYPE[subgraph.tensors[op.inputs[1]].type]
            for op in subgraph.operators
            if codes[op.opcodeIndex] == TFLOperationName.CONV_2D
        ]
        assert len(weights) > 3, name
        assert weights[0] == weights[-1] == "FLOAT32", (name, weights)
        assert set(weights[1:-1]) == {"INT8"}, (name, weights)


@pytest.mark.parametrize(
    "precision, quantization, named",
    [
        ("fp16", "dynamic", "quantization"),
        ("int8", None, "quantization"),
        ("int8", "static", "calibration"),
        ("bf16", None, "precision"),
    ],
)
def test_bad_recipe_is_refused_naming_the_argument_before_writing(
    precision, quantization, named, targets, tmp_path
):
    with pytest.raises(InputError, match=named):
        export_component(targets["decoder"], precision, quantization, None, tmp_path)
    assert os.listdir(tmp_path) == []


def huge_target(weights: int) -> ExportTarget:
    """A target whose weights exist only as shapes (meta device): nothing is allocated."""
    module = nn.Linear(50_000, weights // 50_000, bias=False, device="meta")
    spec = TensorSpec("x", [1, 50_000], "float32")
    return ExportTarget(
        "unet", module, [spec], [TensorSpec("y", [1, weights // 50_000], "float32")]
    )


def test_fp32_over_the_flatbuffer_limit_is_refused_naming_the_precisions_that_fit(tmp_path):
    target = huge_target(860_000_000)  # SD-1.5's UNet: 3.4 GB in fp32
    with pytest.raises(InputError, match=r"--precision fp32: unet .* use --precision fp16 or int8"):
        export_component(target, "fp32", None, None, tmp_path)
    assert os.listdir(tmp_path) == []


def test_fp16_too_is_refused_when_only_int8_fits(tmp_path):
    with pytest.raises(InputError, match=r"use --precision int8$"):
        export_component(huge_target(1_500_000_000), "fp16", None, None, tmp_path)


@pytest.fixture(scope="module")
def torch_backend(model):
    return TorchBackend(model)


@pytest.fixture(scope="module")
def tflite_backend(fp32_bundle):
    return TfliteBackend(fp32_bundle, threads=2)


def test_backend_encodes_real_tokens_like_torch(tflite_backend, torch_backend, realistic):
    for _, (ids,) in realistic["text_encoder"]:
        expected = torch_backend.encode_text(ids)
        np.testing.assert_allclose(tflite_backend.encode_text(ids), expected, atol=1e-4)


@pytest.mark.parametrize("case", [0, 1], ids=["t=999", "t=1"])
def test_backend_predicts_noise_like_torch(case, tflite_backend, torch_backend, realistic):
    latents, timesteps, text = realistic["unet"][case][1]
    expected = torch_backend.predict(latents, float(timesteps[0]), text)
    actual = tflite_backend.predict(latents, float(timesteps[0]), text)
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_backend_decodes_like_torch(tflite_backend, torch_backend, realistic):
    (latents,) = realistic["decoder"][0][1]
    np.testing.assert_allclose(
        tflite_backend.decode(latents), torch_backend.decode(latents), atol=1e-4
    )


def test_backend_reports_the_bundle_model_info(tflite_backend, model):
    info = tflite_backend.info
    assert info.unet_batches == (2,) and info.image_size == (SIZE, SIZE)
    assert info.text_width == model.config.text_encoder.width
    assert not info.guidance_input


def copy_with_component(bundle: Bundle, destination, name: str, spec) -> Bundle:
    """`bundle` copied to `destination` (files added there later are part of it), its
    manifest saying `spec` for component `name`."""
    if not destination.exists():
        shutil.copytree(bundle.path, destination)
    manifest = copy.deepcopy(bundle.manifest)
    manifest.components[name] = spec
    return Bundle(path=destination, manifest=manifest)


def test_backend_quantizes_int8_inputs_and_dequantizes_int8_outputs(
    fp32_bundle, targets, calibration, realistic, torch_backend, tmp_path
):
    """A fully static decoder (int8 input and output, like PT2E static models) decodes like
    torch once the backend applies the manifest's scale and zero point."""
    from ai_edge_quantizer import quantizer, recipe

    from sfmobile.export.tflite import read_signature
    from sfmobile.export.tflite_quantize import calibration_data, quiet_quantizer

    target = targets["decoder"]
    source = fp32_bundle.file(fp32_bundle.manifest.components["decoder"].files[0])
    engine = quantizer.Quantizer(str(source), recipe.static_wi8_ai8())
    with quiet_quantizer():
        qsv = engine.calibrate(calibration_data(target, calibration.decoder), num_threads=2)
    shutil.copytree(fp32_bundle.path, tmp_path / "bundle")
    path = tmp_path / "bundle" / "decoder_int8_io.tflite"
    with quiet_quantizer():
        engine.quantize(qsv, enable_progress_bar=False).export_model(str(path))
    inputs, outputs = read_signature(path, target)
    assert inputs[0].dtype == outputs[0].dtype == "int8"
    assert isinstance(inputs[0].quantization, Quantization)
    spec = ComponentSpec("tflite", "int8-static", [path.name], inputs, outputs)
    bundle = copy_with_component(fp32_bundle, tmp_path / "bundle", "decoder", spec)
    (latents,) = realistic["decoder"][0][1]
    actual = TfliteBackend(bundle, threads=2).decode(latents)
    error = np.abs(actual - torch_backend.decode(latents)).max()
    print("int8-io decoder max abs error", error)
    assert error < 0.3


def test_backend_refuses_a_model_that_disagrees_with_its_manifest(fp32_bundle, tmp_path):
    spec = copy.deepcopy(fp32_bundle.manifest.components["unet"])
    spec.inputs[0] = TensorSpec("sample", [1, 4, 16, 16], "float32")
    bundle = copy_with_component(fp32_bundle, tmp_path / "bundle", "unet", spec)
    with pytest.raises(
        BundleError, match=r"component unet \(unet.tflite\): tensor sample is float32 \[2, 4, 16"
    ):
        TfliteBackend(bundle)


def test_backend_feeds_the_guidance_input_of_a_guidance_distilled_unet(
    fp32_bundle, realistic, tmp_path
):
    """A UNet taking the guidance scale as an input (batch 1, no CFG pair) swapped into the
    bundle: the backend passes `guidance` and matches TorchBackend on the same UNet."""
    config = UNetConfig(
        down=(StageConfig(32, (1,), heads=2, resample=True), StageConfig(32, (0,), heads=2)),
        mid=StageConfig(32, (0,), heads=2),
        up=(StageConfig(32, (0, 0), heads=2, resample=True), StageConfig(32, (0, 0), heads=2)),
        cross_attention_dim=32,
        time_embed_dim=64,
        time_proj_dim=32,
        guidance_embedding=True,
    )
    tiny = random_model("tiny")
    torch.manual_seed(1)
    model = replace(tiny, unet=UNet(config).eval(), config=replace(tiny.config, unet=config))
    target = export_targets(model, SIZE, SIZE, cfg_batch=2)[1]
    assert [t.name for t in target.inputs][-1] == "guidance"
    shutil.copytree(fp32_bundle.path, tmp_path / "bundle")
    spec = export_component(target, "fp32", None, None, tmp_path / "bundle")
    bundle = copy_with_component(fp32_bundle, tmp_path / "bundle", "unet", spec)
    bundle.manifest.guidance = {"cfg_batch": 1, "input": True}
    backend = TfliteBackend(bundle, threads=2)
    latents, _, text = realistic["unet"][0][1]
    expected = TorchBackend(model).predict(latents[1:], 500.0, text[1:], guidance=4.0)
    actual = backend.predict(latents[1:], 500.0, text[1:], guidance=4.0)
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    with pytest.raises(InputError, match="guidance"):
        backend.predict(latents[1:], 500.0, text[1:])
