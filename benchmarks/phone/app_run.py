"""One session of the app's benchmark mode: check the app is there, start BenchmarkActivity with
the session's extras, wait (bounded) for the result file it writes, pull it, and let the phone
cool down before the next session.

The app writes files/benchmarks/<session_id>.json when a session ends; the host lists that folder
before starting and waits for a new file, so results of earlier sessions are never mistaken for
this one's. A file still being written (not yet valid JSON) is read again on the next poll.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.phone.device import Adb
from benchmarks.phone.probes import battery_celsius, thermal_status
from benchmarks.phone.results import Cooldown, validate_result
from sfmobile.errors import DeviceError

PACKAGE = "dev.sfmobile.sample"
ACTIVITY = "dev.sfmobile.app.BenchmarkActivity"
APP_FILES = f"/sdcard/Android/data/{PACKAGE}/files"
RESULTS_DIR = f"{APP_FILES}/benchmarks"
BUNDLES_DIR = f"{APP_FILES}/bundles"


@dataclass(frozen=True)
class SessionSpec:
    """The extras of one `am start`: what the app runs and how often."""

    bundle: str
    backend: str
    steps: int
    runs: int
    warmup: int
    prompt: str
    seed: int


def ensure_app(adb: Adb, apk: Path | None, say: Callable[[str], None] = print) -> None:
    """Install the APK if given (`install -r` keeps the pushed bundles), then check the app is
    there: `pm list packages NAME` prints `package:NAME` per match (a substring filter)."""
    if apk is not None:
        if not apk.is_file():
            raise DeviceError(f"--apk {apk}: no such file")
        say(f"installing {apk.name} on {adb.serial}")
        proc = adb.run("install", "-r", str(apk), check=False)
        if proc.returncode != 0 or "Success" not in proc.stdout:
            text = (proc.stderr + proc.stdout).strip().splitlines()
            raise DeviceError(f"adb install {apk} failed: {text[-1] if text else 'no output'}")
    listed = adb.shell(f"pm list packages {PACKAGE}", check=False).split()
    if f"package:{PACKAGE}" not in listed:
        raise DeviceError(
            f"app {PACKAGE} is not installed on {adb.serial} (pass --apk PATH to install it)"
        )


def start_command(spec: SessionSpec) -> str:
    """The `am start` line run by the phone's shell (-S stops a running app, -W waits for the
    launch, not for the benchmark)."""
    extras = [
        ("--es", "bundle", spec.bundle),
        ("--es", "backend", spec.backend),
        ("--ei", "runs", str(spec.runs)),
        ("--ei", "warmup", str(spec.warmup)),
        ("--ei", "steps", str(spec.steps)),
        ("--es", "prompt", spec.prompt),
        ("--el", "seed", str(spec.seed)),
    ]
    words = ["am", "start", "-S", "-W", "-n", f"{PACKAGE}/{ACTIVITY}"]
    for flag, key, value in extras:
        words += [flag, key, value]
    return " ".join(shlex.quote(w) for w in words)


def start_session(adb: Adb, spec: SessionSpec) -> None:
    output = adb.shell(start_command(spec), check=False)
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    if errors:
        raise DeviceError(f"am start {PACKAGE}/{ACTIVITY} failed: {errors[-1]}")
    if "Status: ok" not in output and "Complete" not in output:
        raise DeviceError(f"am start {PACKAGE}/{ACTIVITY}: no launch confirmation in {output!r}")


def result_files(adb: Adb) -> set[str]:
    """Names of the .json files in the app's results folder (none if it does not exist yet)."""
    listing = adb.shell(f"ls {RESULTS_DIR}", check=False)  # the error goes to stderr
    return {name for name in listing.split() if name.endswith(".json")}


def wait_for_result(
    adb: Adb,
    before: set[str],
    local_dir: Path,
    timeout_s: float,
    poll_s: float,
) -> tuple[Path, dict[str, Any]]:
    """Wait for a new result file, pull it into local_dir, and return it validated."""
    deadline = time.monotonic() + timeout_s
    local_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for name in sorted(result_files(adb) - before):
            local = local_dir / name
            adb.run("pull", f"{RESULTS_DIR}/{name}", str(local))
            try:
                data = json.loads(local.read_text())
            except json.JSONDecodeError:
                continue  # still being written; read it again on the next poll
            return local, validate_result(data, str(local))
        if time.monotonic() >= deadline:
            raise DeviceError(
                f"no result from the app within {timeout_s:g} s (look at "
                f"`adb -s {adb.serial} logcat` for why; raise --timeout for slow phones)"
            )
        time.sleep(poll_s)


def cool_down(adb: Adb, target_status: int, max_wait_s: float, poll_s: float) -> Cooldown:
    """Wait until the thermal status is back to target_status, at most max_wait_s."""
    start = time.monotonic()
    before = status = thermal_status(adb)
    while status > target_status and time.monotonic() - start < max_wait_s:
        time.sleep(poll_s)
        status = thermal_status(adb)
    return Cooldown(
        target_status=target_status,
        status_before=before,
        status_after=status,
        waited_s=round(time.monotonic() - start, 1),
        reached=status <= target_status,
        battery_c=battery_celsius(adb),
    )
