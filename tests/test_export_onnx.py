"""ONNX export (sfmobile.export.onnx) and the ONNX Runtime backend, against the torch modules.

Every exported component runs in ONNX Runtime (CPU) and is compared with the torch module it
came from, on the example inputs and on realistic ones: token ids of a real prompt, UNet latents
at t=999 (pure noise) and t=1 (the end of a real trajectory), decoder latents of a trajectory the
calibration never saw. Error bounds per precision were measured on these random models (see
MAX_ERROR) and carry a small margin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import sfmobile.export.onnx as onnx_export
from sfmobile.backends.onnx_backend import OnnxBackend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle
from sfmobile.errors import InputError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.export.calibration import collect_calibration
from sfmobile.export.targets import export_targets
from sfmobile.models.random_init import random_model
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.pipeline import Pipeline
from sfmobile.presets import preset as preset_config
from sfmobile.scheduler import SchedulerConfig
from sfmobile.tokenizer import ClipTokenizer

RECIPES = {  # label: (precision, quantization)
    "fp32": ("fp32", None),
    "fp16": ("fp16", None),
    "int8-dynamic": ("int8", "dynamic"),
    "int8-static": ("int8", "static"),
}
# Max |onnx - torch| over a component's cases (outputs are O(1)): measured on these random
# models, then about 1.5x margin. Measured (tiny / demo, worst case):
#   fp16          text 2.5e-3 / 3.5e-3   unet 5.2e-3 / 1.2e-2 (t=999)   decoder 1.8e-3 / 6.9e-3
#   int8-dynamic  text 0.064 / 0.088     unet 0.015 / 0.0081            decoder 4.7e-3 / 0.011
#   int8-static   text 0.08-0.12 / 0.18  unet 0.24-0.29 / 0.25 (t=999)  decoder 0.07-0.09 / 0.09
MAX_ERROR = {
    "fp32": {"text_encoder": 1e-4, "unet": 1e-4, "decoder": 1e-4},
    "fp16": {"text_encoder": 6e-3, "unet": 2e-2, "decoder": 1e-2},
    "int8-dynamic": {"text_encoder": 0.13, "unet": 0.025, "decoder": 0.02},
    "int8-static": {"text_encoder": 0.27, "unet": 0.4, "decoder": 0.14},
}
SIZES = {"tiny": 64, "demo": 256}
PROMPT = "a photo of an astronaut riding a horse on the moon"


def single_thread() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return options


class Preset:
    """A random model of one preset, its export targets, calibration and held-out inputs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = random_model(name)
        size = SIZES[name]
        self.targets = {t.name: t for t in export_targets(self.model, size, size, cfg_batch=2)}
        self.calibration = collect_calibration(self.model, prompts=2, height=size, width=size)
        # A trajectory the calibration never saw (another seed): realistic late-step inputs.
        self.held_out = collect_calibration(self.model, prompts=1, seed=11, height=size, width=size)
        self.exports: dict[str, dict] = {}
        self.folders: dict[str, object] = {}

    def export(self, label: str, out_dir) -> dict[str, tuple]:
        """{component: (ComponentSpec, InferenceSession)} for a recipe, exported once."""
        if label not in self.exports:
            precision, quantization = RECIPES[label]
            folder = out_dir / f"{self.name}-{label}"
            folder.mkdir()
            self.folders[label] = folder
            result = {}
            for name, target in self.targets.items():
                samples = self.calibration.for_target(name) if quantization == "static" else None
                spec = onnx_export.export_component(
                    target, precision, quantization, samples, folder
                )
                session = ort.InferenceSession(
                    str(folder / spec.files[0]), single_thread(), ["CPUExecutionProvider"]
                )
                result[name] = (spec, session)
            self.exports[label] = result
        return self.exports[label]

    def cases(self, name: str) -> dict[str, tuple[np.ndarray, ...]]:
        """Named input tuples for one component: example, plus realistic ones."""
        target = self.targets[name]
        cases = {"example": tuple(a.numpy() for a in target.example_args())}
        if name == "text_encoder":
            ids = ClipTokenizer.default().encode(PROMPT)
            cases["prompt"] = (np.array([ids], np.int32),)
        elif name == "unet":
            latents, _, text = self.held_out.unet[0][:3]
            batch = latents.shape[0]
            noise = np.random.default_rng(0).standard_normal(latents.shape).astype(np.float32)
            final = self.held_out.decoder[0][0] * np.float32(self.model.config.vae.scaling_factor)
            cases["t999"] = (noise, np.full((batch,), 999.0, np.float32), text)
            cases["t1"] = (
                np.concatenate([final] * batch),
                np.full((batch,), 1.0, np.float32),
                text,
            )
        else:
            cases["trajectory"] = self.held_out.decoder[0]
        return cases


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The references run single-threaded: on a loaded 2-core machine torch's spinning worker
    threads made a tiny UNet call 25x slower (9 s instead of 0.36 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def presets():
    return {}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-exports")


def get_preset(presets: dict, name: str) -> Preset:
    if name not in presets:
        presets[name] = Preset(name)
    return presets[name]


def torch_output(target, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    with torch.no_grad():
        return target.module(*(torch.from_numpy(a) for a in inputs)).numpy()


def max_error(preset: Preset, label: str, name: str, out_dir) -> dict[str, float]:
    spec, session = preset.export(label, out_dir)[name]
    target = preset.targets[name]
    errors = {}
    for case, inputs in preset.cases(name).items():
        if label == "int8-static" and case == "example":
            continue  # random ids / N(0, 1) decoder latents lie outside the calibrated ranges
        feeds = {t.name: a for t, a in zip(spec.inputs, inputs, strict=True)}
        output = session.run(None, feeds)[0]
        errors[case] = float(np.abs(output - torch_output(target, inputs)).max())
    return errors


@pytest.mark.parametrize("name", ["text_encoder", "unet", "decoder"])
@pytest.mark.parametrize("label", list(RECIPES))
@pytest.mark.parametrize("preset_name", ["tiny", "demo"])
def test_component_matches_torch(presets, export_dir, preset_name, label, name):
    preset = get_preset(presets, preset_name)
    errors = max_error(preset, label, name, export_dir)
    assert max(errors.values()) <= MAX_ERROR[label][name], errors


@pytest.mark.parametrize("label", list(RECIPES))
def test_tensor_names_shapes_and_float_io_follow_the_target(presets, export_dir, label):
    preset = get_preset(presets, "tiny")
    for name, (spec, session) in preset.export(label, export_dir).items():
        target = preset.targets[name]

        def described(tensors):
            return [(t.name, t.shape, t.dtype) for t in tensors]

        assert described(spec.inputs) == described(target.inputs)
        assert described(spec.outputs) == described(target.outputs)
        assert [i.name for i in session.get_inputs()] == [t.name for t in target.inputs]
        assert (spec.format, spec.precision, spec.files) == ("onnx", label, [f"{name}.onnx"])


def graph_of(preset: Preset, label: str, name: str, export_dir) -> onnx.GraphProto:
    preset.export(label, export_dir)
    return onnx.load(str(preset.folders[label] / f"{name}.onnx")).graph


def test_fp16_keeps_the_timestep_sinusoid_in_float32(presets, export_dir):
    """timestep x frequency reaches 999 rad: float16 would put sin/cos off by up to 0.3."""
    graph = graph_of(get_preset(presets, "tiny"), "fp16", "unet", export_dir)
    inferred = onnx.shape_inference.infer_shapes(onnx.helper.make_model(graph)).graph
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.value_info}
    angles = [node.input[0] for node in graph.node if node.op_type in ("Sin", "Cos")]
    assert angles and all(types[a] == onnx.TensorProto.FLOAT for a in angles)
    weights = [t.data_type for t in graph.initializer if len(t.dims) >= 2]
    assert weights and all(t == onnx.TensorProto.FLOAT16 for t in weights)


def test_int8_dynamic_quantizes_matmuls_and_leaves_convolutions_float(presets, export_dir):
    """ConvInteger has no fast x86 path: quantizing convolutions made the UNet slower."""
    ops = {
        node.op_type
        for node in graph_of(get_preset(presets, "tiny"), "int8-dynamic", "unet", export_dir).node
    }
    assert "Conv" in ops and "ConvInteger" not in ops
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"}


def test_int8_static_is_per_channel_qdq_keeping_edge_convs_and_attention_float(presets, export_dir):
    graph = graph_of(get_preset(presets, "tiny"), "int8-static", "unet", export_dir)
    produced_by = {out: node for node in graph.node for out in node.output}
    initializers = {t.name: t for t in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    for conv in (convs[0], convs[-1]):
        assert conv.input[1] in initializers
        assert initializers[conv.input[1]].data_type == onnx.TensorProto.FLOAT
    dequantize = produced_by[convs[1].input[1]]
    assert dequantize.op_type == "DequantizeLinear"
    scale = initializers[dequantize.input[1]]
    assert scale.dims[0] == initializers[dequantize.input[0]].dims[0]  # one per output channel
    assert initializers[dequantize.input[0]].data_type == onnx.TensorProto.INT8
    softmax_outputs = {node.output[0] for node in graph.node if node.op_type == "Softmax"}
    attention = [node for node in graph.node if softmax_outputs.intersection(node.input)]
    assert attention and all(node.op_type == "MatMul" for node in attention)


@pytest.mark.parametrize(
    ("precision", "quantization", "argument"),
    [
        ("fp16", "dynamic", "quantization"),
        ("int8", None, "quantization"),
        ("int8", "weights-only", "quantization"),
        ("int8", "static", "calibration"),
        ("int4", None, "precision"),
    ],
)
def test_bad_recipe_raises_input_error_naming_the_argument(
    tmp_path, precision, quantization, argument
):
    target = export_targets(random_model("tiny"), 64, 64, 2)[2]
    with pytest.raises(InputError, match=argument):
        onnx_export.export_component(target, precision, quantization, None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_nothing_behind(tmp_path):
    target = export_targets(random_model("tiny"), 64, 64, 2)[2]
    wrong_shape = [(np.zeros((1, 4, 3, 3), np.float32),)]
    with pytest.raises(Exception):  # noqa: B017 (ONNX Runtime's own error type)
        onnx_export.export_component(target, "int8", "static", wrong_shape, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("label", list(RECIPES))
def test_large_models_get_one_external_data_file(presets, tmp_path, monkeypatch, label):
    """Above EXTERNAL_DATA_BYTES (protobuf's 2 GiB limit) weights go to `<name>.onnx.data`."""
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    preset = get_preset(presets, "tiny")
    precision, quantization = RECIPES[label]
    samples = preset.calibration.decoder if quantization == "static" else None
    target = preset.targets["decoder"]
    spec = onnx_export.export_component(target, precision, quantization, samples, tmp_path)
    assert spec.files == ["decoder.onnx", "decoder.onnx.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == spec.files
    assert (tmp_path / "decoder.onnx").stat().st_size < (
        tmp_path / "decoder.onnx.data"
    ).stat().st_size
    session = ort.InferenceSession(str(tmp_path / "decoder.onnx"), single_thread())
    latents = preset.held_out.decoder[0]
    output = session.run(None, {"latents": latents[0]})[0]
    assert np.abs(output - torch_output(target, latents)).max() <= MAX_ERROR[label]["decoder"]


@pytest.mark.parametrize("label", ["fp32", "fp16", "int8-dynamic"])
def test_large_path_computes_exactly_what_the_inline_path_computes(
    presets, export_dir, tmp_path, monkeypatch, label
):
    """The external-data path (gathered side file; int8 dynamic with the weights it leaves
    float hidden from ONNX Runtime's quantizer) makes the same model as the inline one."""
    preset = get_preset(presets, "tiny")
    precision, quantization = RECIPES[label]
    _, inline = preset.export(label, export_dir)["unet"]
    quantizer_inputs = []
    import onnxruntime.quantization as ort_quantization

    quantize_dynamic = ort_quantization.quantize_dynamic

    def spy(source, *args, **kwargs):
        quantizer_inputs.append(onnx.load(source, load_external_data=False))
        return quantize_dynamic(source, *args, **kwargs)

    monkeypatch.setattr(ort_quantization, "quantize_dynamic", spy)
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    spec = onnx_export.export_component(
        preset.targets["unet"], precision, quantization, None, tmp_path
    )
    assert spec.files == ["unet.onnx", "unet.onnx.data"]
    large = ort.InferenceSession(str(tmp_path / "unet.onnx"), single_thread())
    for inputs in preset.cases("unet").values():
        feeds = {t.name: a for t, a in zip(spec.inputs, inputs, strict=True)}
        np.testing.assert_array_equal(large.run(None, feeds)[0], inline.run(None, feeds)[0])
    if quantization == "dynamic":
        (seen,) = quantizer_inputs
        read_by = {i: n.op_type for n in seen.graph.node for i in n.input}
        weights = {t.name for t in seen.graph.initializer if len(t.dims) >= 2}
        assert {read_by[w] for w in weights} <= {"MatMul", "Gemm", "Gather"}
        assert "Conv" in {read_by[i.name] for i in seen.graph.input if i.name in read_by}


def test_released_weights_make_the_same_bundle_and_are_gone_after(tmp_path):
    """release_weights (the CLI's): each module's torch weights are freed once traced (the VAE's
    shared ones only after the encoder, the last to use them); the bundle and its source
    fingerprint are those of an export that keeps them."""
    bundles = {}
    for release in (False, True):
        model = random_model("tiny")
        bundles[release] = read_bundle(
            export_bundle(
                model, tmp_path / str(release), "onnx", "fp32", None, 64, 64,
                with_encoder=True, release_weights=release,
            )
        )  # fmt: skip
    assert all(p.numel() == 0 for m in model.modules().values() for p in m.parameters())
    kept, released = bundles[False].manifest, bundles[True].manifest
    assert released.created_by == kept.created_by  # source_sha256 of the same weights
    targets = export_targets(random_model("tiny"), 64, 64, 2, with_encoder=True)
    for target in targets:
        outputs = []
        for bundle in bundles.values():
            session = ort.InferenceSession(
                str(bundle.path / f"{target.name}.onnx"), single_thread()
            )
            feeds = {
                t.name: a.numpy() for t, a in zip(target.inputs, target.example_args(), strict=True)
            }
            outputs.append(session.run(None, feeds)[0])
        np.testing.assert_array_equal(*outputs)


def test_export_reports_its_phases(tmp_path):
    target = export_targets(random_model("tiny"), 64, 64, 2)[0]
    phases: list[str] = []
    onnx_export.export_component(target, "int8", "dynamic", None, tmp_path, phases.append)
    assert phases == ["trace", "simplify", "quantize", "write"]


@pytest.fixture(scope="module")
def tiny_backends(presets, tmp_path_factory):
    """An fp32 ONNX bundle of the tiny model (the lead's export_bundle) and both backends."""
    preset = get_preset(presets, "tiny")
    path = export_bundle(
        preset.model, tmp_path_factory.mktemp("bundle") / "tiny", "onnx", "fp32", None, 64, 64
    )
    return OnnxBackend(read_bundle(path), threads=1), TorchBackend(preset.model), preset


def text_rows(backend, *prompts: str) -> np.ndarray:
    tokenizer = ClipTokenizer.default()
    return np.concatenate(
        [backend.encode_text(np.array([tokenizer.encode(p)], np.int32)) for p in prompts]
    )


def test_backend_encode_text_matches_torch_backend(tiny_backends):
    onnx_backend, torch_backend, _ = tiny_backends
    got, expected = text_rows(onnx_backend, PROMPT), text_rows(torch_backend, PROMPT)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("rows", [2, 1, 4])
def test_backend_predict_matches_torch_at_any_row_count(tiny_backends, rows):
    """The bundle's UNet has a static batch of 2: 1 row is padded, 4 rows run in two calls."""
    onnx_backend, torch_backend, _ = tiny_backends
    latents = np.random.default_rng(rows).standard_normal((rows, 4, 32, 32)).astype(np.float32)
    text = text_rows(torch_backend, *["", PROMPT] * 2)[:rows]
    got = onnx_backend.predict(latents, 999.0, text)
    expected = torch_backend.predict(latents, 999.0, text)
    assert got.shape == (rows, 4, 32, 32)
    assert np.abs(got - expected).max() <= 1e-4


def test_backend_results_are_not_overwritten_by_the_next_call(tiny_backends):
    onnx_backend, torch_backend, _ = tiny_backends
    text = text_rows(torch_backend, "", PROMPT)
    first_latents = np.ones((2, 4, 32, 32), np.float32)
    first = onnx_backend.predict(first_latents, 500.0, text)
    onnx_backend.predict(-first_latents, 10.0, text)
    expected = torch_backend.predict(first_latents, 500.0, text)
    assert np.abs(first - expected).max() <= 1e-4


def test_backend_decode_matches_torch_backend(tiny_backends):
    onnx_backend, torch_backend, preset = tiny_backends
    latents = preset.held_out.decoder[0][0]
    got, expected = onnx_backend.decode(latents), torch_backend.decode(latents)
    assert got.shape == (1, 3, 64, 64)
    assert np.abs(got - expected).max() <= 1e-4


def test_pipeline_on_onnx_backend_makes_the_torch_image(tiny_backends):
    onnx_backend, torch_backend, _ = tiny_backends
    args = {"prompt": PROMPT, "steps": 3, "seed": 5, "height": 64, "width": 64}
    got = Pipeline(onnx_backend).generate(**args)
    expected = Pipeline(torch_backend).generate(**args)
    assert np.abs(got.latents - expected.latents).max() <= 1e-4
    pixels = np.asarray(got.image, np.int16) - np.asarray(expected.image, np.int16)
    assert np.abs(pixels).max() <= 1


@pytest.fixture(scope="module")
def guided_backends(tmp_path_factory):
    """A tiny guidance-distilled model (the UNet takes the guidance scale, batch 1)."""
    config = preset_config("tiny")
    config = dataclasses.replace(
        config, unet=dataclasses.replace(config.unet, guidance_embedding=True)
    )
    torch.manual_seed(3)
    model = StableDiffusion(
        config=config,
        unet=UNet(config.unet),
        text_encoder=TextEncoder(config.text_encoder),
        vae=AutoencoderKL(config.vae),
        scheduler=SchedulerConfig(),
        source="random:tiny-guided:3",
    ).eval()
    path = export_bundle(
        model, tmp_path_factory.mktemp("guided") / "b", "onnx", "fp32", None, 64, 64
    )
    return OnnxBackend(read_bundle(path), threads=1), TorchBackend(model)


def test_backend_feeds_the_guidance_input_of_a_guided_unet(guided_backends):
    onnx_backend, torch_backend = guided_backends
    assert onnx_backend.info.guidance_input and onnx_backend.info.unet_batches == (1,)
    latents = np.random.default_rng(0).standard_normal((1, 4, 32, 32)).astype(np.float32)
    text = text_rows(torch_backend, PROMPT)
    got = onnx_backend.predict(latents, 700.0, text, guidance=4.0)
    expected = torch_backend.predict(latents, 700.0, text, guidance=4.0)
    assert np.abs(got - expected).max() <= 1e-4
    other = torch_backend.predict(latents, 700.0, text, guidance=9.0)
    assert np.abs(got - other).max() > 1e-3  # the guidance value reaches the model


def test_guided_unet_without_guidance_raises_input_error(guided_backends):
    onnx_backend, torch_backend = guided_backends
    latents = np.zeros((1, 4, 32, 32), np.float32)
    with pytest.raises(InputError, match="guidance"):
        onnx_backend.predict(latents, 700.0, text_rows(torch_backend, PROMPT))
