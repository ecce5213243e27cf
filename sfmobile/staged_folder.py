"""Write a folder so that its destination is only ever the old folder or the complete new one.

Everything is written into a staging folder beside the destination (`.NAME.partial-XXXX`, same
file system, so the final step is a rename). On success the old destination is first moved
aside in one rename (`.NAME.old-XXXX`), the staging folder renamed into place, then the old one
deleted; an interrupt at any point leaves the destination either as it was or complete. On an
error the staging folder is removed. Bundles, checkpoints and VAE folders all go through here.

The last line of defence of docs/safety.md: an existing destination is replaced only when it is
empty or an earlier output of the same kind as the staged one (output_paths.folder_format), and
never when it is the current folder or one of its parents; the staged tree gets the permissions
of ordinary writes (umask), not mkdtemp's 0700.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sfmobile.output_paths import apply_umask, folder_format, refuse_enclosing, refuse_replacing


@contextmanager
def staged_folder(destination: Path) -> Iterator[Path]:
    """Yield the staging folder; when the block ends without an error, it replaces
    `destination`."""
    destination = Path(destination)
    staging = new_staging(destination)
    try:
        yield staging
        replace_folder(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def new_staging(destination: Path) -> Path:
    """An empty `.NAME.partial-XXXX` folder beside `destination` (parents created)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))


def replace_folder(source: Path, destination: Path) -> None:
    """Rename `source` to `destination`, moving an existing destination aside first (only an
    empty folder or an earlier output of the source's kind; anything else is refused)."""
    destination = Path(destination)
    refuse_enclosing(destination, "output", ())
    refuse_replacing(destination, folder_format(source) or "(unrecognised)", "output")
    apply_umask(source)
    retired = None
    if destination.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
        destination.rename(retired / destination.name)
    source.rename(destination)
    if retired is not None:
        shutil.rmtree(retired)
