"""Which cases one `sfmobile bench` run times: the bundles to export, then per backend and
precision each component and the whole pipeline, then the diffusers baseline. The profile of
the slowest component is planned by the runner once the times are known."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfmobile.bench.variants import Source
from sfmobile.errors import InputError

BACKENDS = ("torch", "onnx", "tflite")
# int8: dynamic (weights int8, activations quantized per call); int8-static: calibrated QDQ,
# convolutions included (ONNX Runtime runs them as int8 convolutions)
PRECISIONS = ("fp32", "fp16", "int8", "int8-static")
# TFLite flatbuffers stop at 2 GB: full-size fp32 UNets do not fit, so TFLite is fp16/int8 only
RECIPES = (
    ("torch", "fp32"),
    ("onnx", "fp32"),
    ("onnx", "fp16"),
    ("onnx", "int8"),
    ("onnx", "int8-static"),
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
# `sfmobile generate` itself, a fresh process per image: components one at a time, loads
# included; its peak memory is a user's (the pipeline cases keep every component resident)
GENERATE_CASES = {"generate": "b2-half"}


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
    reuse_bundles: bool = False
    exports_only: bool = False
    only_recipes: tuple[str, ...] = ()  # e.g. ("onnx-fp32", "tflite-int8"): instead of the product
    only_cases: tuple[str, ...] = ()  # a subset of the timed cases; exports follow from them

    def check(self) -> None:
        timed = (*COMPONENT_CASES, *PIPELINE_CASES, *GENERATE_CASES, "diffusers_pipeline")
        wrong = [c for c in self.only_cases if c not in timed]
        if wrong:
            raise InputError(f"--cases {','.join(wrong)}: expected some of {', '.join(timed)}")
        names = ["-".join(r) for r in RECIPES]
        wrong = [r for r in self.only_recipes if r not in names]
        if wrong:
            raise InputError(f"--recipes {','.join(wrong)}: expected some of {', '.join(names)}")
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
        if self.only_recipes:
            return [r for r in RECIPES if "-".join(r) in self.only_recipes]
        return [r for r in RECIPES if r[0] in self.backends and r[1] in self.precisions]


def precision_and_quantization(precision: str) -> tuple[str, str | None]:
    """A bench precision as export's --precision and --quantization."""
    if precision == "int8-static":
        return "int8", "static"
    return precision, None


def bundle_path(options: Options, backend: str, precision: str, variant: str) -> Path:
    return options.out / "bundles" / f"{backend}-{precision}-{variant}"


def plan(options: Options) -> list[dict]:
    """Every case of the run, in order, each a JSON-ready dict for the child process: the
    CPU's measured GEMM limit first, then per recipe its exports and timed cases."""
    base = {"source": options.source.to_dict(), "size": options.size}
    cases = [{"kind": "roofline", "name": "roofline/gemm", "case": "roofline"}]
    cases[0] |= {"backend": "onnx", "precision": "fp32+int8"}
    for backend, precision in options.recipes():
        recipe = {**base, "backend": backend, "precision": precision}
        if backend != "torch":
            variants = sorted({case["variant"] for case in timed_cases(options, recipe)})
            for variant in variants:
                bundle = str(bundle_path(options, backend, precision, variant))
                name = f"{backend}-{precision}/export-{variant}"
                cases.append(
                    {**recipe, "kind": "export", "name": name, "case": f"export-{variant}"}
                    | {"variant": variant, "bundle": bundle, "reuse": options.reuse_bundles}
                )
        cases += timed_cases(options, recipe)
    if options.exports_only:
        return [c for c in cases if c["kind"] == "export"]
    if options.only_cases and "diffusers_pipeline" not in options.only_cases:
        return cases
    scale = "tiny" if options.source.reference.startswith("tiny") else "full"
    cases.append(
        {"kind": "diffusers", "name": "diffusers/pipeline", "case": "diffusers_pipeline"}
        | {"backend": "diffusers", "precision": "fp32", "scale": scale, "size": options.size}
        | {"steps": options.baseline_steps, "repeats": options.repeats}
    )
    return cases


def timed_cases(options: Options, recipe: dict) -> list[dict]:
    """The component, pipeline and generate cases of one recipe (--cases: those named)."""
    backend, precision = recipe["backend"], recipe["precision"]
    prefix = f"{backend}-{precision}"
    cases = []
    for case, (variant, component, batch, calls) in COMPONENT_CASES.items():
        cases.append(
            {**recipe, "kind": "component", "name": f"{prefix}/{case}", "case": case}
            | {"variant": variant, "component": component, "batch": batch, "calls": calls}
        )
    whole = [("pipeline", c, v) for c, v in PIPELINE_CASES.items()]
    if backend != "torch":  # `sfmobile generate` runs bundles
        whole += [("generate", c, v) for c, v in GENERATE_CASES.items()]
    for kind, case, variant in whole:
        image = options.out / "images" / f"{prefix}-{case}.png"
        cases.append(
            {**recipe, "kind": kind, "name": f"{prefix}/{case}", "case": case}
            | {"variant": variant, "steps": options.steps, "image": str(image)}
        )
    for case in cases:
        case["repeats"] = options.repeats
        case["bundle"] = str(bundle_path(options, backend, precision, case["variant"]))
    return [c for c in cases if not options.only_cases or c["case"] in options.only_cases]
