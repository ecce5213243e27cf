"""`sfmobile bench`: the MAC counter against hand counts, the /proc/cpuinfo reader on recorded
texts, the report writers on synthetic results, and one tiny end-to-end run (no timing asserts).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from sfmobile.bench.derive import ratios
from sfmobile.bench.machine import parse_cpuinfo
from sfmobile.bench.macs import count_macs
from sfmobile.bench.report import chart, markdown
from sfmobile.cli import app
from sfmobile.cli.app import _register_commands

CPUINFO = Path(__file__).parent / "golden" / "cpuinfo"
REPO = Path(__file__).resolve().parents[1]


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    import numpy as np

    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_mac_counter_matches_a_hand_count() -> None:
    """x [1,3,8,8] -> Conv 3x3 pad 1 (4 out) -> grouped Conv 1x1 (group 2, 4 -> 6)
    -> ConvTranspose 2x2 stride 2 (6 -> 2) -> Relu -> MatMul with [16, 5] -> Gemm transB."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], group=2),
        helper.make_node("ConvTranspose", ["c2", "w3"], ["c3"], strides=[2, 2]),
        helper.make_node("Relu", ["c3"], ["r"]),
        helper.make_node("MatMul", ["r", "m"], ["mm"]),  # [1,2,16,16] @ [16,5]
        helper.make_node("Reshape", ["mm", "shape"], ["flat"]),  # [32, 80]
        helper.make_node("Gemm", ["flat", "g"], ["out"], transB=1),  # g [7, 80]
    ]
    import numpy as np

    shape = numpy_helper.from_array(np.array([32, 80], np.int64), "shape")
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [
            _weight("w1", 4, 3, 3, 3),
            _weight("w2", 6, 2, 1, 1),
            _weight("w3", 6, 2, 2, 2),
            _weight("m", 16, 5),
            _weight("g", 7, 80),
            shape,
        ],
    )
    count = count_macs(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    conv = 4 * 8 * 8 * (3 * 3 * 3)  # every output: C_in x 3 x 3
    grouped = 6 * 8 * 8 * 2  # every output: C_in / group = 2
    transposed = 6 * 8 * 8 * (2 * 2 * 2)  # every input pixel: C_out x 2 x 2
    matmul = 1 * 2 * 16 * 5 * 16
    gemm = 32 * 7 * 80
    assert count.by_op == {
        "Conv": conv + grouped,
        "ConvTranspose": transposed,
        "MatMul": matmul,
        "Gemm": gemm,
    }
    assert count.total == conv + grouped + transposed + matmul + gemm
    assert count.unresolved == []


def test_mac_counter_on_an_exported_decoder_matches_torch_module_hooks(tmp_path) -> None:
    """The unsimplified export of a small VAE decoder (reshapes from computed shapes) against
    MACs counted on the torch modules themselves: conv and linear hooks plus the mid
    attention's two n x n x c products."""
    import torch

    from sfmobile.export.targets import DecoderExport
    from sfmobile.models.vae import AutoencoderKL
    from tests.tiny_models import vae

    torch.manual_seed(0)
    decoder = DecoderExport(AutoencoderKL(vae())).eval()
    counted = []

    def hook(module, inputs, output) -> None:
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        else:
            per_output = module.in_features
        counted.append(output.numel() * per_output)

    for module in decoder.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            module.register_forward_hook(hook)
    latents = torch.randn(1, 4, 8, 8)
    positions, channels = 8 * 8, vae().decoder_channels[-1]
    with torch.no_grad():
        decoder(latents)
        expected = sum(counted) + 2 * positions * positions * channels
        torch.onnx.export(decoder, (latents,), str(tmp_path / "d.onnx"), dynamo=False)
    count = count_macs(tmp_path / "d.onnx")
    assert count.unresolved == []
    assert count.total == expected


def test_mac_counter_reports_ops_whose_shapes_are_unknown() -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"], name="attention")],
        "dynamic",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 3]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
    )
    count = count_macs(helper.make_model(graph))
    assert (count.total, count.unresolved) == (0, ["attention"])


def test_cpuinfo_zen3_avx2_without_vnni() -> None:
    cpu = parse_cpuinfo((CPUINFO / "zen3-avx2.txt").read_text())
    assert (cpu.model, cpu.cores, cpu.vector, cpu.fma, cpu.vnni) == (
        "AMD EPYC 7B13",
        2,
        "avx2",
        True,
        False,
    )
    assert cpu.flop_per_cycle == 32
    assert cpu.peak_gflops == pytest.approx(2 * 32 * 2.445, abs=0.1)  # the 156 GFLOP/s


def test_cpuinfo_zen5_avx512_with_vnni() -> None:
    cpu = parse_cpuinfo((CPUINFO / "zen5-avx512-vnni.txt").read_text())
    assert (cpu.cores, cpu.vector, cpu.flop_per_cycle, cpu.vnni) == (2, "avx512f", 64, True)
    assert cpu.peak_gflops == pytest.approx(2 * 64 * 2.596, abs=0.1)


def test_cpuinfo_zen4_avx512_counts_its_half_width_fma_pipes() -> None:
    """Zen 4 (AMD family 25) runs a 512-bit FMA as two 256-bit halves: AVX2's 32 FLOP/cycle."""
    cpu = parse_cpuinfo((CPUINFO / "zen4-avx512-vnni.txt").read_text())
    assert (cpu.cores, cpu.vector, cpu.flop_per_cycle, cpu.vnni) == (2, "avx512f", 32, True)
    assert cpu.peak_gflops == pytest.approx(2 * 32 * 2.596, abs=0.1)


def test_roofline_gemms_compute_the_product_they_time() -> None:
    """The timed models are real GEMMs: their outputs equal numpy's product."""
    import numpy as np
    import onnxruntime as ort

    from sfmobile.bench.roofline import _gemm_model, gemm_gops

    rng = np.random.default_rng(3)
    for integer in (False, True):
        model = onnx.load_from_string(_gemm_model(64, integer))
        weight = numpy_helper.to_array(model.graph.initializer[0])
        if integer:
            a = rng.integers(0, 256, (64, 64), dtype=np.uint8)
            expected = a.astype(np.int64) @ weight.astype(np.int64)
        else:
            a = rng.standard_normal((64, 64), dtype=np.float32)
            expected = a @ weight
        session = ort.InferenceSession(_gemm_model(64, integer), None, ["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"a": a})[0], expected, rtol=1e-4)
    rate = gemm_gops(64, repeats=2)
    assert 0 < rate["median"] <= rate["best"]


def test_cpuinfo_counts_physical_cores_and_reads_the_stated_clock() -> None:
    """Two hyper-threads per core; the model name states the nominal clock."""
    text = (CPUINFO / "zen3-avx2.txt").read_text().replace("AMD EPYC 7B13", "Xeon @ 2.20GHz")
    blocks = text.strip().split("\n\n")
    twins = [b.replace("core id\t\t: 1", "core id\t\t: 0") for b in blocks]
    cpu = parse_cpuinfo("\n\n".join(blocks + twins))
    assert (cpu.cores, cpu.logical, cpu.ghz) == (2, 4, 2.2)


def test_cpuinfo_without_processors_is_an_error() -> None:
    with pytest.raises(ValueError, match="processor"):
        parse_cpuinfo("garbage\n")


def _case(recipe: str, case: str, median: float, **extra) -> dict:
    backend, precision = recipe.split("-", 1)
    return (
        {"record": "case", "kind": "component", "status": "ok", "backend": backend}
        | {"precision": precision, "case": case, "name": f"{recipe}/{case}", "median_s": median}
        | {"spread_pct": 5.0, "peak_rss_mb": 100.0}
        | extra
    )


SYNTHETIC = [
    {"record": "machine", "cpu": None, "size": 64, "random_weights": True, "command": ["x"]}
    | {"source": {"preset": "tiny"}},
    _case("onnx-fp32", "unet_b2", 2.0),
    _case("onnx-fp32", "unet_2xb1", 2.5),
    _case("onnx-fp32", "unet_guided", 1.0),
    _case("onnx-fp32", "reference_unet_b2", 3.0),
    _case("onnx-fp32", "pipeline", 4.0, peak_rss_mb=1000.0),
    _case("onnx-int8", "unet_b2", 1.0),
    _case("onnx-int8", "pipeline", 2.0, peak_rss_mb=500.0),
    _case("onnx-int8-static", "unet_b2", 0.5),
    _case("diffusers-fp32", "diffusers_pipeline", 100.0, extrapolated_from_steps=2),
]


def test_ratios_of_synthetic_results() -> None:
    found = {(r["group"], r["of"], r["against"]): r for r in ratios(SYNTHETIC)}
    first = found[(1, "onnx-fp32/pipeline", "diffusers-fp32/diffusers_pipeline")]
    assert (first["speedup"], first["note"]) == (25.0, "extrapolated from 2 steps")
    assert found[(2, "onnx-fp32/unet_b2", "onnx-fp32/reference_unet_b2")]["speedup"] == 1.5
    assert found[(4, "onnx-fp32/unet_b2", "onnx-fp32/unet_2xb1")]["speedup"] == 1.25
    assert found[(4, "onnx-fp32/unet_guided", "onnx-fp32/unet_b2")]["speedup"] == 2.0
    int8 = found[(3, "onnx-int8/pipeline", "onnx-fp32/pipeline")]
    assert (int8["speedup"], int8["memory_ratio"]) == (2.0, 0.5)
    static = found[(3, "onnx-int8-static/unet_b2", "onnx-fp32/unet_b2")]
    assert (static["speedup"], static["what"]) == (4.0, "int8-static vs fp32 (unet_b2)")


def test_limits_share_of_nominal_and_measured_gemm(monkeypatch) -> None:
    """An int8 case is held against the int8 GEMM, an fp32 one against the fp32 GEMM."""
    import sfmobile.bench.derive as derive

    gemm = {"record": "case", "kind": "roofline", "status": "ok", "case": "roofline"}
    gemm |= {"fp32_gflops": 100.0, "int8_gops": 400.0, "gemm_size": 2048, "threads": 2}
    records = [*SYNTHETIC, gemm]
    monkeypatch.setattr(derive, "case_macs", lambda _: {"unet_b2": 50 * 10**9})  # 100 GFLOP
    found = {(r["recipe"], r["case"]): r for r in derive.limits(records, 200.0)}
    fp32, int8 = found[("onnx-fp32", "unet_b2")], found[("onnx-int8", "unet_b2")]
    assert (fp32["gflops"], fp32["peak_share"], fp32["gemm"], fp32["gemm_share"]) == (
        50.0,
        0.25,
        "fp32_gflops",
        0.5,
    )
    assert (int8["gflops"], int8["gemm"], int8["gemm_share"]) == (100.0, "int8_gops", 0.25)
    assert "fp32 100.0 GFLOP/s, int8 400.0 GOP/s" in markdown(records)


def test_markdown_and_chart_of_synthetic_results(tmp_path) -> None:
    records = SYNTHETIC + ratios(SYNTHETIC)
    text = markdown(records)
    assert "random weights" in text
    assert "| onnx-int8 | " in text and "| 500.0 |" in text
    assert "extrapolated from 2 steps" in text
    assert "onnx-fp32/pipeline vs diffusers-fp32/diffusers_pipeline: 25.0x" in text
    chart(records, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--backends", "cuda"], "--backends cuda"),
        (["--backends", "tflite", "--precisions", "fp32"], "no such recipe"),
        (["--baseline-steps", "0"], "--baseline-steps"),
        (["--preset", "sd99"], "--preset 'sd99'"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, option, message) -> None:
    _register_commands()
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path), *option])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "results.jsonl").exists()


CASE_KEYS = {"record", "kind", "name", "case", "backend", "precision", "status", "pid"}
TIMED_KEYS = {"median_s", "min_s", "max_s", "spread_pct", "times_s", "peak_rss_mb"}


def test_tiny_bench_end_to_end(tmp_path) -> None:
    """The whole command on the tiny preset (onnx fp32 only, to stay quick), in two runs as on
    a busy machine: --exports-only, then the timing run with --reuse-bundles. Every case in its
    own process, the JSON lines' schema, the report and the chart."""
    out = tmp_path / "bench"
    command = [sys.executable, "-c", "from sfmobile.cli import main; main()", "bench"]
    command += ["--preset", "tiny", "--size", "64", "--repeats", "1", "--baseline-steps", "1"]
    command += ["--backends", "onnx", "--precisions", "fp32", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for extra in (["--exports-only"], ["--reuse-bundles"]):
        cli = subprocess.Popen(
            command + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        _, stderr = cli.communicate(timeout=1200)
        assert cli.returncode == 0, stderr.decode()[-2000:]
    exports = [json.loads(line) for line in (out / "exports.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in exports[1:]] == ["export"] * 4
    assert all(r["status"] == "ok" and r["export_s"] > 0 for r in exports[1:])
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    machine = lines[0]
    assert machine["record"] == "machine" and machine["random_weights"] is True
    assert {"cpu", "versions", "command"} <= set(machine) and "bench" in machine["command"]
    cases = [r for r in lines if r["record"] == "case"]
    assert all(r["status"] == "ok" for r in cases), [r.get("error") for r in cases]
    assert all(set(r) >= CASE_KEYS for r in cases)
    timed = [r for r in cases if r["kind"] in ("component", "pipeline", "diffusers")]
    assert all(set(r) >= TIMED_KEYS for r in timed)
    pids = [r["pid"] for r in cases]
    assert len(set(pids)) == len(pids) and cli.pid not in pids
    names = {r["case"] for r in cases}
    assert {"unet_b2", "unet_2xb1", "decoder_half", "pipeline", "diffusers_pipeline"} <= names
    gemm = next(r for r in cases if r["kind"] == "roofline")
    assert gemm["fp32_gflops"] > 0 and gemm["int8_gops"] > 0
    generate = next(r for r in cases if r["case"] == "generate")
    assert 0 < generate["generation_peak_rss_mb"] <= generate["peak_rss_mb"]
    assert Path(generate["image"]).stat().st_size > 0
    assert all("gemm_share" in r for r in lines if r["record"] == "limit")
    assert all(r.get("reused") for r in cases if r["kind"] == "export")
    baseline = next(r for r in cases if r["case"] == "diffusers_pipeline")
    assert baseline["extrapolated_from_steps"] == 1
    kinds = {r["record"] for r in lines}
    assert {"limit", "ratio"} <= kinds
    assert any(r["kind"] == "profile" and r["op_shares"] for r in cases)
    assert "extrapolated from 1 steps" in (out / "report.md").read_text()
    assert (out / "chart.png").stat().st_size > 0


def test_variants_keep_a_checkpoints_weights_and_swap_in_the_half_decoder(tmp_path) -> None:
    """--model: the checkpoint's UNet and text encoder are the ones timed; the half-channel
    decoder and the guidance-input UNet are rebuilt identically in every process."""
    import torch

    from sfmobile.bench.variants import Source, build
    from sfmobile.models.random_init import random_model
    from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

    saved = random_model("tiny", seed=7)
    save_checkpoint(saved, tmp_path / "ckpt")
    source = Source("tiny", str(tmp_path / "ckpt"), "tiny")
    half = build(source, "b2-half")
    for name, tensor in saved.unet.state_dict().items():
        assert torch.equal(half.unet.state_dict()[name], tensor), name
    halves = [c // 2 for c in saved.config.vae.decoder_channels]
    assert list(half.config.vae.decoder_channels) == halves
    again = build(source, "b2-half")
    first, second = half.vae.state_dict(), again.vae.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert build(source, "guided").config.unet.guidance_embedding
