"""torch -> LiteRT (.tflite): one export target in fp32, fp16 or int8.

litert-torch converts the float32 graph. The module is traced with keyword inputs named as in
the bundle contract and returns a dict keyed by its output name, so the file's one signature
("serving_default") carries the manifest's tensor names: a runtime binds tensors by name
(LiteRT's signature runner on Android, `TfliteBackend` here). fp16 and int8 are then applied to
that float flatbuffer by ai-edge-quantizer (see tflite_quantize.py for the recipes and why).

Flatbuffers address at most 2 GB, so the weights' size in the requested precision is checked
before any conversion starts, and fp32 is refused for a model over it. (litert-torch 0.10 and
ai-edge-quantizer do write and read larger files, with the weights appended past the
flatbuffer: that is how fp16/int8 of such a model still work from an fp32 intermediate, at a
peak of about 5x the fp32 weights in RAM. The refusal keeps shipped files within what every
LiteRT runtime loads.)
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sfmobile.bundle import TFLITE_SIGNATURE, ComponentSpec, Quantization, TensorSpec
from sfmobile.errors import BundleError, InputError
from sfmobile.export.recipe import Recipe
from sfmobile.export.targets import ExportTarget
from sfmobile.heap import return_freed_memory
from sfmobile.quiet_logs import quiet_third_party_logs

FLATBUFFER_LIMIT = 2**31  # bytes: flatbuffers use 32-bit offsets
BYTES_PER_WEIGHT = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0}
DTYPE_NAMES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float16): "float16",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
}

Phase = Callable[[str], None]
Samples = list[tuple[np.ndarray, ...]]


class NamedSignature(nn.Module):
    """Calls the target module with keyword inputs and returns {output name: tensor}, which
    litert-torch turns into the signature's input and output names."""

    def __init__(self, module: nn.Module, output: str) -> None:
        super().__init__()
        self.module = module
        self.output = output

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.output: self.module(**inputs)}


def check_arguments(
    target: ExportTarget, precision: str, quantization: str | None, calibration: Samples | None
) -> str:
    """Validate the recipe for one target; returns the manifest's precision label."""
    recipe = Recipe("tflite", precision, quantization)
    recipe.check_calibration(target.name, calibration)
    for index, sample in enumerate(calibration or []):
        shapes = [list(array.shape) for array in sample]
        if shapes != [spec.shape for spec in target.inputs]:
            raise InputError(
                f"calibration sample {index} for {target.name}: shapes {shapes}, "
                f"expected {[spec.shape for spec in target.inputs]}"
            )
    return recipe.label


def weight_count(module: nn.Module) -> int:
    """Parameters and buffers: every constant tensor that ends up in the flatbuffer."""
    return sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())


def check_fits(target: ExportTarget, precision: str) -> None:
    """Refuse a precision whose weights alone would exceed the 2 GB flatbuffer limit, naming
    the precisions that fit (fp16 halves the weights, int8 quarters them)."""
    count = weight_count(target.module)
    if count * BYTES_PER_WEIGHT[precision] < FLATBUFFER_LIMIT:
        return
    fits = [p for p, size in BYTES_PER_WEIGHT.items() if count * size < FLATBUFFER_LIMIT]
    advice = f"use --precision {' or '.join(fits)}" if fits else "no precision fits"
    raise InputError(
        f"--precision {precision}: {target.name} has {count:,} weights, "
        f"{count * BYTES_PER_WEIGHT[precision] / 1e9:.2f} GB in {precision}, over the 2 GB "
        f"TFLite flatbuffer limit; {advice}"
    )


@contextlib.contextmanager
def quiet_litert() -> Iterator[None]:
    """litert-torch prints a progress tree to stdout by default and its stack logs and warns on
    every conversion; our caller reports the phases itself."""
    quiet_third_party_logs()  # effective here only if nothing loaded the libraries yet
    import litert_torch

    shown = litert_torch.config.show_progress
    litert_torch.config.show_progress = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch pytree's LeafSpec notice
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        litert_torch.config.show_progress = shown


def keyword_inputs(target: ExportTarget, arrays: tuple[torch.Tensor, ...]) -> dict:
    return {spec.name: array for spec, array in zip(target.inputs, arrays, strict=True)}


def convert_float(target: ExportTarget, path: Path) -> Path:
    """The float32 flatbuffer of `target` (token ids stay int32)."""
    import litert_torch

    module = NamedSignature(target.module, target.outputs[0].name).eval()
    with quiet_litert(), torch.no_grad():
        model = litert_torch.convert(
            module, sample_kwargs=keyword_inputs(target, target.example_args())
        )
        model.export(str(path))
    return path


def tensor_spec(name: str, detail: dict, expected: TensorSpec, where: str) -> TensorSpec:
    """The manifest entry for one model tensor, checked against the export contract."""
    shape = [int(d) for d in detail["shape"]]
    if shape != expected.shape:
        raise BundleError(f"{where}: tensor {name} has shape {shape}, expected {expected.shape}")
    dtype = DTYPE_NAMES.get(np.dtype(detail["dtype"]))
    if dtype is None:
        raise BundleError(f"{where}: tensor {name} has unsupported dtype {detail['dtype']}")
    quantization = None
    if dtype in ("int8", "uint8") and expected.dtype != dtype:
        scale, zero_point = detail["quantization"]
        quantization = Quantization(scale=float(scale), zero_point=int(zero_point))
    return TensorSpec(name, shape, dtype, quantization)


def read_signature(path: Path, target: ExportTarget) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of the file's signature as TensorSpecs with the target's names, in
    the target's order, with the file's dtypes and (for int8/uint8 tensors) quantization."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner(TFLITE_SIGNATURE)
    found = (runner.get_input_details(), runner.get_output_details())
    result: tuple[list[TensorSpec], list[TensorSpec]] = ([], [])
    for details, expected, specs in zip(
        found, (target.inputs, target.outputs), result, strict=True
    ):
        names = [spec.name for spec in expected]
        if sorted(details) != sorted(names):
            raise BundleError(f"{path}: signature tensors {sorted(details)}, expected {names}")
        specs.extend(tensor_spec(s.name, details[s.name], s, str(path)) for s in expected)
    return result


def export_component(
    target: ExportTarget,
    precision: str,
    quantization: str | None,
    calibration: Samples | None,
    out_dir: Path,
    phase: Phase = lambda name: None,
) -> ComponentSpec:
    """Write `<out_dir>/<target.name>.tflite` and return its manifest entry.

    precision "fp32" | "fp16" | "int8" with quantization None (fp32, fp16), "dynamic" or
    "static" (int8; static needs `calibration`: input tuples in target.inputs order).
    Intermediate files live in a temporary folder inside out_dir, removed on any exit.
    """
    check_arguments(target, precision, quantization, calibration)
    check_fits(target, precision)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-float-", dir=out_dir) as tmp:
        phase("convert")
        float_model = convert_float(target, Path(tmp) / "float.tflite")
        target.release()  # a no-op unless the caller allowed it (release_after_conversion)
        return_freed_memory()
        return component_from_float(
            target, float_model, precision, quantization, calibration, out_dir, phase
        )


def component_from_float(
    target: ExportTarget,
    float_model: Path,
    precision: str,
    quantization: str | None,
    calibration: Samples | None,
    out_dir: Path,
    phase: Phase = lambda name: None,
) -> ComponentSpec:
    """Like export_component, from the fp32 file `convert_float` (or a fp32 bundle) already
    made for `target`: one conversion, the slow step, serves every precision."""
    from sfmobile.export import tflite_quantize

    label = check_arguments(target, precision, quantization, calibration)
    check_fits(target, precision)
    final = Path(out_dir) / f"{target.name}.tflite"
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-{label}-", dir=out_dir) as tmp:
        model = Path(float_model)
        if label != "fp32":
            model = tflite_quantize.quantize(
                model, label, target, calibration, phase, Path(tmp) / "quantized.tflite"
            )
        phase("write")
        inputs, outputs = read_signature(model, target)
        if model == Path(float_model):
            shutil.copyfile(model, final)
        else:
            shutil.move(model, final)
    return ComponentSpec(
        format="tflite",
        precision=label,
        files=[final.name],
        inputs=inputs,
        outputs=outputs,
    )
