"""The app benchmark from start to end: for each bundle, push it; for each backend and step
count, cool down, run a session, pull its result. Whatever stops the run (a disconnect, a bundle
the app refuses, a timeout) ends it with the results so far kept: each pulled file is on disk as
soon as it arrives and the records name them, so the report can always be written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.phone.app_run import (
    BUNDLES_DIR,
    SessionSpec,
    cool_down,
    ensure_app,
    new_session_id,
    start_session,
    wait_for_result,
)
from benchmarks.phone.device import Adb, DeviceDisconnected
from benchmarks.phone.push import push_bundle
from benchmarks.phone.results import SessionRecord
from sfmobile.errors import DeviceError


@dataclass(frozen=True)
class AppBenchConfig:
    bundles: list[Path]
    backends: list[str]
    steps: list[int]
    runs: int = 5
    warmup: int = 1
    prompt: str = "a photo of an astronaut riding a horse on mars"
    seed: int = 0
    apk: Path | None = None
    timeout_s: float = 1800
    poll_s: float = 5
    cooldown_max_s: float = 600
    tile_decoder: str = "auto"


@dataclass
class AppBenchOutcome:
    records: list[SessionRecord] = field(default_factory=list)
    pushes: dict[str, dict] = field(default_factory=dict)
    error: str | None = None


def run_app_bench(
    adb: Adb,
    config: AppBenchConfig,
    start_thermal_status: int,
    out_dir: Path,
    say: Callable[[str], None] = print,
) -> AppBenchOutcome:
    """Run every session; never raises DeviceError or KeyboardInterrupt (either ends the run
    and lands in .error, so the caller still writes the report)."""
    outcome = AppBenchOutcome()
    record: SessionRecord | None = None
    try:
        ensure_app(adb, config.apk, say)
        for bundle in config.bundles:
            pushed = push_bundle(adb, bundle, f"{BUNDLES_DIR}/{bundle.name}", say=say)
            outcome.pushes[bundle.name] = asdict(pushed)
            for backend in config.backends:
                for steps in config.steps:
                    record = SessionRecord(bundle.name, backend, steps, status="running")
                    outcome.records.append(record)
                    _run_session(adb, config, record, start_thermal_status, out_dir, say)
                    if record.status != "ok":
                        outcome.error = (
                            f"the app reported status {record.status} for bundle {bundle.name} "
                            f"on {backend}: {record.error} (result kept in {record.result_file})"
                        )
                        return outcome
    except DeviceDisconnected as error:
        kept = sum(1 for r in outcome.records if r.status == "ok")
        _mark(record, "disconnected", str(error))
        outcome.error = f"{error}; {kept} completed session(s) kept"
    except DeviceError as error:
        _mark(record, "error", str(error))
        outcome.error = str(error)
    except KeyboardInterrupt:
        kept = sum(1 for r in outcome.records if r.status == "ok")
        _mark(record, "interrupted", "interrupted from the keyboard")
        outcome.error = f"interrupted (Ctrl-C); {kept} completed session(s) kept"
    return outcome


def _run_session(
    adb: Adb,
    config: AppBenchConfig,
    record: SessionRecord,
    start_thermal_status: int,
    out_dir: Path,
    say: Callable[[str], None],
) -> None:
    """Cool down, start under a new session id (the cooldown passed along), wait for that
    session's file, pull it into out_dir/raw/; the record says how it went."""
    record.cooldown = cool_down(adb, start_thermal_status, config.cooldown_max_s, config.poll_s)
    if not record.cooldown.reached:
        say(
            f"warning: thermal status still {record.cooldown.status_after} after "
            f"{record.cooldown.waited_s:.0f} s (started at {start_thermal_status}); running anyway"
        )
    spec = SessionSpec(
        bundle=record.bundle,
        backend=record.backend,
        steps=record.steps,
        runs=config.runs,
        warmup=config.warmup,
        prompt=config.prompt,
        seed=config.seed,
        session_id=new_session_id(record.backend),
        cooldown=record.cooldown,
        tile_decoder=config.tile_decoder,
    )
    record.session_id = spec.session_id
    say(
        f"session {spec.session_id}: {record.bundle} on {record.backend}, {record.steps} steps, "
        f"{config.runs} runs"
    )
    start_session(adb, spec)
    path, result = wait_for_result(
        adb, spec.session_id, out_dir / "raw", config.timeout_s, config.poll_s
    )
    record.result_file = path.relative_to(out_dir).as_posix()
    record.status = result["status"]
    record.error = result.get("error")
    if result["status"] == "ok":
        times = [run["total_ms"] for run in result["runs"]]
        say(f"  {len(times)} runs, total {min(times):.0f}-{max(times):.0f} ms")


def _mark(record: SessionRecord | None, status: str, error: str) -> None:
    if record is not None and record.status == "running":
        record.status = status
        record.error = error
