"""The benchmark that needs no app: the runtimes' own command-line tools run on each model file
of a bundle through `adb shell`, their summary lines parsed.

onnxruntime_perf_test (ONNX bundles; -e qnn for the Hexagon NPU) prints
`Average inference time cost total: X ms` (older builds: `Average inference time cost: X ms`),
`Session creation time cost: S s`, `First inference time cost: N ms`, `Peak working set size: N
bytes` and, with -s, `P50 Latency: S s`. LiteRT's benchmark_model (TFLite bundles) prints
`Inference timings in us: Init: A, First inference: B, Warmup (avg): C, Inference (avg): D`
(numbers may be in e-notation) and one of `Peak memory footprint (MB): init=I overall=O`,
`Memory footprint delta from the start of the tool (MB): init=I overall=O` or
`Overall peak memory footprint (MB) via periodic monitoring: O`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.phone.device import Adb
from benchmarks.phone.push import push_bundle
from sfmobile.bundle import COMPONENT_NAMES, read_bundle
from sfmobile.errors import DeviceError, InputError

TOOL_DIR = "/data/local/tmp/sfmobile-bench"
NUMBER = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
TOOLS = {"onnxruntime_perf_test": "onnx", "benchmark_model": "tflite"}
ORT_PROVIDERS = {
    "cpu": ["-e", "cpu"],
    "xnnpack": ["-e", "xnnpack"],
    "nnapi": ["-e", "nnapi"],
    "qnn": ["-e", "qnn", "-i", "backend_type|htp"],
}
LITERT_ACCELERATORS = {"cpu": [], "gpu": ["--use_gpu=true"], "npu": ["--use_npu=true"]}


@dataclass
class ToolResult:
    """One model file timed by one tool. Times in ms, memory in MiB."""

    component: str
    model_file: str
    tool: str
    accelerator: str
    avg_ms: float
    first_ms: float | None = None
    init_ms: float | None = None
    p50_ms: float | None = None
    peak_memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _find(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def parse_ort_perf_test(text: str, where: str) -> dict[str, float | None]:
    avg = _find(rf"Average inference time cost(?: total)?:\s*{NUMBER}\s*ms", text)
    if avg is None:
        raise DeviceError(
            f"{where}: onnxruntime_perf_test printed no 'Average inference time "
            f"cost' line (last line: {_last_line(text)!r})"
        )
    session_s = _find(rf"Session creation time cost:\s*{NUMBER}\s*s", text)
    p50_s = _find(rf"P50 Latency:\s*{NUMBER}\s*s", text)
    peak_bytes = _find(rf"Peak working set size:\s*{NUMBER}\s*bytes", text)
    return {
        "avg_ms": avg,
        "first_ms": _find(rf"First inference time cost:\s*{NUMBER}\s*ms", text),
        "init_ms": None if session_s is None else session_s * 1000,
        "p50_ms": None if p50_s is None else p50_s * 1000,
        "peak_memory_mb": None if peak_bytes is None else peak_bytes / 2**20,
    }


def parse_benchmark_model(text: str, where: str) -> dict[str, float | None]:
    match = re.search(
        rf"Inference timings in us: Init: {NUMBER}, First inference: {NUMBER}, "
        rf"Warmup \(avg\): {NUMBER}, Inference \(avg\): {NUMBER}",
        text,
    )
    if match is None:
        raise DeviceError(
            f"{where}: benchmark_model printed no 'Inference timings in us' line "
            f"(last line: {_last_line(text)!r})"
        )
    init_us, first_us, _, avg_us = (float(g) for g in match.groups())
    peak = _find(rf"Overall peak memory footprint \(MB\)[^:]*:\s*{NUMBER}", text)
    if peak is None:  # older builds; the delta form leaves out what the tool itself holds
        peak = _find(
            r"(?:Peak memory footprint|Memory footprint delta from the start of the tool) "
            rf"\(MB\):\s*init=\S+\s+overall={NUMBER}",
            text,
        )
    return {
        "avg_ms": avg_us / 1000,
        "first_ms": first_us / 1000,
        "init_ms": init_us / 1000,
        "p50_ms": None,
        "peak_memory_mb": peak,
    }


def tool_command(tool: str, accelerator: str, model: str, runs: int, threads: int) -> str:
    """The shell line run in TOOL_DIR on the phone (the tool and its libraries sit there)."""
    if tool == "onnxruntime_perf_test":
        if accelerator not in ORT_PROVIDERS:
            raise InputError(
                f"--accelerator {accelerator}: onnxruntime_perf_test takes one of "
                f"{sorted(ORT_PROVIDERS)}"
            )
        args = [*ORT_PROVIDERS[accelerator], "-m", "times", "-r", str(runs), "-I", "-s", model]
        prefix = "LD_LIBRARY_PATH=. ADSP_LIBRARY_PATH=. ./onnxruntime_perf_test"
    else:
        if accelerator not in LITERT_ACCELERATORS:
            raise InputError(
                f"--accelerator {accelerator}: benchmark_model takes one of "
                f"{sorted(LITERT_ACCELERATORS)}"
            )
        args = [
            f"--graph={model}",
            f"--num_runs={runs}",
            f"--num_threads={threads}",
            *LITERT_ACCELERATORS[accelerator],
        ]
        prefix = "LD_LIBRARY_PATH=. ./benchmark_model"
    return f"cd {TOOL_DIR} && {prefix} " + " ".join(shlex.quote(a) for a in args)


@dataclass(frozen=True)
class ToolBenchConfig:
    binary: Path
    libraries: list[Path]
    bundle: Path
    accelerator: str
    runs: int = 50
    threads: int = 4


def run_tool_bench(
    adb: Adb, config: ToolBenchConfig, results: list[ToolResult], say: Callable[[str], None]
) -> None:
    """Push the tool, its libraries and the bundle, then time each component's model file;
    each result is appended to `results` as it arrives (a disconnect keeps the earlier ones)."""
    tool = config.binary.name
    if tool not in TOOLS:
        raise InputError(f"--binary {config.binary}: expected one of {sorted(TOOLS)}")
    for path in [config.binary, *config.libraries]:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    bundle = read_bundle(config.bundle, verify="sizes")
    formats = {c.format for c in bundle.manifest.components.values()}
    if formats != {TOOLS[tool]}:
        raise InputError(
            f"{config.bundle}: holds {'/'.join(sorted(formats))} models; {tool} runs "
            f"{TOOLS[tool]} models"
        )
    for path in [config.binary, *config.libraries]:
        adb.run("push", str(path), f"{TOOL_DIR}/{path.name}")
    adb.shell(f"chmod 755 {TOOL_DIR}/{tool}")
    remote = f"bundles/{config.bundle.name}"
    push_bundle(adb, config.bundle, f"{TOOL_DIR}/{remote}", storage_path="/data", say=say)
    parse = parse_ort_perf_test if tool == "onnxruntime_perf_test" else parse_benchmark_model
    for component in COMPONENT_NAMES:
        model_file = bundle.manifest.components[component].files[0]
        say(f"{tool} {config.accelerator}: {component} ({model_file})")
        command = tool_command(
            tool, config.accelerator, f"{remote}/{model_file}", config.runs, config.threads
        )
        output = adb.run("shell", command, check=False, timeout_s=3600)
        text = output.stdout + output.stderr
        parsed = parse(text, f"{component} ({model_file})")
        results.append(ToolResult(component, model_file, tool, config.accelerator, **parsed))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
