"""torch -> ONNX for one export target: trace, simplify, then fp16 or int8 (onnx_precision.py).

Exporter: the TorchScript exporter (`dynamo=False`) at opset 17. Measured on the tiny and demo
models: after onnxsim both exporters give the same operators (the dynamo exporter's graph keeps
a fused Gelu-20 and ~6% fewer nodes; ORT fuses the Erf form the same way) and the same accuracy
(max |diff| vs torch ~1e-6), but dynamo takes 3-4x longer (demo UNet 8.5 s vs 2.2 s) and opset 17
runs on older ONNX Runtime Mobile builds. Every shape is static (the bundle's contract).

Large models: a protobuf file cannot exceed 2 GiB (a full SD-1.5 UNet is 3.4 GB in fp32), so
above EXTERNAL_DATA_BYTES of parameters every step writes its weights to side files and the
component's files are `<name>.onnx` plus `<name>.onnx.data` (gathered tensor by tensor,
external_data.py). Each step goes file to file, so only one copy of the model is held in
memory at a time, freed memory goes back to the system between steps (memory.py), and a
target's torch weights are dropped once traced when the caller allows it
(targets.release_after_conversion). Measured before those: SD-1.5 UNet (2 cores, peak RSS
including the torch model) fp32 78 s / 7.9 GB, fp16 96 s / 9.0 GB, int8 dynamic 133 s /
14.2 GB (ONNX Runtime's quantizer holds about three copies; onnx_precision.py now hides the
weights it does not quantize from it). After, through the CLI (docs/verify.md): the whole
snapfusion export at 512 peaked at 7.3 GiB in fp32 and int8 dynamic (12.6 GiB before) in the
checkpoint load; with the load building the modules on the meta device (weights/strict.py) the
fp32 export peaks at 5.4 GiB, in the text encoder's trace with every component's weights held.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx.external_data_helper import uses_external_data

from sfmobile.bundle import ComponentSpec, TensorSpec
from sfmobile.export.external_data import gather_external_data
from sfmobile.export.onnx_precision import (
    convert_fp16,
    quantize_int8_dynamic,
    quantize_int8_static,
)
from sfmobile.export.recipe import Recipe
from sfmobile.export.targets import ExportTarget
from sfmobile.heap import return_freed_memory

OPSET = 17
# Above this many bytes of tensors a model is written with external data (2 GiB is protobuf's
# hard limit; the margin covers the graph itself and tensors created by the converters).
EXTERNAL_DATA_BYTES = 1_800_000_000

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
}


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of fp32 parameters and buffers: what the traced model's initializers weigh."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * 4 for t in tensors)


def is_large(target: ExportTarget) -> bool:
    """Whether `target` is exported with external data (read before its weights are released;
    EXTERNAL_DATA_BYTES is read at call time, so a test can lower it to exercise that path)."""
    return tensor_bytes(target.module) > EXTERNAL_DATA_BYTES


def trace_to_onnx(target: ExportTarget, path: Path) -> None:
    """torch.onnx.export straight to a file, names as the target's TensorSpecs."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            target.module,
            target.example_args(),
            str(path),
            input_names=[t.name for t in target.inputs],
            output_names=[t.name for t in target.outputs],
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def simplify(source: Path, destination: Path) -> None:
    """onnxsim: constant folding and fusions (about half the nodes go), file to file."""
    import onnxsim

    model, ok = onnxsim.simplify(
        str(source), output_path=str(destination), external_data_threshold="1.8GB"
    )
    del model
    if not ok:
        raise RuntimeError(f"{source}: onnxsim could not verify the simplified model")


def traced_and_simplified(
    target: ExportTarget,
    work: Path,
    phase: Callable[[str], None] = lambda name: None,
    large: bool = False,
) -> Path:
    """Trace `target` into the scratch folder `work` and simplify it: the float graph every
    ONNX-based format (plain ONNX, QNN context) starts from. The target's torch weights are
    released once traced (a no-op unless allowed). large: the result keeps its weights in a
    side file, as the steps after it expect of a model over EXTERNAL_DATA_BYTES (onnxsim
    itself does so only past 2 GiB). Returns the simplified file."""
    phase("trace")
    trace_to_onnx(target, work / "traced.onnx")
    target.release()
    return_freed_memory()
    phase("simplify")
    simplified = work / "simplified.onnx"
    simplify(work / "traced.onnx", simplified)
    return_freed_memory()
    if large and not has_external_data(simplified):
        gather_external_data(simplified, work / "simplified_external.onnx")
        simplified = work / "simplified_external.onnx"
    return simplified


def has_external_data(path: Path) -> bool:
    graph = onnx.load(str(path), load_external_data=False).graph
    return any(uses_external_data(t) for t in graph.initializer)


def write_component(model_path: Path, out_dir: Path, name: str, large: bool) -> list[str]:
    """Move the finished model into out_dir as `<name>.onnx` (large: + `<name>.onnx.data`)."""
    final = out_dir / f"{name}.onnx"
    if not large:
        shutil.move(model_path, final)
        return [final.name]
    gather_external_data(model_path, final)
    return [final.name, final.name + ".data"]


def graph_specs(path: Path, target: ExportTarget) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model file's real inputs and outputs, checked against the target's contract."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def specs(values, expected: list[TensorSpec], kind: str) -> list[TensorSpec]:
        found = []
        for value in values:
            tensor = value.type.tensor_type
            dtype = ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type))
            found.append(TensorSpec(value.name, [d.dim_value for d in tensor.shape.dim], dtype))
        if [(t.name, t.shape) for t in found] != [(t.name, t.shape) for t in expected]:
            raise RuntimeError(
                f"{path}: {kind} {[(t.name, t.shape) for t in found]} differ from the "
                f"{target.name} contract {[(t.name, t.shape) for t in expected]}"
            )
        return found

    return specs(graph.input, target.inputs, "inputs"), specs(
        graph.output, target.outputs, "outputs"
    )


def export_component(
    target: ExportTarget,
    precision: str,
    quantization: str | None,
    calibration: list[tuple[np.ndarray, ...]] | None,
    out_dir: Path,
    phase: Callable[[str], None] = lambda name: None,
) -> ComponentSpec:
    """Export one target into out_dir as `<target.name>.onnx` (+ `.onnx.data` when large).

    precision: "fp32" | "fp16" | "int8"; quantization: None, or "dynamic" | "static" for int8;
    calibration: the target's input tuples (static int8). Inputs and outputs stay float32 /
    int32 in every precision (fp16 casts and int8 QDQ pairs live inside the graph).
    """
    recipe = Recipe("onnx", precision, quantization)
    recipe.check_calibration(target.name, calibration)
    out_dir = Path(out_dir)
    large = is_large(target)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-onnx-", dir=out_dir) as scratch:
        work = Path(scratch)
        current = traced_and_simplified(target, work, phase, large)
        if precision == "fp16":
            phase("convert")
            current = convert_fp16(current, work / "fp16.onnx", large)
        elif quantization == "dynamic":
            phase("quantize")
            current = quantize_int8_dynamic(current, work, large)
        elif quantization == "static":
            phase("quantize")
            current = quantize_int8_static(current, work, large, target, calibration or [])
        return_freed_memory()
        phase("write")
        inputs, outputs = graph_specs(current, target)
        files = write_component(current, out_dir, target.name, large)
    return ComponentSpec("onnx", recipe.label, files, inputs, outputs)
