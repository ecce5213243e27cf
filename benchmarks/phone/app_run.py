"""One session of the app's benchmark mode: check the app is there, start BenchmarkActivity with
the session's extras, wait (bounded) for the result file it writes, pull it, and let the phone
cool down before the next session.

The host names each session (`--es session_id ID`: UTC start, a random tag, the backend) and the
app writes files/benchmarks/<session_id>.json when it ends, with that id inside; the host waits
for exactly that file and checks the id in it, so a result of an earlier run, of a session
started by hand or of another host is never taken for this one's. The app writes
<session_id>.error instead when it cannot read the extras. A file still being written (not yet
valid JSON) is read again on the next poll. The cooldown before the session travels as extras
too, so the result file records it (schema `cooldown`).
"""

from __future__ import annotations

import json
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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
# `--es tile_decoder`: the app's Pipeline tiles on auto when the bundle has a decoder_tile smaller
# than the latent (Python's Pipeline(tile_decoder=None)), and then loads that decoder only.
TILE_DECODER_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class SessionSpec:
    """The extras of one `am start`: what the app runs and how often, the session's id (its
    result file's name) and the cooldown that preceded it."""

    bundle: str
    backend: str
    steps: int
    runs: int
    warmup: int
    prompt: str
    seed: int
    session_id: str
    cooldown: Cooldown | None = None
    tile_decoder: str = "auto"


def new_session_id(backend: str, now: datetime | None = None) -> str:
    """`20261201T031500Z-3fa9c1-ort-qnn`: UTC start, a random tag (two hosts, or a rerun within
    the second, never share an id), the backend; matches the schema's `^[A-Za-z0-9._-]{1,64}$`."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}-{backend}"


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
        ("--es", "session_id", spec.session_id),
        ("--es", "tile_decoder", spec.tile_decoder),
    ]
    if spec.cooldown is not None:
        extras += [
            ("--ei", "cooldown_status_before", str(spec.cooldown.status_before)),
            ("--ei", "cooldown_status_after", str(spec.cooldown.status_after)),
            ("--ef", "cooldown_waited_s", str(spec.cooldown.waited_s)),
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
    """Names of the files in the app's results folder (none if it does not exist yet)."""
    listing = adb.shell(f"ls {RESULTS_DIR}", check=False)  # the error goes to stderr
    return set(listing.split())


def wait_for_result(
    adb: Adb,
    session_id: str,
    local_dir: Path,
    timeout_s: float,
    poll_s: float,
) -> tuple[Path, dict[str, Any]]:
    """Wait for this session's result file (<session_id>.json; other files are other sessions'),
    pull it into local_dir, and return it validated; the app's <session_id>.error, or a file
    whose session_id is not ours, is a DeviceError."""
    deadline = time.monotonic() + timeout_s
    local_dir.mkdir(parents=True, exist_ok=True)
    while True:
        names = result_files(adb)
        if f"{session_id}.error" in names:
            local = local_dir / f"{session_id}.error"
            adb.run("pull", f"{RESULTS_DIR}/{local.name}", str(local))
            line = local.read_text().strip() or "no reason given"
            raise DeviceError(f"the app refused session {session_id}'s extras: {line}")
        if f"{session_id}.json" in names:
            local = local_dir / f"{session_id}.json"
            adb.run("pull", f"{RESULTS_DIR}/{local.name}", str(local))
            try:
                data = json.loads(local.read_text())
            except json.JSONDecodeError:
                data = None  # still being written; read it again on the next poll
            if data is not None:
                result = validate_result(data, str(local))
                if result["session_id"] != session_id:
                    raise DeviceError(
                        f"{local}: holds session_id {result['session_id']!r}, not this "
                        f"session's {session_id!r}; not taken as this session's result"
                    )
                return local, result
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
