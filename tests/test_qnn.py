"""QNN bundles (export/qnn.py, backends/qnn_backend.py) on QNN's HTP simulator, against the
fp32 PyTorch pipeline.

The simulator is slow (a tiny UNet call at 32x32 latents took ~30 s on the loaded 2-core
machine), so the tiny model is exported at 16x16 pixels (8x8 latents) and images take 2 steps.
Each image is held to `sfmobile verify`'s limit for its precision (sfmobile/verify_thresholds.py,
set from these bundles among others, docs/verify.md), and the three precisions must rank as
their activations' widths do: fp16 closest to PyTorch, then w8a16, then w8a8 (measured here:
55.3, 38.9 and 24.1 dB).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime_qnn")

from sfmobile.backends.factory import open_backend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle
from sfmobile.errors import BundleError, ConfigError, InputError
from sfmobile.export.bundle_export import export_bundle
from sfmobile.models.random_init import random_model
from sfmobile.pipeline import Pipeline
from sfmobile.verify import psnr
from sfmobile.verify_thresholds import THRESHOLDS

SIZE = 16
PRECISIONS = ("w8a16", "w8a8", "fp16")
GENERATE = {"prompt": "a blue square", "steps": 2, "seed": 7, "height": SIZE, "width": SIZE}


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield random_model("tiny")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bundles(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("qnn")
    return {
        precision: export_bundle(
            model, folder / precision, "qnn", precision, height=SIZE, width=SIZE,
            calibration_prompts=2, soc="SM8550",
        )
        for precision in PRECISIONS
    }  # fmt: skip


@pytest.fixture(scope="module")
def torch_image(model):
    return np.asarray(Pipeline(TorchBackend(model)).generate(**GENERATE).image)


@pytest.fixture(scope="module")
def image_psnr(bundles, torch_image):
    """precision -> PSNR of its bundle's image against PyTorch's, each made once on the
    simulator (the slow part)."""
    made: dict[str, float] = {}

    def get(precision: str) -> float:
        if precision not in made:
            backend = open_backend(bundles[precision], "qnn")
            image = np.asarray(Pipeline(backend).generate(**GENERATE).image)
            made[precision] = psnr(image, torch_image)
            print(f"{precision} image PSNR {made[precision]:.1f} dB")
        return made[precision]

    return get


@pytest.mark.parametrize("precision", PRECISIONS)
def test_bundle_runs_wholly_on_the_htp_and_makes_the_torch_image(bundles, image_psnr, precision):
    manifest = json.loads((bundles[precision] / "manifest.json").read_text())
    assert manifest["qnn"]["soc"] == "SM8550" and manifest["qnn"]["htp_arch"] == 73
    for component, placed in manifest["qnn"]["placement"].items():
        assert placed["cpu_nodes"] == [] and placed["htp_nodes"] > 0, component
    for name, spec in manifest["components"].items():
        assert spec["files"] == [f"{name}_ctx.onnx", f"{name}_ctx_qnn.bin"]
        expected = "fp16" if name == "text_encoder" else precision  # its causal mask
        assert spec["format"] == "qnn" and spec["precision"] == expected
        assert {t["dtype"] for t in spec["inputs"] + spec["outputs"]} <= {"float32", "int32"}
        assert all(f in manifest["files"] for f in spec["files"])
    assert image_psnr(precision) >= THRESHOLDS[precision].min_psnr_db


def test_wider_activations_make_an_image_closer_to_torch(image_psnr):
    """fp16 > w8a16 (16-bit activations) > w8a8: a rewrite that breaks one kind of quantized
    tensor (as the uint16 Sigmoid once did: w8a16 below w8a8) fails here even when the image
    still clears verify's limit."""
    assert image_psnr("fp16") > image_psnr("w8a16") > image_psnr("w8a8")


def test_quantized_bundles_hold_no_float_graph(bundles):
    """The context binary, not a float model, is what runs: w8a8's is about half w8a16's."""
    sizes = {p: (bundles[p] / "unet_ctx_qnn.bin").stat().st_size for p in ("w8a16", "w8a8", "fp16")}
    assert sizes["w8a8"] < sizes["w8a16"] < sizes["fp16"]


def test_bundle_compiled_for_one_soc_refuses_another(bundles):
    with pytest.raises(BundleError, match=r"compiled for SM8550 .* cannot run on SM8750"):
        open_backend(bundles["w8a16"], "qnn", soc="sm8750")


def test_contexts_of_another_qnn_release_are_refused_naming_both(bundles, monkeypatch):
    """The bundle records the QNN SDK that compiled it; the installed plugin's QNN must be the
    same major.minor (a patch release may differ), as the app checks with its qnn-runtime."""
    import sfmobile.backends.qnn_backend as qnn_backend

    compiled = json.loads((bundles["fp16"] / "manifest.json").read_text())["qnn"]["qnn_sdk"]
    assert compiled.startswith("v" + qnn_backend.runtime_qnn_version().rsplit(".", 1)[0] + ".")
    monkeypatch.setattr(qnn_backend, "runtime_qnn_version", lambda: "2.50.0")
    with pytest.raises(BundleError, match=rf"compiled with QNN SDK {compiled}.*QNN 2\.50\.0"):
        open_backend(bundles["fp16"], "qnn")
    major_minor = ".".join(compiled.lstrip("v").split(".")[:2])
    monkeypatch.setattr(qnn_backend, "runtime_qnn_version", lambda: f"{major_minor}.99")
    assert open_backend(bundles["fp16"], "qnn").name == "qnn"


def test_tampered_context_binary_is_caught_by_its_checksum(bundles, tmp_path):
    copy = shutil.copytree(bundles["fp16"], tmp_path / "copy")
    binary = copy / "decoder_ctx_qnn.bin"
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"decoder_ctx_qnn\.bin: sha256 does not match"):
        read_bundle(copy)


def test_rejected_nodes_fail_the_export_naming_them(model, tmp_path, monkeypatch):
    """Without the LayerNorm rewrite (uint8 gammas) the HTP rejects LayerNormalization."""
    import sfmobile.export.qnn as qnn_export

    monkeypatch.setattr(qnn_export, "htp_overrides", lambda graph: {})
    with pytest.raises(ConfigError, match=r"unet: \d+ nodes would fall back.*LayerNorm"):
        export_bundle(
            model, tmp_path / "b", "qnn", "w8a8", height=SIZE, width=SIZE,
            calibration_prompts=1, soc="SM8550",
        )  # fmt: skip
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("precision", "soc", "match"),
    [("int8", "SM8550", "--format qnn takes w8a16"), ("w8a16", "SM1234", "--soc 'SM1234'")],
)
def test_bad_qnn_recipe_is_an_input_error(model, tmp_path, precision, soc, match):
    with pytest.raises(InputError, match=match):
        export_bundle(model, tmp_path / "b", "qnn", precision, height=SIZE, width=SIZE, soc=soc)


def test_large_path_compiles_a_context_computing_what_the_inline_path_computes(
    model, tmp_path, monkeypatch
):
    """Graphs over EXTERNAL_DATA_BYTES (a full-size fp32 UNet is over protobuf's 2 GiB) keep
    their weights in side files through the HTP rewrite, the QDQ quantization and the context
    compile; forced on the tiny UNet by a zero threshold, the compiled context computes
    exactly what the inline path's does."""
    import sfmobile.export.onnx as onnx_export
    import sfmobile.export.qnn as qnn_export
    from sfmobile.export.calibration import collect_calibration
    from sfmobile.export.targets import export_targets
    from sfmobile.qnn.provider import htp_session
    from sfmobile.qnn.socs import soc

    chip = soc("SM8550")
    target = export_targets(model, SIZE, SIZE, 2)[1]
    samples = collect_calibration(model, prompts=1, height=SIZE, width=SIZE).for_target("unet")
    seen: list[list[str]] = []
    rewrite = qnn_export.rewrite_for_htp

    def spy(
        source, destination, opset=None
    ):  # the side files the rewrite (the first step after) sees
        seen.append(sorted(p.name for p in source.parent.glob("*.data")))
        return rewrite(source, destination, opset)

    monkeypatch.setattr(qnn_export, "rewrite_for_htp", spy)
    outputs = []
    for threshold, folder in ((onnx_export.EXTERNAL_DATA_BYTES, "inline"), (0, "large")):
        monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", threshold)
        (tmp_path / folder).mkdir()
        spec, placed = qnn_export.export_component(
            target, "w8a16", chip, samples, tmp_path / folder
        )
        assert placed["cpu_nodes"] == []
        assert spec.files == ["unet_ctx.onnx", "unet_ctx_qnn.bin"]
        session = htp_session(tmp_path / folder / spec.files[0], chip)
        feeds = {t.name: a for t, a in zip(spec.inputs, samples[-1], strict=True)}
        outputs.append(session.run(None, feeds)[0])
    assert seen == [[], ["simplified_external.onnx.data"]]  # the large path ran on side files
    np.testing.assert_array_equal(outputs[0], outputs[1])
