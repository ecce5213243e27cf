"""Host benchmark: export a preset (random weights) and time its UNet on the bundle's runtime.

Each case runs in its own process so peak memory is the export's own. Results are JSON lines.

    python benchmarks/host_bench.py --preset snapfusion --format onnx --precision fp16 \
        --out /tmp/bench --results benchmarks/results/host.jsonl

With --diffusers-baseline, the same run also exports diffusers' own SD-1.5 UNet with the same
exporter and times it on onnxruntime, so "ours vs diffusers" is a ratio measured in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def time_unet(bundle: Path, backend_name: str, repeats: int) -> list[float]:
    from sfmobile.backends.factory import open_backend

    backend = open_backend(bundle, backend_name, verify="sizes")
    spec = backend.info
    manifest_unet = json.loads((bundle / "manifest.json").read_text())["components"]["unet"]
    shapes = {t["name"]: t["shape"] for t in manifest_unet["inputs"]}
    rng = np.random.default_rng(0)
    latents = rng.standard_normal(shapes["sample"], dtype=np.float32)
    text = rng.standard_normal(shapes["text_embeddings"], dtype=np.float32)
    guidance = 7.5 if spec.guidance_input else None
    backend.predict(latents, 500.0, text, guidance)  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.predict(latents, 500.0, text, guidance)
        timings.append(time.perf_counter() - start)
    return timings


def run_case(args: argparse.Namespace) -> dict:
    """Export one (preset, format, precision) and time it; runs inside the child process."""
    from sfmobile.export.bundle_export import export_bundle
    from sfmobile.models.random_init import random_model

    model = random_model(args.preset, seed=0)
    out = Path(args.out) / f"{args.preset}-{args.format}-{args.precision}-{args.quantization}"
    start = time.perf_counter()
    export_bundle(
        model,
        out,
        args.format,
        args.precision,
        args.quantization,
        height=args.size,
        width=args.size,
        cfg_batch=args.cfg_batch,
        calibration_prompts=args.calibration_prompts,
    )
    export_s = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del model
    sizes = {p.name: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    unet = time_unet(out, args.format, args.repeats)
    return {
        "preset": args.preset,
        "format": args.format,
        "precision": args.precision,
        "quantization": args.quantization,
        "size": args.size,
        "cfg_batch": args.cfg_batch,
        "export_s": round(export_s, 1),
        "export_peak_rss_mb": round(peak_mb),
        "bundle_mb": round(sum(sizes.values()) / 1e6, 1),
        "unet_mb": round(sum(v for k, v in sizes.items() if k.startswith("unet")) / 1e6, 1),
        "unet_call_s_median": round(statistics.median(unet), 3),
        "unet_call_s_all": [round(t, 3) for t in unet],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="snapfusion")
    parser.add_argument("--format", default="onnx", choices=["onnx", "tflite"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--quantization", default=None, choices=[None, "dynamic", "static"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cfg-batch", type=int, default=1)
    parser.add_argument("--calibration-prompts", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="/tmp/sfmobile-bench")
    parser.add_argument("--results", default=None, help="append a JSON line here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args)))
        return
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = output.strip().splitlines()[-1]
    print(result)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as stream:
            stream.write(result + "\n")


if __name__ == "__main__":
    main()
