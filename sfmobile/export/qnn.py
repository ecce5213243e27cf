"""torch -> a QNN context bundle component for one Snapdragon SoC (the Hexagon HTP).

Each component is traced and simplified like the ONNX export (export/onnx.py), then:
  w8a16 / w8a8: static QDQ, weights int8 (per output channel for Conv), activations uint16 /
    uint8 per tensor, calibrated on real denoising trajectories (export/calibration.py), with
    ONNX Runtime's QNN quantization config (16-bit Sigmoid/Tanh ranges, per-tensor MatMul);
  fp16: the float graph as it is, run by the HTP in float16 (enable_htp_fp16_precision=1).
Then QNN compiles it ahead of time for the SoC (`ep.context_enable=1`): `<name>_ctx.onnx`, a
small ONNX graph holding one EPContext node, plus `<name>_ctx_qnn.bin`, the compiled context the
phone loads without compiling. Inputs and outputs stay float32/int32 (the Java API has no
uint16 tensors): the edge Quantize/Dequantize nodes run outside the HTP, as on the phone
(`offload_graph_io_quantization`, on by default).

What the HTP rejected and how it is rewritten (measured on the tiny, demo and SD-1.5 graphs):
  - quantized LayerNormalization with an int8 gamma: QNN error 3110. A uint8 gamma is accepted
    (and keeps gammas that are not centred on zero exact to 1/255 of their range).
  - a Sigmoid with a uint16 output (ONNX Runtime's QNN config fixes its scale to 1/65536) came
    out wrong on the HTP for some tensors (the tiny UNet's down_stages.2 SiLU: 0.93 off on [0, 1];
    the same graph on ONNX Runtime's CPU was right), wrecking every w8a16 UNet and decoder. Its
    output is quantized to uint8 instead (1/255 steps on [0, 1]): tiny UNet max abs at t=876
    0.37 -> 0.06, as close as the CPU's run of the same graph.
  - Erf (the exact GELU) has no quantized HTP op: the Div/Erf/Add/Mul/Mul chain is fused into
    one Gelu node (ONNX Runtime's QNN preprocessing), which the HTP runs.
The text encoder stays fp16 in w8a16/w8a8 bundles (FLOAT_COMPONENTS); its manifest precision
says so. GroupNorm (traced as Reshape/InstanceNormalization/Reshape) and the attention
MatMul/Softmax run as they are. A node the HTP still rejects would run on the CPU: the export
fails naming it unless allow_cpu_fallback, and the manifest records every component's placement.

Large graphs (a full-size fp32 UNet is over protobuf's 2 GiB): above onnx.EXTERNAL_DATA_BYTES the
simplified graph keeps its weights in a side file, the rewrite never loads them (rewrite_for_htp),
ONNX Runtime's QDQ quantizer writes external data for such an input, and QNN compiles the context
from the QDQ model and its side file (the context binary holds the quantized weights).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from sfmobile.bundle import ComponentSpec
from sfmobile.errors import ConfigError
from sfmobile.export.external_data import hide_weights, restore_weights
from sfmobile.export.onnx import graph_specs, is_large, traced_and_simplified
from sfmobile.export.onnx_precision import SampleReader, lean_calibration, quiet_quantizer
from sfmobile.export.recipe import Recipe
from sfmobile.export.targets import ExportTarget
from sfmobile.heap import return_freed_memory
from sfmobile.qnn.provider import htp_session
from sfmobile.qnn.socs import Soc

# Compiled in fp16 whatever the bundle's precision: the text encoder's additive causal mask
# (large negative values) stretches the attention scores' range, so their quantized activations
# lose the real scores: demo text encoder max abs 4.5 (relative 1.3) at w8a8 on the HTP. It runs
# once per image, so fp16 costs nothing per step.
FLOAT_COMPONENTS = ("text_encoder",)
EP_CONTEXT = "EPContext"


# ONNX Runtime's quantizer converts a model to opset 21 for 16-bit QDQ, in memory: the whole
# model as one protobuf, which fails past 2 GiB (EncodeError on the full-size snapfusion UNet).
# The rewrite converts the weightless graph instead, and the quantizer then has nothing to do.
QDQ_OPSET = {"w8a16": 21}


def rewrite_for_htp(source: Path, destination: Path, opset: int | None = None) -> Path:
    """Fuse the exact-GELU chains into Gelu nodes (see the module docstring) and, given `opset`,
    convert the graph to it; file to file.

    Neither step reads the weights, so they are hidden (graph inputs meanwhile,
    external_data.hide_weights) and put back after: a full-size UNet's graph is then written and
    read without its 3 GB, and no step needs a 2 GiB protobuf of weights."""
    from onnxruntime.quantization.execution_providers.qnn import qnn_preprocess_model

    visible = destination.with_name("visible_" + destination.name)
    hidden = hide_weights(source, visible, ())
    model = onnx.load(str(visible))
    # qnn_preprocess_model (ORT 1.32) crashes merging a model's own metadata_props; ours only
    # hold the exporter's notes.
    del model.metadata_props[:]
    changed = qnn_preprocess_model(model, str(visible))
    model = onnx.load(str(visible)) if changed else model
    current = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset is not None and current < opset:
        onnx.save_model(onnx.version_converter.convert_version(model, opset), str(visible))
        changed = True
    if not changed:
        return source
    restore_weights(visible, hidden, destination)
    return destination


def htp_overrides(graph: onnx.GraphProto) -> dict[str, list[dict]]:
    """Per-tensor quantization the HTP needs (see the module docstring): LayerNormalization
    gammas as uint8 (int8 ones are rejected with error 3110), Sigmoid outputs as uint8."""
    from onnxruntime.quantization import QuantType

    gammas = {n.input[1] for n in graph.node if n.op_type == "LayerNormalization"}
    sigmoids = {n.output[0] for n in graph.node if n.op_type == "Sigmoid"}
    overrides = {name: [{"quant_type": QuantType.QUInt8, "symmetric": False}] for name in gammas}
    overrides.update({name: [{"quant_type": QuantType.QUInt8}] for name in sigmoids})
    return overrides


def quantize_qdq(
    source: Path, destination: Path, precision: str, samples: list[tuple[np.ndarray, ...]]
) -> Path:
    """Static QDQ for the HTP: int8 weights, uint16 (w8a16) or uint8 (w8a8) activations."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    class Reader(SampleReader, CalibrationDataReader):
        pass

    graph = onnx.load(str(source), load_external_data=False).graph
    activation = QuantType.QUInt16 if precision == "w8a16" else QuantType.QUInt8
    with quiet_quantizer(), lean_calibration():
        config = get_qnn_qdq_config(
            str(source),
            Reader([t.name for t in graph.input], samples),
            activation_type=activation,
            weight_type=QuantType.QInt8,
            per_channel=True,
            init_overrides=htp_overrides(graph),
        )
        quantize(str(source), str(destination), config)
    return destination


def placement(context_model: Path, compiled: Path) -> dict:
    """Where the compiled graph's nodes run: inside the HTP context, the graph-edge
    Quantize/Dequantize (float32 in and out, by design), or on the CPU (named)."""
    graph = onnx.load(str(context_model), load_external_data=False).graph
    inputs = {t.name for t in graph.input}
    outputs = {t.name for t in graph.output}
    edge, cpu = [], []
    for node in graph.node:
        if node.op_type == EP_CONTEXT:
            continue
        at_edge = (node.op_type == "QuantizeLinear" and node.input[0] in inputs) or (
            node.op_type == "DequantizeLinear" and node.output[0] in outputs
        )
        (edge if at_edge else cpu).append(node.name or node.output[0])
    total = len(onnx.load(str(compiled), load_external_data=False).graph.node)
    return {"htp_nodes": total - len(edge) - len(cpu), "io_nodes": len(edge), "cpu_nodes": cpu}


def context_files(context_model: Path) -> list[str]:
    """The EPContext model then the context binaries it names (relative to its folder)."""
    graph = onnx.load(str(context_model), load_external_data=False).graph
    binaries = [
        onnx.helper.get_attribute_value(a).decode()
        for n in graph.node
        if n.op_type == EP_CONTEXT
        for a in n.attribute
        if a.name == "ep_cache_context"
    ]
    return [context_model.name, *binaries]


def sdk_version(context_model: Path) -> str:
    """The QNN SDK version the context binary was compiled with (the phone's QNN runtime must be
    the same major.minor: android_app's QnnRuntime.kt)."""
    graph = onnx.load(str(context_model), load_external_data=False).graph
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == EP_CONTEXT and attribute.name == "ep_sdk_version":
                return onnx.helper.get_attribute_value(attribute).decode()
    return "unknown"


def export_component(
    target: ExportTarget,
    precision: str,
    soc: Soc,
    calibration: list[tuple[np.ndarray, ...]] | None,
    out_dir: Path,
    allow_cpu_fallback: bool = False,
    phase: Callable[[str], None] = lambda name: None,
) -> tuple[ComponentSpec, dict]:
    """Export one target into out_dir as `<name>_ctx.onnx` + `<name>_ctx_qnn.bin`, compiled for
    `soc`. Returns its ComponentSpec and its placement (see `placement`)."""
    recipe = Recipe("qnn", precision)
    if target.name in FLOAT_COMPONENTS:
        recipe = Recipe("qnn", "fp16")
    recipe.check_calibration(target.name, calibration)
    precision = recipe.label
    out_dir = Path(out_dir)
    large = is_large(target)  # before the trace, which may release the torch weights
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-qnn-", dir=out_dir) as scratch:
        work = Path(scratch)
        current = traced_and_simplified(target, work, phase, large)
        if precision != "fp16":
            phase("quantize")
            current = rewrite_for_htp(current, work / "rewritten.onnx", QDQ_OPSET.get(precision))
            current = quantize_qdq(current, work / "qdq.onnx", precision, calibration or [])
            return_freed_memory()
        phase(f"compile for {soc.name}")
        context = out_dir / f"{target.name}_ctx.onnx"
        htp_session(current, soc, context_file=context)
        placed = placement(context, current)
        if placed["cpu_nodes"] and not allow_cpu_fallback:
            names = ", ".join(placed["cpu_nodes"][:10])
            more = len(placed["cpu_nodes"]) - 10
            raise ConfigError(
                f"{target.name}: {len(placed['cpu_nodes'])} nodes would fall back to the CPU on "
                f"{soc.name}: {names}{f' and {more} more' if more > 0 else ''} "
                "(--allow-cpu-fallback accepts that)"
            )
        inputs, outputs = graph_specs(context, target)
        placed["qnn_sdk"] = sdk_version(context)
    return ComponentSpec("qnn", precision, context_files(context), inputs, outputs), placed
