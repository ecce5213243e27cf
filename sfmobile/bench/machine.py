"""What machine a result came from: CPU model, cores, clock and vector features read from
/proc/cpuinfo, the nominal fp32 peak they imply, and the versions of the runtimes timed.

Absolute times mean nothing across machines (the CI machines change CPU from day to day), so
every result file starts with this description and the share of peak is computed from it.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

# fp32 FLOP per cycle per core: two FMA pipes x vector lanes x 2 (multiply + add)
FLOP_PER_CYCLE = (("avx512f", 64), ("avx2", 32), ("avx", 16), ("sse2", 8))
# AMD family 25 (0x19) with AVX-512 is Zen 4, whose FMA pipes are 256 bits wide: a 512-bit FMA
# takes two passes, so its peak is AVX2's 32 FLOP/cycle (Zen 5, family 26, has full-width pipes)
HALF_WIDTH_AVX512 = (("AuthenticAMD", 25),)
VERSIONED = ("sfmobile", "torch", "onnxruntime", "ai-edge-litert", "diffusers", "numpy")


@dataclass(frozen=True)
class CpuInfo:
    """cores: physical cores (distinct physical id/core id pairs); ghz: the model name's
    nominal clock if it states one, else the first processor's `cpu MHz` (under a hypervisor
    the base clock: cores that boost run faster, so a share of this peak can pass 100%, which
    is why the bench also measures a GEMM roofline, `sfmobile.bench.roofline`)."""

    model: str
    cores: int
    logical: int
    ghz: float
    vector: str
    fma: bool
    vnni: bool
    flop_per_cycle: int

    @property
    def peak_gflops(self) -> float:
        """Nominal fp32 peak of all cores: cores x FLOP/cycle x GHz."""
        return self.cores * self.flop_per_cycle * self.ghz

    def to_dict(self) -> dict:
        return {**asdict(self), "peak_gflops": round(self.peak_gflops, 1)}


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse the text of /proc/cpuinfo (x86 Linux)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if "processor" in b]
    if not blocks:
        raise ValueError("/proc/cpuinfo: no `processor` entries")
    entries = []
    for block in blocks:
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        entries.append(fields)
    first = entries[0]
    flags = set(first.get("flags", "").split())
    model = first.get("model name", "unknown")
    stated = re.search(r"@\s*([\d.]+)\s*GHz", model)
    ghz = float(stated.group(1)) if stated else float(first.get("cpu MHz", "0")) / 1000
    pairs = {(e.get("physical id"), e.get("core id")) for e in entries}
    cores = len(pairs) if None not in {p[1] for p in pairs} else len(entries)
    fma = "fma" in flags
    vector, per_cycle = next(((f, n) for f, n in FLOP_PER_CYCLE if f in flags), ("scalar", 2))
    if not fma and per_cycle > 8:
        per_cycle //= 2  # separate multiply and add pipes: half the FMA rate
    family = (first.get("vendor_id", ""), int(first.get("cpu family", "0") or 0))
    if vector == "avx512f" and family in HALF_WIDTH_AVX512:
        per_cycle //= 2
    vnni = bool(flags & {"avx512_vnni", "avx_vnni"})
    return CpuInfo(model, cores, len(entries), round(ghz, 3), vector, fma, vnni, per_cycle)


def read_cpu(path: Path = Path("/proc/cpuinfo")) -> CpuInfo | None:
    """This machine's CPU, or None where /proc/cpuinfo is missing or unreadable."""
    try:
        return parse_cpuinfo(path.read_text())
    except (OSError, ValueError):
        return None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def describe(command: list[str]) -> dict:
    """The first JSON line of every result file."""
    cpu = read_cpu()
    return {
        "record": "machine",
        "cpu": cpu.to_dict() if cpu else None,
        "platform": platform.platform(),
        "threads_available": len(os.sched_getaffinity(0)),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions(),
        "command": command,
    }
