"""fp16 and int8 versions of a simplified fp32 ONNX model, file to file.

Inputs and outputs stay float32 (int32 token ids) in every version: fp16 casts and int8
quantize/dequantize pairs live inside the graph, so a runtime feeds the same arrays to all.

fp16 (onnxconverter-common, keep_io_types): weights and compute in float16, except the timestep
(and guidance) sinusoid: timestep x frequency reaches 999 rad, where float16's spacing is 0.5, and
sin/cos of it are off by up to 0.32 (measured against float32 at t=999, 320 frequencies), so the
Mul/Sin/Cos that make the angles stay float32. Normalizations and Softmax are left in float16:
ONNX Runtime's float16 InstanceNormalization / LayerNormalization / Softmax kernels accumulate in
float32 (measured: no overflow and no loss with activations scaled 3000x), and blocking them cost
~6% latency on the demo UNet for no accuracy gain. Resize etc. stay float32 (the converter's
default block list).

int8 dynamic: weights int8, activations quantized per call. Only MatMul, Gemm and Gather (the
token embedding table, a third of a text encoder's weights) are quantized, for speed: with Conv
included ONNX Runtime runs ConvInteger, which has no fast x86 path: the SD-1.5 UNet became 2.2x
slower than fp32 (ENVIRONMENT.md) and the demo decoder ~5x slower (measured); MatMul/Gemm alone
made the SD-1.5 UNet 1.26x faster (measured again: 4.24 s -> 3.37 s per batch-1 call).
Convolutions therefore keep float32 weights here; in a large model they are hidden from the
quantizer (external_data.hide_weights), which would otherwise hold three copies of them.

int8 static: QDQ, weights int8 per output channel, activations uint8 per tensor from MinMax over
the calibration samples; Conv/MatMul/Gemm/Gather only (the text encoder's additive causal mask
and the normalizations break whole-graph quantization: error 0.8 instead of 0.2 on the demo
text encoder). Left in float: the first and last Conv (excluding them cut the demo UNet's error
by ~20%) and the MatMuls of two activations (attention scores and values): quantizing those
made the demo UNet slower than fp32 (126 vs 121 ms per call, medians), leaving them float made
it 1.2x faster than fp32 (101 ms; ORT CPU, 2 threads, batch 2, 512x512) at the same error. On the
full-size SnapFusion UNet the convolutions dominate and static int8 is 3.03x faster than fp32
(1.98 s vs 6.01 s per batch-2 call at 512x512, 2-core Zen 4; benchmarks/README.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

from sfmobile.export.external_data import hide_weights, restore_weights
from sfmobile.export.targets import ExportTarget

DYNAMIC_OPS = ("MatMul", "Gemm", "Gather")
STATIC_OPS = ("Conv", "MatMul", "Gemm", "Gather")
ANGLE_INPUTS = ("timestep", "guidance")


def save_model(model: onnx.ModelProto, path: Path, large: bool) -> None:
    """Save with weights inline, or (large) in one side file `<file name>.data`."""
    if large:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))


def angle_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes from the timestep/guidance inputs up to and including Sin/Cos."""
    reached = {name for name in ANGLE_INPUTS}
    found: list[str] = []
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if node.name in found or not reached.intersection(node.input):
                continue
            found.append(node.name)
            changed = True
            if node.op_type not in ("Sin", "Cos"):
                reached.update(node.output)
    return found


def convert_fp16(source: Path, destination: Path, large: bool) -> Path:
    """float16 weights and compute, float32 inputs/outputs (see the module docstring)."""
    from onnxconverter_common import float16

    if large:  # shape inference on a ModelProto is limited to 2 GiB; the path version is not
        onnx.shape_inference.infer_shapes_path(str(source), str(source))
    model = onnx.load(str(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one warning per weight clamped to float16's range
        model = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            disable_shape_infer=large,
            op_block_list=float16.DEFAULT_OP_BLOCK_LIST,
            node_block_list=angle_nodes(model.graph),
        )
    save_model(model, destination, large)
    return destination


def infer_shapes(source: Path, destination: Path) -> Path:
    """Tensor shapes for the quantizer, file to file (works past 2 GiB).

    Not ONNX Runtime's quant_pre_process: on our already simplified graphs it changed neither the
    graph nor the error (demo UNet, both int8 modes), and on the SD-1.5 UNet it took 56 s and
    10.5 GB of memory."""
    onnx.shape_inference.infer_shapes_path(str(source), str(destination))
    return destination


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs notes per tensor on the root logger; keep the CLI clean."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_int8_dynamic(source: Path, work: Path, large: bool) -> Path:
    """int8 weights of MatMul/Gemm, activations quantized on the fly (see module docstring)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = infer_shapes(source, work / "prepared.onnx")
    hidden = []
    if large:  # the quantizer never sees (loads, copies) the weights it leaves float
        hidden = hide_weights(prepared, work / "visible.onnx", DYNAMIC_OPS)
        prepared = work / "visible.onnx"
    destination = work / "int8_dynamic.onnx"
    with quiet_quantizer():
        quantize_dynamic(
            str(prepared),
            str(destination),
            op_types_to_quantize=list(DYNAMIC_OPS),
            per_channel=False,
            weight_type=QuantType.QInt8,
            use_external_data_format=large,
        )
    if hidden:
        restore_weights(destination, hidden, work / "int8_dynamic_whole.onnx")
        destination = work / "int8_dynamic_whole.onnx"
    return destination


@contextmanager
def lean_calibration() -> Iterator[None]:
    """ONNX Runtime's calibration sessions run in priority-based order, without the CPU memory
    arena and memory patterns.

    The calibrator runs a copy of the model with a ReduceMin/ReduceMax pair on every tensor
    (2,256 graph outputs). In the default topological order those runs kept most activations
    alive at once: a SnapFusion UNet at a quarter of its width (512x512, batch 2) needed 2.2 GB
    over the session per call, 4.6 GB after two calls with the arena, where the plain model
    needs 0.35 GB; in priority-based order without the arena, 0.15 GB. Every node computes the
    same numbers in any order: the same ranges (checked equal)."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import CalibraterBase

    original = CalibraterBase.create_inference_session

    def create_inference_session(self) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        self.infer_session = ort.InferenceSession(
            self.augmented_model_path, sess_options=options, providers=self.execution_providers
        )

    CalibraterBase.create_inference_session = create_inference_session
    try:
        yield
    finally:
        CalibraterBase.create_inference_session = original


class SampleReader:
    """ONNX Runtime CalibrationDataReader over input tuples in the target's input order."""

    def __init__(self, names: list[str], samples: list[tuple[np.ndarray, ...]]) -> None:
        self.names = names
        self.samples: Iterator[tuple[np.ndarray, ...]] = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        sample = next(self.samples, None)
        return None if sample is None else dict(zip(self.names, sample, strict=True))


def kept_float(path: Path) -> list[str]:
    """Nodes static int8 leaves in float: the first and last Conv (input and output layers)
    and the MatMuls of two activations (attention scores and values)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    attention = [
        n.name for n in graph.node if n.op_type == "MatMul" and not weights.intersection(n.input)
    ]
    return sorted({*convs[:1], *convs[-1:], *attention})


def quantize_int8_static(
    source: Path,
    work: Path,
    large: bool,
    target: ExportTarget,
    calibration: list[tuple[np.ndarray, ...]],
) -> Path:
    """QDQ int8 calibrated on `calibration` (see module docstring)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(SampleReader, CalibrationDataReader):
        pass

    prepared = infer_shapes(source, work / "prepared.onnx")
    destination = work / "int8_static.onnx"
    with quiet_quantizer(), lean_calibration():
        quantize_static(
            str(prepared),
            str(destination),
            Reader([t.name for t in target.inputs], calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(STATIC_OPS),
            nodes_to_exclude=kept_float(prepared),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            use_external_data_format=large,
        )
    return destination
