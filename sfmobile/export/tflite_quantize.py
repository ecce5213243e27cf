"""fp16 and int8 for LiteRT: ai-edge-quantizer recipes applied to the float32 flatbuffer.

Timings: demo UNet (4.4M weights), 512x512, CFG batch 2, LiteRT with 2 threads on the 2-core
x86 dev machine, fastest of 21 interleaved calls (the machine was shared; medians were noisy).

- fp16: weights cast to float16 (weight-only FLOAT_CASTING) on every op type that has weights;
  activations, inputs and outputs stay float32. Half the file; same speed on this CPU (XNNPACK
  unpacks the weights to float32 at load: 196 ms against 197 ms fp32).
- int8-dynamic: `dynamic_wi8_afp32`, per-channel int8 weights, activations quantized on the fly
  so convolutions and matmuls run XNNPACK's int8 kernels: 138 ms. Chosen over weight-only int8
  (`weight_only_wi8_afp32`: int8 weights dequantized before a float op), 198-223 ms, slower
  than fp32; its error is about half (0.02 against 0.04 max abs on the earlier, 10.8M demo).
  At full size the gap is wider: SnapFusion's UNet at 512x512, batch 1, 0.95 s per call
  against 3.10 s for fp16 (benchmarks/README.md). Weights over 32 MiB go through
  large_weights.py (the library's own large-tensor path fails on convolutions).
- int8-static: static int8 (per-channel int8 weights, per-tensor int8 activations whose ranges
  come from the calibration samples) on CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: 137 ms;
  the token embedding table is int8 weight-only (ai-edge-quantizer has no static lookup).
  Inputs and outputs stay float32, so the timestep is never rounded to an int8 step (PT2E's
  static quantizer made every input int8: timestep scale 3.4, clipping t=999 to 875).
  BATCH_MATMUL (attention's q.k and p.v) stays float: quantized too, the earlier 10.8M demo
  UNet took 747 ms instead of 249 ms (XNNPACK has no fast int8 path for it here). PT2E static
  on that UNet: 398 ms, max error 0.15-0.32 (this recipe 0.12-0.49), 5 minutes to convert
  (histogram observers) against 30 s of calibration here.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from sfmobile.backends.tflite_backend import usable_cpus
from sfmobile.bundle import TFLITE_SIGNATURE
from sfmobile.export.large_weights import chunked_large_weights
from sfmobile.export.targets import ExportTarget

STATIC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
WEIGHT_OPS = (
    "FULLY_CONNECTED",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "CONV_2D_TRANSPOSE",
    "EMBEDDING_LOOKUP",
    "BATCH_MATMUL",
)


def fp16_recipe() -> list:
    """Weight-only float16 casting on each op type ai-edge-quantizer supports it for
    (BATCH_MATMUL is skipped where this version does not register it)."""
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    manager = recipe_manager.RecipeManager()
    for op in WEIGHT_OPS:
        try:
            manager.add_weight_only_config(
                regex=".*",
                operation_name=qtyping.TFLOperationName(op),
                num_bits=16,
                algorithm_key=AlgorithmName.FLOAT_CASTING,
            )
        except ValueError:
            continue  # op type not supported by FLOAT_CASTING in this version
    return manager.get_quantization_recipe()


def dynamic_recipe() -> list:
    from ai_edge_quantizer import recipe

    return recipe.dynamic_wi8_afp32()


def static_recipe() -> list:
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    for op in STATIC_OPS:
        manager.add_static_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName(op),
            activation_num_bits=8,
            weight_num_bits=8,
        )
    manager.add_weight_only_config(  # no static int8 lookup exists; the table is still int8
        regex=".*", operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP, num_bits=8
    )
    return manager.get_quantization_recipe()


def calibration_data(target: ExportTarget, samples: list[tuple[np.ndarray, ...]]) -> dict:
    """Samples as ai-edge-quantizer wants them: per signature, one {input name: array} each."""
    rows = []
    for sample in samples:
        row = {}
        for spec, array in zip(target.inputs, sample, strict=True):
            row[spec.name] = np.ascontiguousarray(array, dtype=np.dtype(spec.dtype))
        rows.append(row)
    return {TFLITE_SIGNATURE: rows}


def quantize(
    model: Path,
    label: str,
    target: ExportTarget,
    samples: list[tuple[np.ndarray, ...]] | None,
    phase: Callable[[str], None],
    out: Path,
) -> Path:
    """Apply the recipe for `label` (fp16, int8-dynamic, int8-static) to the float flatbuffer
    `model` and write the result to `out` (returned)."""
    from ai_edge_quantizer import quantizer

    recipes = {"fp16": fp16_recipe, "int8-dynamic": dynamic_recipe, "int8-static": static_recipe}
    engine = quantizer.Quantizer(str(model), recipes[label]())
    calibration = None
    if engine.need_calibration:
        phase("calibrate")
        with quiet_quantizer():
            data = calibration_data(target, samples or [])
            calibration = engine.calibrate(data, num_threads=usable_cpus())
    phase("quantize")
    with quiet_quantizer(), chunked_large_weights():
        result = engine.quantize(
            calibration, enable_progress_bar=False, enable_progress_report=False
        )
    result.export_model(str(out), overwrite=True)
    return out


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """ai-edge-quantizer draws tqdm bars on stderr for large graphs whatever it is asked, and
    its calibrating interpreter warns that keeping every tensor is "for debugging" (calibration
    needs them); our caller reports phases instead. Errors still propagate as exceptions."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)
        yield
