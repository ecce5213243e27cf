"""Which cases one `sfmobile bench` run times: the bundles to export, then per backend and
precision each component and the whole pipeline, then the diffusers baseline. The profile of
the slowest component is planned by the runner once the times are known."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfmobile.bench.variants import Source
from sfmobile.errors import InputError

BACKENDS = ("torch", "onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
# TFLite flatbuffers stop at 2 GB: full-size fp32 UNets do not fit, so TFLite is fp16/int8 only
RECIPES = (
    ("torch", "fp32"),
    ("onnx", "fp32"),
    ("onnx", "fp16"),
    ("onnx", "int8"),
    ("tflite", "fp16"),
    ("tflite", "int8"),
)
# case name -> (variant, component, UNet batch, calls per sample)
COMPONENT_CASES = {
    "text_encoder": ("b2-half", "text_encoder", None, 1),
    "unet_b2": ("b2-half", "unet", 2, 1),
    "unet_2xb1": ("b1-full", "unet", 1, 2),
    "unet_guided": ("guided", "unet", 1, 1),
    "decoder_full": ("b1-full", "decoder", None, 1),
    "decoder_half": ("b2-half", "decoder", None, 1),
    "reference_unet_b2": ("reference", "unet", 2, 1),
}
PIPELINE_CASES = {"pipeline": "b2-half", "pipeline_guided": "guided"}


@dataclass(frozen=True)
class Options:
    source: Source
    backends: tuple[str, ...]
    precisions: tuple[str, ...]
    size: int
    repeats: int
    steps: int
    baseline_steps: int
    out: Path

    def check(self) -> None:
        for name, values, allowed in (
            ("--backends", self.backends, BACKENDS),
            ("--precisions", self.precisions, PRECISIONS),
        ):
            wrong = [v for v in values if v not in allowed]
            if wrong or not values:
                raise InputError(f"{name} {','.join(values)}: expected some of {allowed}")
        if not self.recipes():
            raise InputError(
                f"--backends {','.join(self.backends)} --precisions {','.join(self.precisions)}: "
                f"no such recipe (available: {', '.join('-'.join(r) for r in RECIPES)})"
            )
        for name, value in (("--repeats", self.repeats), ("--steps", self.steps)):
            if value < 1:
                raise InputError(f"{name} must be >= 1, got {value}")
        if not 1 <= self.baseline_steps <= 50:
            raise InputError(f"--baseline-steps must be 1..50, got {self.baseline_steps}")
        if self.size < 8 or self.size % 8:
            raise InputError(f"--size must be a positive multiple of 8, got {self.size}")

    def recipes(self) -> list[tuple[str, str]]:
        return [r for r in RECIPES if r[0] in self.backends and r[1] in self.precisions]


def bundle_path(options: Options, backend: str, precision: str, variant: str) -> Path:
    return options.out / "bundles" / f"{backend}-{precision}-{variant}"


def plan(options: Options) -> list[dict]:
    """Every case of the run, in order, each a JSON-ready dict for the child process."""
    base = {"source": options.source.to_dict(), "size": options.size}
    cases = []
    for backend, precision in options.recipes():
        recipe = {**base, "backend": backend, "precision": precision}
        if backend != "torch":
            variants = sorted({v for v, *_ in COMPONENT_CASES.values()})
            for variant in variants:
                bundle = str(bundle_path(options, backend, precision, variant))
                name = f"{backend}-{precision}/export-{variant}"
                cases.append(
                    {**recipe, "kind": "export", "name": name, "case": f"export-{variant}"}
                    | {"variant": variant, "bundle": bundle}
                )
        for case, (variant, component, batch, calls) in COMPONENT_CASES.items():
            cases.append(
                {**recipe, "kind": "component", "name": f"{backend}-{precision}/{case}"}
                | {"case": case, "variant": variant, "component": component}
                | {"batch": batch, "calls": calls, "repeats": options.repeats}
                | {"bundle": str(bundle_path(options, backend, precision, variant))}
            )
        for case, variant in PIPELINE_CASES.items():
            image = options.out / "images" / f"{backend}-{precision}-{case}.png"
            cases.append(
                {**recipe, "kind": "pipeline", "name": f"{backend}-{precision}/{case}"}
                | {"case": case, "variant": variant, "steps": options.steps, "image": str(image)}
                | {"repeats": options.repeats}
                | {"bundle": str(bundle_path(options, backend, precision, variant))}
            )
    scale = "tiny" if options.source.reference.startswith("tiny") else "full"
    cases.append(
        {"kind": "diffusers", "name": "diffusers/pipeline", "case": "diffusers_pipeline"}
        | {"backend": "diffusers", "precision": "fp32", "scale": scale, "size": options.size}
        | {"steps": options.baseline_steps, "repeats": options.repeats}
    )
    return cases
