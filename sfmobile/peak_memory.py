"""Peak resident memory of one piece of work (a generation), measured with the standard library
on each platform, best effort.

- Linux: the kernel's peak (VmHWM in /proc/self/status) is reset before the work by writing 5
  to /proc/self/clear_refs, so the peak read after it is the work's own ("generation").
- macOS and other Unixes: getrusage's ru_maxrss cannot be reset, so the value is the process's
  lifetime peak ("process"); its unit is bytes on macOS and KiB elsewhere.
- Windows (no `resource` module): the working set's lifetime peak through psapi
  GetProcessMemoryInfo ("process").
- Anything else, or a read that fails: 0.0 MB with scope "unknown".

psutil is not used: it is not one of sfmobile's dependencies, and it has no resettable peak
either.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def maxrss_mb(ru_maxrss: int, platform: str | None = None) -> float:
    """getrusage's ru_maxrss in MiB: bytes on macOS, KiB on Linux and the BSDs (platform:
    sys.platform's spelling, this one's by default)."""
    return ru_maxrss / MIB if (platform or sys.platform) == "darwin" else ru_maxrss / 1024


@dataclass(frozen=True)
class PeakRss:
    """mb: the peak resident set in MiB; scope: "generation" (this work's own peak),
    "process" (the process's lifetime peak, which may predate the work) or "unknown"."""

    mb: float
    scope: str


class PeakTracker:
    """Call start() before the work and peak() after it."""

    def __init__(self) -> None:
        self.reset = False

    def start(self) -> None:
        if sys.platform.startswith("linux"):
            try:
                PROC_CLEAR_REFS.write_text("5")
                self.reset = True
            except OSError:
                self.reset = False

    def peak(self) -> PeakRss:
        try:
            if sys.platform.startswith("linux") and self.reset:
                found = re.search(r"^VmHWM:\s+(\d+)\s+kB", PROC_STATUS.read_text(), re.MULTILINE)
                if found:
                    return PeakRss(int(found.group(1)) / 1024, "generation")
            if sys.platform == "win32":
                return PeakRss(_windows_peak_bytes() / MIB, "process")
            import resource

            return PeakRss(maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), "process")
        except (OSError, ImportError, AttributeError, ValueError):
            return PeakRss(0.0, "unknown")


def own_peak_mb() -> float | None:
    """This process's peak resident MiB since it was exec'd (Linux VmHWM), else None.

    Why not the parent's os.wait4 rusage: Linux carries the forked copy's high-water mark over
    exec into ru_maxrss, so a child started by a 400 MB parent reports at least 400 MB even
    if it never used 11 (measured)."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", PROC_STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def _windows_peak_bytes() -> int:
    """PeakWorkingSetSize of this process (PROCESS_MEMORY_COUNTERS, psapi)."""
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [
            ("cb", wintypes.DWORD),
            ("PageFaultCount", wintypes.DWORD),
            ("PeakWorkingSetSize", ctypes.c_size_t),
            ("WorkingSetSize", ctypes.c_size_t),
            ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
            ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
            ("PagefileUsage", ctypes.c_size_t),
            ("PeakPagefileUsage", ctypes.c_size_t),
        ]

    counters = Counters()
    counters.cb = ctypes.sizeof(Counters)
    process = ctypes.windll.kernel32.GetCurrentProcess()  # type: ignore[attr-defined]
    if not ctypes.windll.psapi.GetProcessMemoryInfo(  # type: ignore[attr-defined]
        process, ctypes.byref(counters), counters.cb
    ):
        raise OSError("GetProcessMemoryInfo failed")
    return int(counters.PeakWorkingSetSize)
