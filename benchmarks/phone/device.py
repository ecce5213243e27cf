"""adb itself: find the phone, run commands on it, and turn adb's failures into one-line errors.

Every command after the choice names the device (`adb -s SERIAL ...`), so a second phone plugged
in mid-run cannot receive half of the work. A device that vanishes mid-run raises
DeviceDisconnected, which callers catch to keep and report the results they already have.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

from sfmobile.errors import DeviceError


class DeviceDisconnected(DeviceError):
    """The chosen device stopped answering (unplugged, rebooted, adb went offline)."""


# adb's own failure lines (not those of a command run on the phone), as adb 1.0.41 prints them:
# "error: device 'X' not found" (shell), "adb: error: failed to get feature set: device 'X' not
# found" (push, pull), "error: no devices/emulators found", "adb: device offline", "error: closed".
_ADB_LINE = r"^(?:adb: |error: )(?:error: )?(?:[^\n]*?: )?"
_GONE = re.compile(
    _ADB_LINE + r"(device '[^']*' not found|device offline|no devices/emulators found|closed"
    r"|protocol fault[^\n]*|failed to read copy response[^\n]*|connection reset[^\n]*)\s*$",
    re.MULTILINE,
)
_UNAUTHORIZED = re.compile(_ADB_LINE + r"device unauthorized", re.MULTILINE)


def classify_failure(text: str) -> str | None:
    """What adb itself says in a failed command's output: the device is "gone", is
    "unauthorized", or None (the command run on the phone failed on its own)."""
    if _GONE.search(text):
        return "gone"
    return "unauthorized" if _UNAUTHORIZED.search(text) else None


@dataclass(frozen=True)
class ListedDevice:
    """One line of `adb devices -l`: serial, state (device, unauthorized, offline, ...) and the
    key:value details (usb, product, model, device, transport_id)."""

    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)


def parse_devices(text: str) -> list[ListedDevice]:
    """Parse `adb devices -l`. States may hold spaces ("no permissions (...); see [...]")."""
    devices = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        serial, *words = line.split()
        state_words = [w for w in words if ":" not in w or w.startswith("(")]
        details = dict(w.split(":", 1) for w in words if ":" in w and not w.startswith("("))
        state = " ".join(state_words) if state_words else "unknown"
        if state.startswith("no permissions"):
            state = "no permissions"
        devices.append(ListedDevice(serial=serial, state=state, details=details))
    return devices


def choose_device(devices: list[ListedDevice], serial: str | None) -> ListedDevice:
    """The one device to use, or a DeviceError that says what to do."""
    if serial is not None:
        match = [d for d in devices if d.serial == serial]
        if not match:
            listed = ", ".join(d.serial for d in devices) or "none"
            raise DeviceError(f"--serial {serial}: no such device (adb devices lists: {listed})")
        chosen = match[0]
    elif not devices:
        raise DeviceError(
            "no device: `adb devices` lists none (connect a phone with USB debugging on)"
        )
    elif len(devices) > 1:
        listed = ", ".join(f"{d.serial} ({d.state})" for d in devices)
        raise DeviceError(f"several devices ({listed}): choose one with --serial")
    else:
        chosen = devices[0]
    if chosen.state == "unauthorized":
        raise DeviceError(
            f"device {chosen.serial} is unauthorized: accept the USB debugging prompt on the "
            "phone, then run again"
        )
    if chosen.state != "device":
        raise DeviceError(
            f"device {chosen.serial} is in state '{chosen.state}', not ready for commands"
        )
    return chosen


def adb_executable(name: str = "adb") -> str:
    path = shutil.which(name)
    if path is None:
        raise DeviceError(f"{name}: not found on PATH (install Android platform-tools)")
    return path


def list_devices(executable: str, timeout_s: float = 30) -> list[ListedDevice]:
    proc = _call([executable, "devices", "-l"], timeout_s)
    if proc.returncode != 0:
        raise DeviceError(f"adb devices -l failed: {_first_line(proc.stderr or proc.stdout)}")
    return parse_devices(proc.stdout)


class Adb:
    """Commands on one device. `shell` takes a shell command line run on the phone (quote
    arguments with shlex.quote); `run` takes adb's own arguments (push, pull, install)."""

    def __init__(self, serial: str, executable: str = "adb", timeout_s: float = 600) -> None:
        self.serial = serial
        self.executable = executable
        self.timeout_s = timeout_s

    def run(
        self, *args: str, check: bool = True, timeout_s: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `adb -s SERIAL ARGS`. A vanished device raises DeviceDisconnected even when
        check is False (a command's own exit status is then the caller's business)."""
        proc = _call([self.executable, "-s", self.serial, *args], timeout_s or self.timeout_s)
        text = proc.stderr + proc.stdout
        failure = classify_failure(text) if proc.returncode != 0 else None
        if failure == "gone":
            raise DeviceDisconnected(
                f"device {self.serial} disconnected during `adb {args[0]}` "
                f"({_first_line(_GONE.search(text).group(0))})"
            )
        if failure == "unauthorized":
            raise DeviceError(f"device {self.serial} is unauthorized: accept the USB prompt")
        if check and proc.returncode != 0:
            raise DeviceError(
                f"`adb {' '.join(args)}` failed on {self.serial}: "
                f"{_first_line(proc.stderr or proc.stdout)}"
            )
        return proc

    def shell(self, command: str, check: bool = True, timeout_s: float | None = None) -> str:
        return self.run("shell", command, check=check, timeout_s=timeout_s).stdout

    def shell_args(self, *argv: str, check: bool = True) -> str:
        """`shell` with each argument quoted for the phone's shell."""
        return self.shell(" ".join(shlex.quote(a) for a in argv), check=check)


def _call(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, errors="replace"
        )
    except subprocess.TimeoutExpired:
        raise DeviceError(
            f"`{' '.join(argv[:5])}` did not finish within {timeout_s:.0f} s"
        ) from None
    except OSError as error:
        raise DeviceError(f"{argv[0]}: cannot run ({error.strerror})") from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no output"
