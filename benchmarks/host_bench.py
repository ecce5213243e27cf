"""Host benchmark: export a preset (random weights) and time its UNet on the bundle's runtime.

Each case runs in its own process so peak memory is the export's own. Results are JSON lines.

    python benchmarks/host_bench.py --preset snapfusion --format onnx --precision fp16 \
        --out /tmp/bench --results benchmarks/results/host.jsonl

With --diffusers-baseline (preset sd15, onnx fp32), the same run also exports diffusers' own
SD-1.5 UNet (random weights, diffusers from the dev extra) with the same exporter settings
(TorchScript exporter, opset 17, onnxsim) and times it on onnxruntime with the same inputs, so
"ours vs diffusers" is a ratio measured in one process, the two UNets called in turn
(`unet_vs_diffusers`: median of ours / median of theirs; < 1: ours is faster).
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


def interleaved_timings(
    paths: list[Path], feeds: dict[str, np.ndarray], repeats: int
) -> list[list[float]]:
    """Per model, `repeats` call times, the models called in turn (A B A B ...) after one
    warm-up each, so that machine drift hits every model alike."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    sessions = [ort.InferenceSession(str(p), options, providers=providers) for p in paths]
    for session in sessions:
        session.run(None, feeds)  # warm-up
    timings: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for session, times in zip(sessions, timings, strict=True):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
    return timings


def run_diffusers_case(args: argparse.Namespace) -> dict:
    """Export diffusers' SD-1.5 UNet2DConditionModel as our exporter exports ours (fp32), then
    time it and our bundle's UNet (written by the "ours" case) in turn, in this one process, on
    the same inputs; runs inside a child process."""
    import tempfile

    import torch
    from diffusers import UNet2DConditionModel

    from sfmobile.export.onnx import OPSET, simplify

    torch.manual_seed(0)
    # diffusers' defaults are SD-1.x's UNet but for these two (runwayml's unet/config.json)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.unet = inner

        def forward(self, sample, timestep, text_embeddings):
            return self.unet(sample, timestep, text_embeddings, return_dict=False)[0]

    latent = args.size // 8
    batch = 2 if args.cfg_batch == 2 else 1
    sample = torch.randn(batch, 4, latent, latent)
    timestep = torch.full((batch,), 500.0)  # [B], as our UNet's contract has it
    text = torch.randn(batch, 77, 768)
    names = ("sample", "timestep", "text_embeddings")
    folder = Path(tempfile.mkdtemp(dir=args.out, prefix="diffusers-"))
    raw, final = folder / "raw.onnx", folder / "unet.onnx"
    start = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            Wrapped(unet),
            (sample, timestep, text),
            str(raw),
            input_names=list(names),
            output_names=["noise_pred"],
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    simplify(raw, final)
    export_s = time.perf_counter() - start
    del unet
    feeds = dict(zip(names, (sample.numpy(), timestep.numpy(), text.numpy()), strict=True))
    ours = bundle_dir(args) / "unet.onnx"
    theirs_s, ours_s = interleaved_timings([final, ours], feeds, args.repeats)
    return {
        "diffusers_export_s": round(export_s, 1),
        "diffusers_unet_call_s_median": round(statistics.median(theirs_s), 3),
        "diffusers_unet_call_s_all": [round(t, 3) for t in theirs_s],
        "ours_interleaved_s_all": [round(t, 3) for t in ours_s],
        "unet_vs_diffusers": round(statistics.median(ours_s) / statistics.median(theirs_s), 3),
    }


def bundle_dir(args: argparse.Namespace) -> Path:
    return Path(args.out) / f"{args.preset}-{args.format}-{args.precision}-{args.quantization}"


def run_case(args: argparse.Namespace) -> dict:
    """Export one (preset, format, precision) and time it; runs inside the child process."""
    from sfmobile.export.bundle_export import export_bundle
    from sfmobile.models.random_init import random_model

    model = random_model(args.preset, seed=0)
    out = bundle_dir(args)
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


def run_child(args: argparse.Namespace, kind: str) -> dict:
    """One case in a fresh process (its peak memory is its own); its stderr is shown on failure."""
    argv = [a for a in sys.argv[1:] if a != "--diffusers-baseline"]
    command = [sys.executable, __file__, "--child", kind, *argv]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{kind} case failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--diffusers-baseline", action="store_true")
    parser.add_argument("--child", choices=["ours", "diffusers"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.diffusers_baseline and (args.preset, args.format, args.precision) != (
        "sd15",
        "onnx",
        "fp32",
    ):
        parser.error("--diffusers-baseline compares the sd15 preset's onnx fp32 export only")
    if args.child:
        case = run_case if args.child == "ours" else run_diffusers_case
        print(json.dumps(case(args)))
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    record = run_child(args, "ours")
    if args.diffusers_baseline:
        record.update(run_child(args, "diffusers"))
    result = json.dumps(record)
    print(result)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as stream:
            stream.write(result + "\n")


if __name__ == "__main__":
    main()
