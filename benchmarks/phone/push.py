"""Put a bundle on the phone, pushing only the files whose sha256 there differs.

A bundle is gigabytes over USB; benchmarking three backends on the same bundle should push it
once. The manifest already holds every file's sha256 (read_bundle checks the local files against
it), so one `sha256sum` on the phone tells which files are missing or stale. A push cut short
leaves a file whose hash differs, so the next run pushes it again: nothing stale is trusted.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.phone.device import Adb
from benchmarks.phone.probes import storage_mb
from sfmobile.bundle import MANIFEST, Bundle, read_bundle
from sfmobile.errors import DeviceError

# Room left on the phone besides the bundle (the app's caches, results, the OS's own margin).
SPARE_MB = 256


@dataclass
class PushReport:
    remote_dir: str
    pushed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_pushed: int = 0


def parse_sha256sum(text: str, remote_dir: str) -> dict[str, str]:
    """`sha256sum PATH...` lines `HASH  PATH` -> {path relative to remote_dir: hash}."""
    prefix = remote_dir.rstrip("/") + "/"
    found = {}
    for digest, path in re.findall(r"^([0-9a-f]{64})\s+\*?(.+?)\s*$", text, re.MULTILINE):
        if path.startswith(prefix):
            found[path[len(prefix) :]] = digest
    return found


def bundle_files(bundle: Bundle) -> dict[str, tuple[str, int]]:
    """Every file of the bundle, manifest.json included: {relative name: (sha256, bytes)}."""
    files = {name: (f["sha256"], f["bytes"]) for name, f in bundle.manifest.files.items()}
    manifest_bytes = bundle.file(MANIFEST).read_bytes()
    files[MANIFEST] = (hashlib.sha256(manifest_bytes).hexdigest(), len(manifest_bytes))
    return files


def push_bundle(
    adb: Adb,
    bundle_path: Path,
    remote_dir: str,
    storage_path: str = "/sdcard",
    say: Callable[[str], None] = print,
) -> PushReport:
    """Make remote_dir hold exactly the bundle's files (extra files there are left alone)."""
    bundle = read_bundle(bundle_path, verify="full")
    files = bundle_files(bundle)
    names = sorted(files)
    paths = " ".join(shlex.quote(f"{remote_dir}/{name}") for name in names)
    on_device = parse_sha256sum(adb.shell(f"sha256sum {paths}", check=False), remote_dir)
    report = PushReport(remote_dir=remote_dir)
    stale = [name for name in names if on_device.get(name) != files[name][0]]
    report.unchanged = [name for name in names if name not in stale]
    # manifest.json last: a phone that holds the new manifest holds the files it names.
    stale.sort(key=lambda name: name == MANIFEST)
    needed_mb = sum(files[name][1] for name in stale) / 2**20
    if stale:
        _, free_mb = storage_mb(adb, storage_path)
        if needed_mb + SPARE_MB > free_mb:
            raise DeviceError(
                f"device {adb.serial} storage full: bundle {bundle_path.name} needs "
                f"{needed_mb:.0f} MiB (+{SPARE_MB} spare) on {storage_path}, {free_mb:.0f} MiB free"
            )
    say(
        f"{bundle_path.name}: {len(stale)} file(s) to push ({needed_mb:.1f} MiB), "
        f"{len(report.unchanged)} unchanged on the phone"
    )
    for name in stale:
        local = bundle.file(name)
        proc = adb.run("push", str(local), f"{remote_dir}/{name}", check=False)
        if proc.returncode != 0:
            text = (proc.stderr + proc.stdout).strip()
            if "No space left on device" in text:
                raise DeviceError(
                    f"device {adb.serial} storage full while pushing {local} to {remote_dir}"
                )
            raise DeviceError(f"adb push {local} failed: {text.splitlines()[0] if text else ''}")
        report.pushed.append(name)
        report.bytes_pushed += files[name][1]
    return report
