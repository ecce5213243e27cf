"""Time one UNet call of ONNX bundles on an idle machine: a quick check beside `sfmobile bench`.

Usage: python benchmarks/unet_spot_check.py BUNDLE [BUNDLE ...]
Each bundle's unet.onnx runs on onnxruntime's CPU provider with 2 intra-op threads on random
inputs of its own static shapes (timesteps at 500); one warm-up call, then the median of 3.
It exists because a contended `sfmobile bench` run cannot be trusted and a full rerun takes
an hour: this takes a minute and tells whether the bench's UNet times hold.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

DTYPES = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def inputs_of(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        dtype = DTYPES[spec.type]
        if "timestep" in spec.name:
            feeds[spec.name] = np.full(shape, 500, dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def time_unet(bundle: str, repeats: int = 3) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(f"{bundle}/unet.onnx", options, ["CPUExecutionProvider"])
    feeds = inputs_of(session)
    session.run(None, feeds)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - started)
    return {"bundle": bundle, "times_s": [round(t, 3) for t in times],
            "median_s": round(statistics.median(times), 3)}  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        print(json.dumps(time_unet(path)))
