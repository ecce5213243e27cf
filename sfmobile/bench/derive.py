"""What a run's raw case records imply: MACs per case counted from the ONNX fp32 graphs and
the share of the CPU's nominal peak reached, image PSNR of every pipeline against the fp32
one, and the ratios the issue asks for, each as a JSON-ready record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from sfmobile.bench.macs import count_macs
from sfmobile.bench.plan import COMPONENT_CASES, PIPELINE_CASES


def component_file(bundle: Path, component: str) -> Path:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return bundle / manifest["components"][component]["files"][0]


def recipe(record: dict) -> str:
    return f"{record['backend']}-{record['precision']}"


def index(records: list[dict]) -> dict[tuple[str, str], dict]:
    """(recipe, case) -> record, successful timed cases only."""
    return {
        (recipe(r), r["case"]): r
        for r in records
        if r.get("record") == "case" and r.get("status") == "ok" and "median_s" in r
    }


def case_macs(records: list[dict]) -> dict[str, int]:
    """MACs of one timed sample of each case, counted on the onnx-fp32 bundles of the run
    (a graph with ops of unknown shape is left out rather than undercounted)."""
    graphs: dict[tuple[str, str], int] = {}
    for r in records:
        if r.get("kind") == "export" and r.get("status") == "ok" and recipe(r) == "onnx-fp32":
            for component in ("text_encoder", "unet", "decoder"):
                count = count_macs(component_file(Path(r["bundle"]), component))
                if not count.unresolved:
                    graphs[(r["variant"], component)] = count.total
    macs = {}
    for case, (variant, component, _, calls) in COMPONENT_CASES.items():
        if (variant, component) in graphs:
            macs[case] = graphs[(variant, component)] * calls
    steps = next((r["steps"] for r in records if r.get("kind") == "pipeline"), None)
    for case, variant in PIPELINE_CASES.items():
        parts = [(variant, c) for c in ("text_encoder", "unet", "decoder")]
        if steps and all(p in graphs for p in parts):
            prompts = 1 if variant == "guided" else 2  # CFG encodes the negative prompt too
            text, unet, decoder = (graphs[p] for p in parts)
            macs[case] = prompts * text + steps * unet + decoder
    return macs


def roofline(records: list[dict]) -> dict | None:
    """The run's measured GEMM limit (sfmobile.bench.roofline), if it was measured."""
    return next(
        (r for r in records if r.get("kind") == "roofline" and r.get("status") == "ok"), None
    )


def limits(records: list[dict], peak_gflops: float | None) -> list[dict]:
    """Achieved GFLOP/s (2 FLOP per MAC) of every timed case, as a share of the nominal fp32
    peak and of the measured GEMM limit: the int8 GEMM's for int8 recipes, else the fp32 one's
    (`gemm`: which)."""
    macs, gemm = case_macs(records), roofline(records)
    out = []
    for (name, case), r in index(records).items():
        if case not in macs:
            continue
        gflops = 2 * macs[case] / r["median_s"] / 1e9
        share = round(gflops / peak_gflops, 4) if peak_gflops else None
        record = {"record": "limit", "recipe": name, "case": case, "macs": macs[case]}
        record |= {"gflops": round(gflops, 2), "peak_share": share}
        if gemm:
            key = "int8_gops" if r["precision"].startswith("int8") else "fp32_gflops"
            record |= {"gemm": key, "gemm_share": round(gflops / gemm[key], 4)}
        out.append(record)
    return out


def psnr_records(records: list[dict]) -> list[dict]:
    """PSNR (sfmobile.verify.psnr) of each pipeline image against the fp32 image of the same
    case: PyTorch's when timed, else onnxruntime's."""
    from sfmobile.verify import psnr

    done = index(records)
    out = []
    for case in PIPELINE_CASES:
        reference = next(
            (f"{n}-fp32" for n in ("torch", "onnx") if (f"{n}-fp32", case) in done), None
        )
        if reference is None:
            continue
        expected = np.asarray(Image.open(done[(reference, case)]["image"]))
        for (name, other), r in done.items():
            if other == case and name != reference:
                value = psnr(np.asarray(Image.open(r["image"])), expected)
                out.append(
                    {"record": "psnr", "recipe": name, "case": case, "against": reference}
                    | {"psnr_db": "inf" if np.isinf(value) else round(value, 2)}
                )
    return out


def _ratio(group: int, what: str, faster: dict, slower: dict, note: str = "") -> dict:
    """speedup: how many times less time `faster` took than `slower` (< 1: it took longer)."""
    return {
        "record": "ratio",
        "group": group,
        "what": what,
        "speedup": round(slower["median_s"] / faster["median_s"], 3),
        "of": f"{recipe(faster)}/{faster['case']}",
        "against": f"{recipe(slower)}/{slower['case']}",
        "note": note,
    }


def ratios(records: list[dict]) -> list[dict]:
    done = index(records)
    recipes = sorted({name for name, _ in done if name != "diffusers-fp32"})
    out = []
    baseline = done.get(("diffusers-fp32", "diffusers_pipeline"))
    if baseline:
        steps = baseline.get("extrapolated_from_steps")
        note = f"extrapolated from {steps} steps" if steps else "measured at 50 steps"
        for name in recipes:
            for case in PIPELINE_CASES:
                if (name, case) in done:
                    what = f"{case} vs diffusers SD-1.5 50-step DDIM"
                    out.append(_ratio(1, what, done[(name, case)], baseline, note))
    pairs = (
        (2, "UNet vs reference (SD-1.5 layout)", "unet_b2", "reference_unet_b2"),
        (2, "half-channel vs full decoder", "decoder_half", "decoder_full"),
        (4, "CFG as one batch-2 call vs two batch-1 calls", "unet_b2", "unet_2xb1"),
        (4, "guidance-input single call vs CFG batch-2 call", "unet_guided", "unet_b2"),
    )
    for name in recipes:
        for group, what, case, against in pairs:
            if (name, case) in done and (name, against) in done:
                out.append(_ratio(group, what, done[(name, case)], done[(name, against)]))
        backend, precision = name.split("-", 1)
        fp32 = next(
            (f"{b}-fp32" for b in (backend, "onnx") if (f"{b}-fp32", "unet_b2") in done), None
        )
        if precision == "fp32" or fp32 is None:
            continue
        note = "" if fp32.startswith(backend) else f"no {backend} fp32: against {fp32}"
        for case in ("unet_b2", "pipeline"):
            if (name, case) in done and (fp32, case) in done:
                faster, slower = done[(name, case)], done[(fp32, case)]
                out.append(_ratio(3, f"{precision} vs fp32 ({case})", faster, slower, note))
                if case == "pipeline":
                    share = faster["peak_rss_mb"] / slower["peak_rss_mb"]
                    out[-1]["memory_ratio"] = round(share, 3)
    return out


def derive(machine: dict, records: list[dict]) -> list[dict]:
    peak = (machine.get("cpu") or {}).get("peak_gflops")
    return limits(records, peak) + psnr_records(records) + ratios(records)
