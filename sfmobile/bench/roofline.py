"""The CPU's measured limit: one large matrix multiply in onnxruntime, fp32 and int8.

A nominal peak read from /proc/cpuinfo is cores x FLOP/cycle x the stated clock, and under a
hypervisor the stated clock is the base one: cores that boost beat it (a UNet once reached 140%
of it). A square GEMM with onnxruntime's own kernels (MLAS, the ones its Conv and MatMul use) on
every core is what this runtime can reach on this machine today, so each case's share of it
says how much of the reachable speed the model leaves unused. The int8 GEMM (MatMulInteger,
uint8 x int8, VNNI where the CPU has it) is the same limit for quantized models.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

SIZE = 2048  # 17 GFLOP per fp32 call: long enough to time, short enough to repeat


def _gemm_model(size: int, integer: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        kinds = (TensorProto.UINT8, TensorProto.INT32)
    else:
        weight = rng.standard_normal((size, size), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        kinds = (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", kinds[0], [size, size])],
        [helper.make_tensor_value_info("y", kinds[1], [size, size])],
        [numpy_helper.from_array(weight, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def gemm_gops(size: int = SIZE, integer: bool = False, repeats: int = 10) -> dict:
    """Best and median billions of operations per second (2 per multiply-accumulate) of one
    size x size x size GEMM on all available cores, after one warm-up call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = ort.InferenceSession(_gemm_model(size, integer), options, ["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    if integer:
        a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    else:
        a = rng.standard_normal((size, size), dtype=np.float32)
    session.run(None, {"a": a})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"a": a})
        times.append(time.perf_counter() - start)
    ops = 2 * size**3 / 1e9
    return {"best": round(ops / min(times), 1), "median": round(ops / statistics.median(times), 1)}


def measure(size: int = SIZE, repeats: int = 10) -> dict:
    """The roofline record's numbers: fp32 GFLOP/s and int8 GOP/s, best and median."""
    fp32 = gemm_gops(size, False, repeats)
    int8 = gemm_gops(size, True, repeats)
    return {
        "gemm_size": size,
        "threads": len(os.sched_getaffinity(0)),
        "repeats": repeats,
        "fp32_gflops": fp32["best"],
        "fp32_gflops_median": fp32["median"],
        "int8_gops": int8["best"],
        "int8_gops_median": int8["median"],
    }
