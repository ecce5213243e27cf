"""The phone report: JSON (everything, the app's results included), Markdown (per component and
total, beside the published reference points, with ratios) and a PNG chart.

Built from the records of a run; the same code rebuilds it later from the saved JSON. Medians
over the timed runs; the total's min and max show the spread.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.phone.references import GOOGLE_S23, REFERENCES, SNAPFUSION_IPHONE
from benchmarks.phone.results import load_result
from sfmobile.errors import InputError

FORMAT = "sfmobile-phone-report"
CHART_STEPS = 8  # the step count at which per-call references are drawn as whole runs


def summarize(result: dict[str, Any]) -> dict[str, float] | None:
    """Medians of one session's timed runs (None when no run completed)."""
    runs = result["runs"]
    if not runs:
        return None
    calls = [call for run in runs for call in run["unet_ms"]]
    peaks = [run["peak_memory_mb"] for run in runs if "peak_memory_mb" in run]
    totals = [run["total_ms"] for run in runs]
    return {
        "runs": len(runs),
        "text_encoder_ms": statistics.median(run["text_encoder_ms"] for run in runs),
        "unet_call_ms": statistics.median(calls) if calls else 0.0,
        "unet_calls": statistics.median(len(run["unet_ms"]) for run in runs),
        "unet_total_ms": statistics.median(sum(run["unet_ms"]) for run in runs),
        "decoder_ms": statistics.median(run["decoder_ms"] for run in runs),
        "total_ms": statistics.median(totals),
        "total_min_ms": min(totals),
        "total_max_ms": max(totals),
        "peak_memory_mb": max(peaks) if peaks else None,
    }


def build_report(
    device: dict[str, Any] | None,
    records: list[dict[str, Any]],
    pushes: dict[str, Any],
    tool_results: list[dict[str, Any]],
    error: str | None,
    command: list[str],
    base: Path,
) -> dict[str, Any]:
    """Everything about a run; result_file paths in records are relative to base."""
    sessions = []
    for record in records:
        file = record.get("result_file")
        result = load_result(base / file) if file else None
        summary = summarize(result) if result else None
        sessions.append({**record, "summary": summary, "result": result})
    return {
        "format": FORMAT,
        "format_version": 1,
        "command": command,
        "device": device,
        "sessions": sessions,
        "pushes": pushes,
        "tool_results": tool_results,
        "references": [r.to_dict() for r in REFERENCES],
        "error": error,
    }


def _ms(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _session_label(session: dict[str, Any]) -> str:
    return f"{session['bundle']} · {session['backend']} · {session['steps']} steps"


def render_markdown(report: dict[str, Any]) -> str:
    device = report["device"]
    lines = ["# Phone benchmark", ""]
    if device:
        serial = f", serial {device['serial']}" if device["serial"] else ""
        lines += [
            f"Device: {device['manufacturer']} {device['model']}, SoC {device['soc']}, Android "
            f"{device['android_version']} (SDK {device['sdk_int']}), "
            f"{device['memory_total_mb'] / 1024:.1f} GiB RAM{serial}; thermal status "
            f"{device['thermal_status']} and battery {device['battery_c']} °C at the start.",
            "",
        ]
    lines += ["Command: `" + " ".join(report["command"]) + "`", ""]
    if report["error"]:
        lines += [f"**The run stopped early:** {report['error']}", ""]
    lines += _session_table(report["sessions"]) + _reference_table() + _ratios(report["sessions"])
    lines += _tool_table(report["tool_results"])
    return "\n".join(lines) + "\n"


def _session_table(sessions: list[dict[str, Any]]) -> list[str]:
    if not sessions:
        return []
    lines = [
        "## Measured on this phone (medians of the timed runs)",
        "",
        "| bundle | backend (ran on) | steps | runs | text encoder ms | UNet ms/call | UNet calls "
        "| UNet ms, all calls | decoder ms | total ms (min-max) | peak MiB | load ms | cooldown "
        "| status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| --- |",
    ]
    for s in sessions:
        summary, result, cooldown = s["summary"] or {}, s["result"] or {}, s["cooldown"]
        ran_on = result.get("backend", {}).get("accelerator", "")
        cool = (
            f"{cooldown['waited_s']:.0f} s, {cooldown['status_before']}->{cooldown['status_after']}"
            f"{'' if cooldown['reached'] else ' (not reached)'}, battery {cooldown['battery_c']} °C"
            if cooldown
            else ""
        )
        total = (
            f"{_ms(summary['total_ms'])} ({_ms(summary['total_min_ms'])}-"
            f"{_ms(summary['total_max_ms'])})"
            if summary
            else ""
        )
        status = s["status"] + (f": {s['error']}" if s.get("error") else "")
        # settings.decoder: the one decoder the app loaded (absent from older apps' results).
        tiled = result.get("settings", {}).get("decoder") == "decoder_tile"
        decoder = _ms(summary.get("decoder_ms")) + (" (tiles)" if tiled else "")
        lines.append(
            f"| {s['bundle']} | {s['backend']} ({ran_on}) | {s['steps']} "
            f"| {_ms(summary.get('runs'))} | {_ms(summary.get('text_encoder_ms'), 1)} "
            f"| {_ms(summary.get('unet_call_ms'), 1)} | {_ms(summary.get('unet_calls'))} "
            f"| {_ms(summary.get('unet_total_ms'))} | {decoder} | {total} "
            f"| {_ms(summary.get('peak_memory_mb'))} | {_ms(result.get('load_ms'))} | {cool} "
            f"| {status} |"
        )
    return [*lines, ""]


def _reference_table() -> list[str]:
    lines = [
        "## Reference points (published, not measured here)",
        "",
        "| reference | model | device | steps | text encoder ms | UNet ms/call | UNet ms, all "
        f"calls | decoder ms | total ms | implied total at {CHART_STEPS} steps |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in REFERENCES:
        lines.append(
            f"| {r.label} ({r.source}) | {r.model} | {r.device} | {_ms(r.steps)} "
            f"| {_ms(r.text_encoder_ms, 1)} | {_ms(r.unet_call_ms, 1)} | {_ms(r.unet_total_ms)} "
            f"| {_ms(r.decoder_ms)} | {_ms(r.total_ms)} | {_ms(r.implied_total_ms(CHART_STEPS))} |"
        )
    lines += [
        "",
        f"Implied totals: text encoder + {CHART_STEPS} steps x 2 UNet calls (classifier-free "
        "guidance as two batch-1 calls) + decoder, from the per-call times; tokenizer and "
        "scheduler left out.",
        "",
    ]
    return lines


def _ratios(sessions: list[dict[str, Any]]) -> list[str]:
    done = [s for s in sessions if s["summary"]]
    if not done:
        return []
    lines = ["## Ratios (speed-ups: the other's time over this one's; above 1 is faster)", ""]
    for s in done:
        total = s["summary"]["total_ms"]
        lines.append(
            f"- {_session_label(s)}: {total / 1000:.2f} s; against Google's 11.5 s (SD-1.4, 20 "
            f"steps, S23 Ultra GPU) {GOOGLE_S23.total_ms / total:.2f}x; against SnapFusion's "
            f"1.96 s (8 steps, iPhone 14 Pro) {SNAPFUSION_IPHONE.total_ms / total:.2f}x"
        )
    baselines = [s for s in done if "sd15" in s["bundle"].lower()]
    for s in done:
        for base in baselines:
            if base is s or base["backend"] != s["backend"] or "sd15" in s["bundle"].lower():
                continue
            lines.append(
                f"- {_session_label(s)} against {_session_label(base)} on this phone: "
                f"{base['summary']['total_ms'] / s['summary']['total_ms']:.2f}x"
            )
    return [*lines, ""]


def _tool_table(tool_results: list[dict[str, Any]]) -> list[str]:
    if not tool_results:
        return []
    lines = [
        "## Runtime tools on this phone (no app)",
        "",
        "| component | model file | tool | accelerator | avg ms | P50 ms | first ms | init ms "
        "| peak MiB |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in tool_results:
        lines.append(
            f"| {t['component']} | {t['model_file']} | {t['tool']} | {t['accelerator']} "
            f"| {_ms(t['avg_ms'], 1)} | {_ms(t['p50_ms'], 1)} | {_ms(t['first_ms'], 1)} "
            f"| {_ms(t['init_ms'])} | {_ms(t['peak_memory_mb'])} |"
        )
    return [*lines, ""]


def chart_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(label, {segment: seconds}) per bar: measured sessions, then the references."""
    rows = []
    for s in report["sessions"]:
        if s["summary"]:
            m = s["summary"]
            parts = {
                "text encoder": m["text_encoder_ms"],
                "UNet": m["unet_total_ms"],
                "decoder": m["decoder_ms"],
            }
            parts["other"] = max(m["total_ms"] - sum(parts.values()), 0.0)
            rows.append((f"{_session_label(s)} (measured)", parts))
    for r in REFERENCES:
        if r.unet_total_ms is not None:
            rows.append((r.label, {"UNet": r.unet_total_ms, "other": r.total_ms - r.unet_total_ms}))
        elif r.total_ms is not None:
            rows.append((f"{r.label}, {r.steps} steps", {"whole run": r.total_ms}))
        else:
            calls = CHART_STEPS * 2 * r.unet_call_ms
            parts = {"text encoder": r.text_encoder_ms, "UNet": calls, "decoder": r.decoder_ms}
            rows.append((f"{r.label} (implied, {CHART_STEPS} steps)", parts))
    return [(label, {k: v / 1000 for k, v in parts.items()}) for label, parts in rows]


def render_chart(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise InputError(f"{path}: the chart needs matplotlib (pip install -e '.[dev]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = chart_rows(report)
    segments = ["text encoder", "UNet", "decoder", "other", "whole run"]
    palette = ["#4c72b0", "#dd8452", "#55a868", "#b0b0b0", "#8172b3"]
    colors = dict(zip(segments, palette, strict=True))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(rows)))
    labels = [label for label, _ in rows]
    for segment in segments:
        lefts = [
            sum(v for k, v in parts.items() if segments.index(k) < segments.index(segment))
            for _, parts in rows
        ]
        widths = [parts.get(segment, 0.0) for _, parts in rows]
        if any(widths):
            ax.barh(labels, widths, left=lefts, color=colors[segment], label=segment)
    for y, (_, parts) in enumerate(rows):
        ax.text(
            sum(parts.values()), y, f" {sum(parts.values()):.2f} s", va="center", fontsize="small"
        )
    ax.margins(x=0.12)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per 512x512 image (lower is better)")
    ax.set_title("sfmobile on the phone beside published reference points")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path, stem: str = "phone-report") -> list[Path]:
    """Write STEM.json, STEM.md and STEM.png into out_dir, each renamed into place when whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{ext}" for ext in ("json", "md", "png")]
    writers = [
        lambda p: p.write_text(json.dumps(report, indent=2) + "\n"),
        lambda p: p.write_text(render_markdown(report)),
        lambda p: render_chart(report, p),
    ]
    for path, write in zip(paths, writers, strict=True):
        partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        write(partial)
        os.replace(partial, path)
    return paths
