"""The demo's Markdown report: the image grid (rows = prompts, columns = backends, PNGs linked
relative to the report), agreement with PyTorch, per-component timings, bundle sizes and export
times. Everything it shows comes from a DemoResult (demo_result.py, filled by demo.py); it
computes no metric itself.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from pathlib import Path

from sfmobile.apps.demo_result import COMPONENTS, REFERENCE, DemoResult


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows), ""]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _mb(count: int) -> str:
    return f"{count / 1e6:.2f}"


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1f}"


def summary(result: DemoResult) -> list[str]:
    config = result.config
    size = config.image_size
    export_total = sum(b.export_seconds for b in result.bundles.values())
    return [
        "# sfmobile demo",
        "",
        f"- model: `{result.source}`",
        f"- image: {size}x{size}, {result.steps} steps, guidance {result.guidance:g}, "
        f"seeds {result.seeds[0]}..{result.seeds[-1]} (one per prompt, the same on every backend)",
        f"- backends: {', '.join(result.backends)} (torch runs the checkpoint: the reference)",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{result.torch_threads}",
        f"- wall time: {result.wall_seconds:.1f} s, of which export {export_total:.1f} s",
        "",
    ]


def image_grid(result: DemoResult, report_dir: Path) -> list[str]:
    names = list(result.backends)
    rows = []
    for index, prompt in enumerate(result.prompts):
        cells = [f"{prompt} (seed {result.seeds[index]})"]
        for name in names:
            link = Path(os.path.relpath(result.backends[name].images[index], report_dir))
            cells.append(f"![{name}: {prompt}]({link.as_posix()})")
        rows.append(cells)
    return ["## Images", "", *_table(["prompt", *names], rows)]


def agreement(result: DemoResult) -> list[str]:
    rows = []
    for name, run in result.backends.items():
        if name == REFERENCE:
            continue
        worst = min(run.psnr_db)
        threshold = run.min_psnr_db
        within = "yes" if threshold is None or worst >= threshold else "no"
        rows.append(
            [
                name,
                run.precision,
                _db(worst),
                _db(statistics.fmean(run.psnr_db)),
                str(max(run.max_pixel_diff)),
                "-" if threshold is None else f"{threshold:g}",
                within,
            ]
        )
    header = [
        "backend",
        "precision",
        "min PSNR dB",
        "mean PSNR dB",
        "max pixel diff",
        "threshold dB",
        "within",
    ]
    note = (
        "PSNR and max pixel difference (0-255) of each backend's image against the torch image "
        "of the same prompt and seed; threshold: sfmobile.verify's minimum PSNR for the "
        "precision."
    )
    return ["## Agreement with PyTorch", "", note, "", *_table(header, rows)]


def timings(result: DemoResult) -> list[str]:
    rows = []
    for name, run in result.backends.items():
        calls = [t for timing in run.timings for t in timing.unet]

        def mean(values: list[float]) -> str:
            return _ms(statistics.fmean(values))

        rows.append(
            [
                name,
                mean([t.text_encoder for t in run.timings]),
                mean(calls),
                str(round(len(calls) / len(run.timings))),
                mean([t.scheduler for t in run.timings]),
                mean([t.decoder for t in run.timings]),
                mean([t.total for t in run.timings]),
            ]
        )
    header = [
        "backend",
        "text encoder",
        "UNet per call",
        "UNet calls",
        "scheduler",
        "decoder",
        "total",
    ]
    note = (
        f"Milliseconds per image, mean over {len(result.prompts)} prompts after one untimed "
        "warm-up generation (text encoder: both prompts of the guidance pair; scheduler: all "
        "steps)."
    )
    return ["## Timings", "", note, "", *_table(header, rows)]


def sizes(result: DemoResult) -> list[str]:
    rows = [
        [
            f"{REFERENCE} (fp32 in memory)",
            *(_mb(result.parameters[c] * 4) for c in COMPONENTS),
            _mb(sum(result.parameters.values()) * 4),
            "-",
        ]
    ]
    for name, bundle in result.bundles.items():
        rows.append(
            [
                f"{name} ({bundle.precision})",
                *(_mb(bundle.component_bytes.get(c, 0)) for c in COMPONENTS),
                _mb(sum(bundle.component_bytes.values())),
                f"{bundle.export_seconds:.1f}",
            ]
        )
    header = ["bundle", *(f"{c} MB" for c in COMPONENTS), "total MB", "export s"]
    bundles_dir = result.config.out / "bundles"
    note = f"Bundles are in `{bundles_dir}`; export s is each bundle's export wall time."
    return ["## Bundles", "", note, "", *_table(header, rows)]


def write_report(result: DemoResult, path: Path) -> Path:
    """Write the report to `path` (its images must sit under path's folder) and return it."""
    path = Path(path)
    lines = [
        *summary(result),
        *image_grid(result, path.parent),
        *agreement(result),
        *timings(result),
        *sizes(result),
    ]
    path.write_text("\n".join(lines))
    return path
