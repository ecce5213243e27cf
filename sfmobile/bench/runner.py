"""Runs the planned cases one after another, each in a fresh Python process, and appends one
JSON line per case as it finishes (a stopped run keeps what it measured).

Peak memory is the child's own: the parent reaps it with os.wait4, whose rusage is that one
child's (ru_maxrss, KiB on Linux), unlike getrusage(RUSAGE_CHILDREN), the largest of all
children reaped so far.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sfmobile.bench.plan import Options, plan
from sfmobile.peak_memory import maxrss_mb

RESULTS = "results.jsonl"
EXPORTS = "exports.jsonl"  # --exports-only: kept apart, so the timing run after it keeps it


def summarize(times: list[float]) -> dict:
    """Median and spread ((max - min) / median) of repeated runs."""
    median = statistics.median(times)
    return {
        "median_s": round(median, 6),
        "min_s": round(min(times), 6),
        "max_s": round(max(times), 6),
        "spread_pct": round(100 * (max(times) - min(times)) / median, 1) if median else 0.0,
        "times_s": [round(t, 6) for t in times],
    }


def run_process(command: list[str], log: Path) -> tuple[int, list[str], float]:
    """Run `command` to the end: exit code, stdout lines, and the peak resident MiB of that one
    process (os.wait4's rusage)."""
    with open(log, "w") as stderr, open(log.with_suffix(".out"), "w+") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        stdout.seek(0)
        lines = stdout.read().strip().splitlines()
    return os.waitstatus_to_exitcode(status), lines, maxrss_mb(usage.ru_maxrss)


def failure(log: Path) -> dict:
    tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
    return {"status": "failed", "error": tail[0], "log": str(log)}


def run_child(case: dict, logs: Path) -> dict:
    """One case's record (status ok or failed, never raises): a fresh process for the case,
    one per repeat for `generate`."""
    return run_generate(case, logs) if case["kind"] == "generate" else run_once(case, logs)


def run_once(case: dict, logs: Path) -> dict:
    """`sfmobile.bench.child` on `case` in a fresh process; its record."""
    log = logs / (case["name"].replace("/", "--") + ".log")
    command = [sys.executable, "-m", "sfmobile.bench.child", json.dumps(case)]
    start = time.perf_counter()
    code, lines, peak = run_process(command, log)
    record = {k: v for k, v in case.items() if k not in ("source", "repeats")}
    record |= {"record": "case", "wall_s": round(time.perf_counter() - start, 2)}
    record["peak_rss_mb"] = round(peak, 1)
    if code != 0 or not lines:
        return record | failure(log)
    result = json.loads(lines[-1])
    own = result.pop("own_peak_rss_mb", None)
    if own:  # the child's own peak: wait4's includes what the parent held when it forked
        record["peak_rss_mb"] = round(own, 1)
    if "times_s" in result:
        result |= summarize(result.pop("times_s"))
    return record | {"status": "ok"} | result


def run_generate(case: dict, logs: Path) -> dict:
    """`sfmobile generate` on the case's bundle, once per repeat, each in a fresh process: the
    times are the command's (loading included, the interpreter's start-up not), the peak memory
    the largest of the processes' own; `generation_peak_rss_mb` is the peak that `generate
    --timings` records (without start-up)."""
    runs = []
    for i in range(case["repeats"]):
        timings = logs / (case["name"].replace("/", "--") + f".{i}.timings.json")
        run = run_once(case | {"timings": str(timings)}, logs)
        if run["status"] != "ok":
            return run
        runs.append(run)
    record = runs[-1] | {"peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    record["generation_peak_rss_mb"] = max(r["generation_peak_rss_mb"] for r in runs)
    record["generation_s"] = statistics.median(r["generation_s"] for r in runs)
    record.pop("timings", None)
    return record | summarize([r["median_s"] for r in runs])


def run_cases(cases: list[dict], options: Options, results: Path) -> list[dict]:
    """Run `cases` in order with a progress bar, appending each record to `results`."""
    logs = options.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (options.out / "images").mkdir(exist_ok=True)
    records = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn()) as progress:
        task = progress.add_task("bench", total=len(cases))
        for case in cases:
            progress.update(task, description=case["name"])
            record = run_child(case, logs)
            if record["status"] != "ok":
                progress.console.print(f"[red]{case['name']} failed[/red]: {record['error']}")
            records.append(record)
            with open(results, "a") as stream:
                stream.write(json.dumps(record) + "\n")
            progress.advance(task)
    return records


def run(options: Options, command: list[str]) -> list[dict]:
    """The whole run: machine line, every planned case, then the derived lines (MACs and
    share of peak, profile of the slowest component, image PSNR, ratios)."""
    from sfmobile.bench.derive import derive
    from sfmobile.bench.machine import describe

    options.check()
    options.out.mkdir(parents=True, exist_ok=True)
    results = options.out / (EXPORTS if options.exports_only else RESULTS)
    machine = describe(command) | {
        "source": options.source.to_dict(),
        "random_weights": options.source.random_weights,
        "size": options.size,
        "steps": options.steps,
    }
    results.write_text(json.dumps(machine) + "\n")
    records = run_cases(plan(options), options, results)
    profile = profile_case(records, options)
    if profile:
        records += run_cases([profile], options, results)
    derived = derive(machine, records)
    with open(results, "a") as stream:
        for line in derived:
            stream.write(json.dumps(line) + "\n")
    return [machine, *records, *derived]


def profile_case(records: list[dict], options: Options) -> dict | None:
    """Profile the slowest ONNX fp32 component (its model file) with onnxruntime's profiler."""
    timed = [
        r
        for r in records
        if r["kind"] == "component" and r["status"] == "ok" and r["backend"] == "onnx"
        if r["case"] != "reference_unet_b2"  # the model under test's own components
    ]
    timed = [r for r in timed if r["precision"] == "fp32"] or timed
    if not timed:
        return None
    from sfmobile.bench.derive import component_file

    slowest = max(timed, key=lambda r: r["median_s"] / r["calls"])
    model = component_file(Path(slowest["bundle"]), slowest["component"])
    return {
        "kind": "profile",
        "name": f"onnx-{slowest['precision']}/profile-{slowest['case']}",
        "case": "profile",
        "profiled": slowest["case"],
        "backend": "onnx",
        "precision": slowest["precision"],
        "model": str(model),
        "repeats": options.repeats,
        "trace_dir": str(options.out / "logs"),
    }
