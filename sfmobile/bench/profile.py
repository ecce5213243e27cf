"""Where a component's time goes: onnxruntime's own profiler (SessionOptions.enable_profiling)
over a few calls, its per-node kernel times summed by operator type."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32}


def op_shares(trace: list[dict]) -> dict[str, float]:
    """Share of summed kernel time per operator type, largest first, from a profile trace."""
    totals: Counter = Counter()
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    whole = sum(totals.values()) or 1
    return {op: round(us / whole, 4) for op, us in totals.most_common()}


def profile_onnx(model: Path, repeats: int, trace_dir: Path) -> dict:
    """Run `model` `repeats` times (after one warm-up) under the profiler; the trace file is
    kept in trace_dir."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(trace_dir / f"ort-profile-{model.stem}")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        dtype = ORT_DTYPES[spec.type]
        if dtype == np.int32:
            feeds[spec.name] = rng.integers(0, 49407, spec.shape).astype(np.int32)
        else:
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
    for _ in range(repeats + 1):
        session.run(None, feeds)
    trace_file = Path(session.end_profiling())
    shares = op_shares(json.loads(trace_file.read_text()))
    return {"op_shares": dict(list(shares.items())[:8]), "trace": str(trace_file)}
