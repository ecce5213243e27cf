"""What the phone is and how it is doing: model, SoC, Android version, memory, storage, thermal
status and battery temperature, read with getprop, /proc/meminfo, df and dumpsys.

A benchmark number means little without these: the same app is twice as slow on a hot phone, and
a bundle does not fit on a full one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.phone.device import Adb
from sfmobile.errors import DeviceError

# Android's PowerManager thermal status values (THERMAL_STATUS_*).
THERMAL_STATUS_NAMES = {
    0: "none",
    1: "light",
    2: "moderate",
    3: "severe",
    4: "critical",
    5: "emergency",
    6: "shutdown",
}


@dataclass(frozen=True)
class DeviceInfo:
    serial: str
    manufacturer: str
    model: str
    soc: str
    soc_manufacturer: str
    android_version: str
    sdk_int: int
    memory_total_mb: float
    memory_available_mb: float
    storage_total_mb: float
    storage_free_mb: float
    thermal_status: int
    battery_c: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the screen and the report's heading."""
        return (
            f"{self.manufacturer} {self.model} ({self.soc}), Android {self.android_version}, "
            f"{self.memory_total_mb / 1024:.1f} GiB RAM ({self.memory_available_mb / 1024:.1f} "
            f"available), {self.storage_free_mb / 1024:.1f} GiB storage free, thermal status "
            f"{self.thermal_status} ({THERMAL_STATUS_NAMES.get(self.thermal_status, '?')}), "
            f"battery {_celsius(self.battery_c)}"
        )


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` with no argument prints every property as `[key]: [value]`."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE))


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in kB: {"MemTotal": 11583192, "MemAvailable": 4931200, ...}."""
    return {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.MULTILINE)}


def parse_df(text: str, where: str) -> tuple[float, float]:
    """(total MiB, available MiB) from toybox `df -k PATH` (1K-blocks, Used, Available)."""
    rows = [line.split() for line in text.strip().splitlines()[1:] if line.strip()]
    if not rows or len(rows[-1]) < 4 or not rows[-1][1].isdigit():
        raise DeviceError(f"df -k {where}: unexpected output {text.strip()[:80]!r}")
    row = rows[-1]
    return int(row[1]) / 1024, int(row[3]) / 1024


def parse_thermal_status(text: str) -> int:
    """`dumpsys thermalservice` prints `Thermal Status: N` (0 none ... 6 shutdown)."""
    match = re.search(r"^\s*Thermal Status:\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise DeviceError("dumpsys thermalservice: no 'Thermal Status:' line (Android 10+ needed)")
    return int(match.group(1))


def parse_battery_celsius(text: str) -> float | None:
    """`dumpsys battery` prints `temperature: 296` in tenths of a degree Celsius."""
    match = re.search(r"^\s*temperature:\s*(-?\d+)\s*$", text, re.MULTILINE)
    return int(match.group(1)) / 10 if match else None


def thermal_status(adb: Adb) -> int:
    return parse_thermal_status(adb.shell("dumpsys thermalservice"))


def battery_celsius(adb: Adb) -> float | None:
    return parse_battery_celsius(adb.shell("dumpsys battery"))


def storage_mb(adb: Adb, path: str = "/sdcard") -> tuple[float, float]:
    return parse_df(adb.shell(f"df -k {path}"), path)


def read_device_info(adb: Adb) -> DeviceInfo:
    props = parse_getprop(adb.shell("getprop"))
    memory = parse_meminfo(adb.shell("cat /proc/meminfo"))
    storage_total, storage_free = storage_mb(adb)
    sdk = props.get("ro.build.version.sdk", "0")
    return DeviceInfo(
        serial=adb.serial,
        manufacturer=props.get("ro.product.manufacturer", "unknown"),
        model=props.get("ro.product.model", "unknown"),
        soc=props.get("ro.soc.model") or props.get("ro.board.platform", "unknown"),
        soc_manufacturer=props.get("ro.soc.manufacturer", "unknown"),
        android_version=props.get("ro.build.version.release", "unknown"),
        sdk_int=int(sdk) if sdk.isdigit() else 0,
        memory_total_mb=memory.get("MemTotal", 0) / 1024,
        memory_available_mb=memory.get("MemAvailable", memory.get("MemFree", 0)) / 1024,
        storage_total_mb=storage_total,
        storage_free_mb=storage_free,
        thermal_status=thermal_status(adb),
        battery_c=battery_celsius(adb),
    )


def _celsius(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} °C"
