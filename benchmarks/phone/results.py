"""The app's result files (android_app/benchmark-result.schema.json) and what the host adds
around them (which bundle, push, cooldown, what went wrong), kept one record per session.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from sfmobile.errors import DeviceError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "android_app" / "benchmark-result.schema.json"


@cache
def result_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def validate_result(data: Any, where: str) -> dict[str, Any]:
    """The result as a dict, or a DeviceError naming the file and the first field that breaks
    the contract (so a wrong app version is told apart from a slow phone)."""
    try:
        jsonschema.validate(data, result_schema())
    except jsonschema.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        message = f"{where}: not a valid benchmark result at {path}: {error.message}"
        raise DeviceError(message) from None
    return data


def load_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DeviceError(f"{path}: not readable JSON ({error})") from None
    return validate_result(data, str(path))


@dataclass
class Cooldown:
    """The wait before a session for the phone to cool back to its starting thermal status, and
    the battery temperature (°C) the session then started at."""

    target_status: int
    status_before: int
    status_after: int
    waited_s: float
    reached: bool
    battery_c: float | None = None


@dataclass
class SessionRecord:
    """One app session as the host saw it. status: the app's (ok, failed, cancelled) or the
    host's (disconnected, error: a timeout, a full disk, ...) when no result came back.
    session_id: the id the host gave the app (None before the session was started)."""

    bundle: str
    backend: str
    steps: int
    status: str
    result_file: str | None = None
    error: str | None = None
    cooldown: Cooldown | None = None
    session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SessionRecord:
        cooldown = data.get("cooldown")
        fields = {k: v for k, v in data.items() if k != "cooldown"}
        return SessionRecord(**fields, cooldown=Cooldown(**cooldown) if cooldown else None)
