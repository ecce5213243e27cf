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
  Ranges are the min and max over all samples, as ONNX's MinMax calibration takes them, not
  ai-edge-quantizer's default moving average (0.95) of each sample's min and max: averaged
  ranges clipped a third of the demo UNet's activation tensors at its last step (up to half
  their range), and its error grew from 0.06 to 0.29 over the 8 steps; with min and max it is
  0.015-0.06 (docs/verify.md, "Findings"). The first and last CONV_2D (input and output layers)
  stay float, as in ONNX's static recipe: the demo UNet's worst step 0.06 -> 0.034, its
  decoder 0.085 -> 0.063.
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
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
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


def static_recipe(kept_float: Sequence[str] = ()) -> list:
    """Static int8 on STATIC_OPS except the ops whose scopes (output tensor names) are in
    `kept_float`, which stay float."""
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

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
    for scope in kept_float:  # the last matching config wins
        manager.add_quantization_config(
            regex=f"^{re.escape(scope)}$",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            algorithm_key=AlgorithmName.NO_QUANTIZE,
        )
    return manager.get_quantization_recipe()


def edge_convs(model: Path) -> list[str]:
    """Scopes of the first and last CONV_2D of `model` (its input and output layers), which
    static int8 leaves in float; none for a model without convolutions."""
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as flatbuffer

    graph = flatbuffer.read_model(str(model))
    codes = [flatbuffer.TFL_OP_CODE_TO_NAME.get(c.builtinCode) for c in graph.operatorCodes]
    subgraph = graph.subgraphs[0]
    convs = [
        flatbuffer.get_op_scope(op, subgraph.tensors)
        for op in subgraph.operators
        if codes[op.opcodeIndex] == qtyping.TFLOperationName.CONV_2D
    ]
    return list(dict.fromkeys([*convs[:1], *convs[-1:]]))


def calibrate_min_max(model: Path, recipe: list, data: dict) -> dict:
    """Each quantized tensor's range: the min and max over all samples (ai-edge-quantizer's
    own `calibrate` averages them; see the module docstring)."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    engine = calibrator.Calibrator(
        str(model), num_threads=usable_cpus(), qsv_update_func=qsv_utils.min_max_update
    )
    engine.calibrate(data, manager)
    return engine.get_model_qsvs()


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

    recipes = {
        "fp16": fp16_recipe,
        "int8-dynamic": dynamic_recipe,
        "int8-static": lambda: static_recipe(edge_convs(model)),
    }
    recipe = recipes[label]()
    engine = quantizer.Quantizer(str(model), recipe)
    calibration = None
    if engine.need_calibration:
        phase("calibrate")
        with quiet_quantizer():
            data = calibration_data(target, samples or [])
            calibration = calibrate_min_max(model, recipe, data)
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
