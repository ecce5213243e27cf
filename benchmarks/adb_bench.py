"""Phone benchmark over adb: the app's benchmark mode, or the runtimes' own tools, on a real phone.

    python benchmarks/adb_bench.py info [--serial SERIAL]
    python benchmarks/adb_bench.py app --bundle out/snapfusion-onnx-int8 --backend ort-qnn \
        --steps 8 --runs 5 --out /tmp/phone [--apk app-release.apk] [--serial SERIAL]
    python benchmarks/adb_bench.py tool --binary onnxruntime_perf_test --lib libonnxruntime.so \
        --bundle out/snapfusion-onnx-fp16 --accelerator qnn --out /tmp/phone-tools
    python benchmarks/adb_bench.py report RESULT.json... --out /tmp/phone

Every run writes OUT/phone-report.{json,md,png} even when it stops early (the pulled results so
far are in OUT/raw/); errors are one line on stderr and exit code 2. See benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

if __package__ in (None, ""):  # run as a script: make `benchmarks.phone` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import typer

from benchmarks.phone.app_run import TILE_DECODER_CHOICES
from benchmarks.phone.device import Adb, adb_executable, choose_device, list_devices
from benchmarks.phone.perf_tools import ToolBenchConfig, ToolResult, run_tool_bench
from benchmarks.phone.probes import read_device_info
from benchmarks.phone.report import build_report, write_report
from benchmarks.phone.results import SessionRecord, load_result
from benchmarks.phone.runner import AppBenchConfig, run_app_bench
from sfmobile.cli.app import user_errors_exit_2
from sfmobile.errors import DeviceError, InputError

app = typer.Typer(
    help="Benchmark sfmobile bundles on an Android phone over adb.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Serial = Annotated[str | None, typer.Option(help="Device serial (from `adb devices`).")]
Out = Annotated[Path, typer.Option(help="Folder for raw/ results and phone-report.*.")]
APP_BACKENDS = ("ort-cpu", "ort-nnapi", "ort-qnn", "litert-cpu", "litert-gpu", "litert-npu")


def _connect(serial: str | None) -> tuple[Adb, dict[str, Any]]:
    executable = adb_executable()
    chosen = choose_device(list_devices(executable), serial)
    adb = Adb(chosen.serial, executable)
    info = read_device_info(adb)
    typer.echo(f"device {chosen.serial}: {info.describe()}")
    return adb, info.to_dict()


def _finish(out: Path, report: dict[str, Any]) -> None:
    for path in write_report(report, out):
        typer.echo(f"wrote {path}")
    if report["error"]:
        raise DeviceError(report["error"])


@app.command()
@user_errors_exit_2
def info(serial: Serial = None) -> None:
    """Show the chosen device: model, SoC, Android, memory, storage, thermal status, battery."""
    _connect(serial)


@app.command("app")
@user_errors_exit_2
def app_bench(
    bundle: Annotated[list[Path], typer.Option(help="Bundle folder (repeat for several).")],
    backend: Annotated[
        list[str] | None,
        typer.Option(help=f"One of {', '.join(APP_BACKENDS)}; ort-qnn if not given."),
    ] = None,
    steps: Annotated[
        list[int] | None, typer.Option(help="Steps, 8 if not given (repeatable: 20, 50).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Timed runs per session.")] = 5,
    warmup: Annotated[int, typer.Option(help="Warm-up runs per session (not timed).")] = 1,
    prompt: Annotated[str, typer.Option()] = "a photo of an astronaut riding a horse on mars",
    seed: Annotated[int, typer.Option()] = 0,
    apk: Annotated[Path | None, typer.Option(help="Install this APK first (install -r).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a session's result.")] = 1800,
    cooldown_max: Annotated[float, typer.Option(help="Longest cooldown, seconds.")] = 600,
    poll: Annotated[float, typer.Option(help="Seconds between polls of the phone.")] = 5,
    tile_decoder: Annotated[
        str,
        typer.Option(
            help="Decode in tiles: auto (when the bundle has a decoder_tile smaller than the "
            "latent; the app then loads only that decoder), on (required), off (full decoder)."
        ),
    ] = "auto",
    serial: Serial = None,
    out: Out = Path("phone-bench"),
) -> None:
    """Push bundles, run the app's benchmark mode per backend and step count, pull the results."""
    backend, steps = backend or ["ort-qnn"], steps or [8]
    for name in backend:
        if name not in APP_BACKENDS:
            raise InputError(f"--backend {name}: not one of {', '.join(APP_BACKENDS)}")
    if tile_decoder not in TILE_DECODER_CHOICES:
        raise InputError(
            f"--tile-decoder {tile_decoder}: not one of {', '.join(TILE_DECODER_CHOICES)}"
        )
    for path in bundle:
        if not path.is_dir():
            raise InputError(f"--bundle {path}: no such folder")
    config = AppBenchConfig(
        bundles=bundle,
        backends=backend,
        steps=steps,
        runs=runs,
        warmup=warmup,
        prompt=prompt,
        seed=seed,
        apk=apk,
        timeout_s=timeout,
        poll_s=poll,
        cooldown_max_s=cooldown_max,
        tile_decoder=tile_decoder,
    )
    adb, device = _connect(serial)
    outcome = run_app_bench(adb, config, device["thermal_status"], out, say=typer.echo)
    records = [r.to_dict() for r in outcome.records]
    _finish(out, build_report(device, records, outcome.pushes, [], outcome.error, sys.argv, out))


@app.command()
@user_errors_exit_2
def tool(
    binary: Annotated[Path, typer.Option(help="onnxruntime_perf_test or benchmark_model (arm64).")],
    bundle: Annotated[Path, typer.Option(help="Bundle folder (ONNX or TFLite to match the tool).")],
    lib: Annotated[list[Path] | None, typer.Option(help="Library to push beside it.")] = None,
    accelerator: Annotated[
        str,
        typer.Option(
            help="onnxruntime_perf_test: cpu, xnnpack, nnapi, qnn; benchmark_model: cpu, gpu, npu."
        ),
    ] = "cpu",
    runs: Annotated[int, typer.Option()] = 50,
    threads: Annotated[int, typer.Option(help="benchmark_model --num_threads.")] = 4,
    serial: Serial = None,
    out: Out = Path("phone-bench"),
) -> None:
    """Time each model file of a bundle with the runtime's own benchmark tool (no app)."""
    config = ToolBenchConfig(binary, lib or [], bundle, accelerator, runs, threads)
    adb, device = _connect(serial)
    results: list[ToolResult] = []
    error = None
    try:
        run_tool_bench(adb, config, results, typer.echo)
    except DeviceError as failure:
        error = f"{failure}; {len(results)} model file(s) timed before it"
    tool_results = [r.to_dict() for r in results]
    _finish(out, build_report(device, [], {}, tool_results, error, sys.argv, out))


@app.command()
@user_errors_exit_2
def report(
    results: Annotated[list[Path], typer.Argument(help="Result files the app wrote.")],
    out: Out = Path("phone-bench"),
) -> None:
    """Build the report from result files alone (pulled by hand, or kept from earlier runs)."""
    records, device = [], None
    for path in results:
        result = load_result(path)
        raw = out / "raw" / path.name
        raw.parent.mkdir(parents=True, exist_ok=True)
        if raw.resolve() != path.resolve():
            raw.write_text(path.read_text())
        record = SessionRecord(
            bundle=result["bundle"]["name"],
            backend=result["backend"]["name"],
            steps=result["settings"]["steps"],
            status=result["status"],
            result_file=f"raw/{path.name}",
            error=result.get("error"),
        )
        records.append(record.to_dict())
        device = device or _device_from_result(result)
    _finish(out, build_report(device, records, {}, [], None, sys.argv, out))


def _device_from_result(result: dict[str, Any]) -> dict[str, Any]:
    """What the app says about the phone, in the host's DeviceInfo shape (unknowns empty)."""
    d = result["device"]
    return {
        "serial": "",
        "manufacturer": d["manufacturer"],
        "model": d["model"],
        "soc": d["soc"],
        "android_version": d["android_version"],
        "sdk_int": d["sdk_int"],
        "memory_total_mb": d["total_memory_mb"],
        "thermal_status": result.get("thermal", {}).get("thermal_status_before", ""),
        "battery_c": result.get("thermal", {}).get("battery_c_before", ""),
    }


if __name__ == "__main__":
    app()
