"""A run's JSON lines as a Markdown report and a PNG chart of time per component per backend
and precision (written from the records alone, so any results file can be re-reported)."""

from __future__ import annotations

import json
from pathlib import Path

from sfmobile.bench.derive import index, roofline
from sfmobile.bench.plan import COMPONENT_CASES, GENERATE_CASES, PIPELINE_CASES

COLUMNS = (*COMPONENT_CASES, *PIPELINE_CASES, *GENERATE_CASES)
GROUPS = {
    1: "End to end against diffusers",
    2: "Against the SD-1.5 layout",
    3: "Precision against fp32",
    4: "Classifier-free guidance",
}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _seconds(record: dict | None) -> str:
    if record is None:
        return ""
    return f"{record['median_s']:.3g} ±{record['spread_pct']:.0f}%"


def _header(machine: dict, gemm: dict | None) -> list[str]:
    source = machine.get("source", {})
    name = source.get("checkpoint") or f"preset {source.get('preset')}"
    weights = "random weights: times only" if machine.get("random_weights") else "trained weights"
    lines = [f"# sfmobile bench: {name} at {machine.get('size')}px ({weights})", ""]
    cpu = machine.get("cpu")
    if cpu:
        lines.append(
            f"CPU: {cpu['model']}, {cpu['cores']} cores x {cpu['flop_per_cycle']} fp32 FLOP/cycle"
            f" x {cpu['ghz']} GHz = {cpu['peak_gflops']} GFLOP/s nominal ({cpu['vector']}, "
            f"VNNI {'yes' if cpu['vnni'] else 'no'})."
        )
    if gemm:
        lines.append(
            f"Measured limit (onnxruntime GEMM {gemm['gemm_size']}^3 on {gemm['threads']} "
            f"threads, best of {gemm.get('repeats', 10)}): fp32 {gemm['fp32_gflops']} GFLOP/s, "
            f"int8 {gemm['int8_gops']} GOP/s."
        )
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    lines += [f"Versions: {versions}.", f"Command: `{' '.join(machine.get('command', []))}`", ""]
    return lines


def _time_table(records: list[dict]) -> list[str]:
    done = index(records)
    recipes = sorted({name for name, _ in done if name != "diffusers-fp32"})
    lines = [
        "## Seconds per case (median ± (max-min)/median)",
        "",
        "| recipe | " + " | ".join(COLUMNS) + " | pipeline peak RSS MB | generate peak RSS MB |",
        "| --- |" + " ---: |" * (len(COLUMNS) + 2),
    ]
    for name in recipes:
        cells = [_seconds(done.get((name, c))) for c in COLUMNS]
        peaks = [done.get((name, c), {}).get("peak_rss_mb", "") for c in ("pipeline", "generate")]
        lines.append(f"| {name} | " + " | ".join(cells + [str(p) for p in peaks]) + " |")
    baseline = done.get(("diffusers-fp32", "diffusers_pipeline"))
    if baseline:
        steps = baseline.get("extrapolated_from_steps")
        how = f"extrapolated from {steps} steps" if steps else "measured"
        lines += [
            "",
            f"diffusers StableDiffusionPipeline (SD-1.5 layout, 50 DDIM steps, CFG, PyTorch "
            f"fp32): {_seconds(baseline)} ({how}), peak RSS {baseline['peak_rss_mb']} MB.",
        ]
    return [*lines, ""]


def _derived(records: list[dict]) -> list[str]:
    lines = ["## Ratios (speedup: times less time than the comparison)", ""]
    for group, title in GROUPS.items():
        rows = [r for r in records if r.get("record") == "ratio" and r["group"] == group]
        if rows:
            lines.append(f"**{group}. {title}**")
            for r in rows:
                extra = f", memory x{r['memory_ratio']}" if "memory_ratio" in r else ""
                note = f" ({r['note']})" if r["note"] else ""
                lines.append(f"- {r['of']} vs {r['against']}: {r['speedup']}x{extra}{note}")
            lines.append("")
    psnr = [r for r in records if r.get("record") == "psnr"]
    if psnr:
        lines.append("**Image PSNR against fp32**")
        lines += [f"- {r['recipe']}/{r['case']}: {r['psnr_db']} dB vs {r['against']}" for r in psnr]
        lines.append("")
    limit = [r for r in records if r.get("record") == "limit"]
    if not limit:
        lines += ["No MAC counts: they are read from the run's onnx-fp32 bundles.", ""]
    if limit:
        lines += [
            "## The limit: MACs counted from the ONNX graph, share of the nominal fp32 peak and "
            "of the measured GEMM (int8 recipes: the int8 GEMM)",
            "",
            "| recipe | case | GMAC | GFLOP/s | share of nominal | share of GEMM |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in limit:
            share = "" if r["peak_share"] is None else f"{100 * r['peak_share']:.1f}%"
            gemm = f"{100 * r['gemm_share']:.1f}%" if "gemm_share" in r else ""
            lines.append(
                f"| {r['recipe']} | {r['case']} | {r['macs'] / 1e9:.3f} | {r['gflops']} "
                f"| {share} | {gemm} |"
            )
        lines.append("")
    for r in records:
        if r.get("kind") == "profile" and r.get("status") == "ok":
            ops = ", ".join(f"{op} {100 * s:.0f}%" for op, s in r["op_shares"].items())
            lines += [f"## Profile of the slowest component ({r['profiled']}, {r['name']})", ""]
            lines += [f"Kernel time by operator: {ops}.", ""]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        lines += ["## Failed cases", ""]
        lines += [f"- {r['name']}: {r['error']} (log {r['log']})" for r in failed]
    return lines


def markdown(records: list[dict]) -> str:
    machine = next((r for r in records if r.get("record") == "machine"), {})
    return (
        "\n".join(_header(machine, roofline(records)) + _time_table(records) + _derived(records))
        + "\n"
    )


def chart(records: list[dict], path: Path) -> None:
    """Grouped bars: median seconds per case (x) for each recipe (bars), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = index(records)
    recipes = sorted({name for name, _ in done if name != "diffusers-fp32"})
    columns = [c for c in COLUMNS if any((n, c) in done for n in recipes)]
    figure, axes = plt.subplots(figsize=(max(6, 1.4 * len(columns)), 4.5))
    width = 0.8 / max(1, len(recipes))
    for i, name in enumerate(recipes):
        xs = [j + i * width for j, c in enumerate(columns) if (name, c) in done]
        ys = [done[(name, c)]["median_s"] for c in columns if (name, c) in done]
        axes.bar(xs, ys, width, label=name)
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns, rotation=30)
    axes.set_yscale("log")
    axes.set_ylabel("seconds (median)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_reports(records: list[dict], out: Path) -> tuple[Path, Path]:
    report, png = out / "report.md", out / "chart.png"
    report.write_text(markdown(records))
    chart(records, png)
    return report, png
