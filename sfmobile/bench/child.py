"""One benchmark case, run as `python -m sfmobile.bench.child '<case JSON>'` in a fresh
process (so its peak memory and warm-up are its own); prints one JSON line of results.

Case kinds: roofline (the CPU's GEMM limit), export (a bundle), component (text_encoder / unet
/ decoder calls), pipeline (the whole text-to-image run), generate (`sfmobile generate` itself,
once: the runner starts one process per repeat), diffusers (the baseline pipeline), profile
(onnxruntime's profiler). torch is imported only by the cases that build a model, so an ONNX or
TFLite case's peak memory does not include it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PROMPT = "a red bicycle leaning on a blue door"


def repeat(call: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of `repeats` calls after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def open_case_backend(case: dict):
    """The case's backend: its bundle for onnx/tflite, the rebuilt variant for torch."""
    from sfmobile.backends.factory import open_backend

    if case["backend"] == "torch":
        from sfmobile.backends.torch_backend import TorchBackend
        from sfmobile.bench.variants import Source, build

        return TorchBackend(build(Source(**case["source"]), case["variant"]))
    return open_backend(Path(case["bundle"]), case["backend"], verify="sizes")


def reused_bundle(case: dict) -> dict | None:
    """With --reuse-bundles, a complete bundle already at the case's path (its manifest read
    and every file's sha256 checked) is kept instead of exported again."""
    from sfmobile.bundle import read_bundle

    bundle = Path(case["bundle"])
    if not (case.get("reuse") and (bundle / "manifest.json").is_file()):
        return None
    read_bundle(bundle, verify="full")
    sizes = [p.stat().st_size for p in bundle.rglob("*") if p.is_file()]
    return {"reused": True, "bundle_mb": round(sum(sizes) / 1e6, 2)}


def run_export(case: dict) -> dict:
    from sfmobile.bench.plan import precision_and_quantization
    from sfmobile.bench.variants import Source, build, cfg_batch
    from sfmobile.export.bundle_export import export_bundle

    reused = reused_bundle(case)
    if reused:
        return reused
    model = build(Source(**case["source"]), case["variant"])
    start = time.perf_counter()
    out = export_bundle(
        model,
        Path(case["bundle"]),
        case["backend"],
        *precision_and_quantization(case["precision"]),
        height=case["size"],
        width=case["size"],
        cfg_batch=cfg_batch(case["variant"]),
        calibration_prompts=2,
        release_weights=True,  # as `sfmobile export` does: the timed export's memory is a user's
    )
    seconds = time.perf_counter() - start
    sizes = {p.name: p.stat().st_size for p in Path(out).rglob("*") if p.is_file()}
    return {"export_s": round(seconds, 2), "bundle_mb": round(sum(sizes.values()) / 1e6, 2)}


def run_component(case: dict) -> dict:
    backend = open_case_backend(case)
    info, size = backend.info, case["size"]
    h = size // info.vae_downscale
    rng = np.random.default_rng(0)
    component, calls = case["component"], case.get("calls", 1)
    if component == "text_encoder":
        ids = rng.integers(0, 49407, (1, 77)).astype(np.int32)
        call = lambda: backend.encode_text(ids)  # noqa: E731
    elif component == "decoder":
        latents = rng.standard_normal((1, info.latent_channels, h, h), dtype=np.float32)
        call = lambda: backend.decode(latents)  # noqa: E731
    else:
        batch = case["batch"]
        latents = rng.standard_normal((batch, info.latent_channels, h, h), dtype=np.float32)
        text = rng.standard_normal((batch, 77, info.text_width), dtype=np.float32)
        guidance = 7.5 if info.guidance_input else None

        def call() -> None:
            for _ in range(calls):
                backend.predict(latents, 500.0, text, guidance)

    return {"times_s": repeat(call, case["repeats"])}


def run_pipeline(case: dict) -> dict:
    from sfmobile.bench.variants import cfg_batch
    from sfmobile.pipeline import Pipeline

    backend = open_case_backend(case)
    pipeline = Pipeline(backend, cfg_batch(case["variant"]))
    size, runs = case["size"], []

    def call() -> None:
        runs.append(pipeline.generate(PROMPT, steps=case["steps"], height=size, width=size))

    times = repeat(call, case["repeats"])
    runs[-1].image.save(case["image"])
    parts = [r.timings for r in runs[1:]]
    return {
        "times_s": times,
        "steps": case["steps"],
        "unet_calls": len(parts[-1].unet),
        "parts_s": {
            "text_encoder": float(np.median([p.text_encoder for p in parts])),
            "unet": float(np.median([sum(p.unet) for p in parts])),
            "scheduler": float(np.median([p.scheduler for p in parts])),
            "decoder": float(np.median([p.decoder for p in parts])),
        },
        "image": case["image"],
    }


def run_diffusers(case: dict) -> dict:
    from sfmobile.bench.diffusers_baseline import time_diffusers

    return time_diffusers(case["scale"], case["size"], case["steps"], case["repeats"])


def run_profile(case: dict) -> dict:
    from sfmobile.bench.profile import profile_onnx

    return profile_onnx(Path(case["model"]), case["repeats"], Path(case["trace_dir"]))


def run_generate(case: dict) -> dict:
    """`sfmobile generate` as a user runs it (components one at a time), in this process."""
    from sfmobile.cli.app import run
    from sfmobile.peak_memory import own_peak_mb

    before = own_peak_mb() or 0.0  # start-up and imports: generate resets the peak it records
    timings = Path(case["timings"])
    start = time.perf_counter()
    code = run([*generate_arguments(case), "--timings", str(timings)])
    if code:
        raise SystemExit(f"sfmobile generate exited with {code}")
    seconds = time.perf_counter() - start
    inner = json.loads(timings.read_text())
    return {
        "times_s": [seconds],
        "own_peak_rss_mb": max(before, own_peak_mb() or 0.0),
        "generation_peak_rss_mb": inner["peak_rss_mb"],
        "generation_s": round(inner["total"], 3),
    }


def generate_arguments(case: dict) -> list[str]:
    size = str(case["size"])
    return [
        *("generate", "--model", case["bundle"], "--prompt", PROMPT, "--seed", "0"),
        *("--steps", str(case["steps"]), "--height", size, "--width", size, "--out", case["image"]),
    ]


def run_roofline(case: dict) -> dict:
    from sfmobile.bench.roofline import measure

    return measure()


KINDS = {
    "roofline": run_roofline,
    "generate": run_generate,
    "export": run_export,
    "component": run_component,
    "pipeline": run_pipeline,
    "diffusers": run_diffusers,
    "profile": run_profile,
}


def main() -> None:
    from sfmobile.peak_memory import own_peak_mb

    case = json.loads(sys.argv[1])
    result = KINDS[case["kind"]](case)
    result.setdefault("own_peak_rss_mb", own_peak_mb())
    print(json.dumps({**result, "pid": os.getpid()}))


if __name__ == "__main__":
    main()
