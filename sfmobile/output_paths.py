"""Checks on where a command writes, done before any work starts, so an output never destroys
what sfmobile did not create and a long run never ends in "cannot write".

A folder output (a bundle, a checkpoint, a VAE folder) may replace only an earlier output of the
same kind, recognised by its marker file's `format` (manifest.json "sfmobile-bundle",
sfmobile.json "sfmobile-checkpoint", config.json "sfmobile-vae"), or an empty folder. A plain
file, a non-empty folder of anything else, the current folder or one of its parents, a source
of the command or a folder holding one is refused. A file output must name a file (not a
folder) in an existing, writable folder. docs/safety.md lists the promises.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sfmobile.errors import InputError

# Marker file -> the `format` values sfmobile writes into it.
MARKERS = {
    "manifest.json": ("sfmobile-bundle",),
    "sfmobile.json": ("sfmobile-checkpoint",),
    "config.json": ("sfmobile-vae",),
}


def folder_format(folder: Path) -> str | None:
    """The sfmobile output kind a folder holds ("sfmobile-bundle", ...), or None."""
    for marker, formats in MARKERS.items():
        path = Path(folder) / marker
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("format") in formats:
            return data["format"]
    return None


def is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def refuse_replacing(destination: Path, kind: str, option: str) -> None:
    """Raise unless `destination` is absent, an empty folder, or an earlier `kind` output."""
    if not destination.exists() and not destination.is_symlink():
        return
    if not destination.is_dir() or destination.is_symlink():
        what = "a symlink" if destination.is_symlink() else "a file"
        raise InputError(f"{option} {destination}: is {what}, not a {kind} folder; refused")
    if is_empty_folder(destination) or folder_format(destination) == kind:
        return
    raise InputError(
        f"{option} {destination}: a folder that is not an earlier {kind} output; refused "
        "(sfmobile replaces only what it wrote: choose a new or empty folder)"
    )


def refuse_enclosing(destination: Path, option: str, sources: Iterable[tuple[str, Path]]) -> None:
    """Refuse a destination that is the current folder, one of its parents, or a source (or a
    folder holding a source) of the command."""
    target = destination.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise InputError(
            f"{option} {destination}: is the current folder or one of its parents; refused"
        )
    for source_option, source in sources:
        source = source.resolve()
        if target == source or target in source.parents:
            raise InputError(
                f"{option} {destination}: would replace {source_option} {source}; refused"
            )


def check_output_folder(
    destination: Path,
    kind: str,
    option: str = "--out",
    sources: Iterable[tuple[str, Path | None]] = (),
) -> None:
    """Everything about a folder output that can be checked before the work: see the module
    docstring. sources: (option, path) pairs the command reads."""
    destination = Path(destination)
    refuse_enclosing(destination, option, [(o, Path(p)) for o, p in sources if p is not None])
    refuse_replacing(destination, kind, option)
    check_writable_folder(nearest_existing(destination.parent), option, destination)


def check_output_file(path: Path, option: str, suffixes: Iterable[str] | None = None) -> None:
    """A file output: not a folder, an allowed suffix, in an existing folder we can write."""
    path = Path(path)
    allowed = tuple(suffixes) if suffixes is not None else None
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; name a file")
    if allowed is not None and path.suffix.lower() not in allowed:
        raise InputError(
            f"{option} {path}: unsupported extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(allowed)}"
        )
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: folder {path.parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: file is read-only")
    check_writable_folder(path.parent, option, path)


def nearest_existing(path: Path) -> Path:
    """`path` or its closest existing ancestor (where missing folders would be created)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(folder: Path, option: str, target: Path) -> None:
    """Create and remove a probe file in `folder`: the only check that sees read-only file
    systems and permissions the same way for every user (os.access says yes to root)."""
    if not folder.is_dir():
        raise InputError(f"{option} {target}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".sfmobile-probe-"):
            pass
    except OSError as error:
        raise InputError(
            f"{option} {target}: cannot write in {folder} ({error.strerror})"
        ) from None


def umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(folder: Path) -> None:
    """Give a staged tree the permissions ordinary writes get (mkdtemp makes folders 0700 and
    some writers make files 0600): folders 0777 & ~umask, files 0666 & ~umask."""
    mask = umask()
    folder.chmod(0o777 & ~mask)
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file beside it, so `path` is only ever its
    old content or the complete new one; ordinary permissions (umask)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        with open(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
