"""Listed image-caption sources: every (image path, caption) known up front, in a fixed order.

- folder: every image (IMAGE_SUFFIXES, any depth) with its caption in the same-named `.txt`
  beside it (`cat.png` + `cat.txt`), the usual fine-tuning layout; ordered by relative path.
- JSONL: one object per line; CSV: a header row then one row per sample. The image path is
  under `image`, `file_name` (Hugging Face's metadata.jsonl) or `path`; the caption under
  `caption` or `text`. Relative paths are relative to the index file's folder.

A missing caption stays None here (the reader counts and skips it); a broken index (bad JSON,
no usable column) is the user's to fix and raises InputError naming the file and line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sfmobile.errors import InputError
from sfmobile.train.data.images import IMAGE_SUFFIXES

IMAGE_KEYS = ("image", "file_name", "path")
CAPTION_KEYS = ("caption", "text")


@dataclass(frozen=True)
class Record:
    """key: the image's path as the source names it (relative to the folder or as written in
    the index); caption: None when the source has none."""

    key: str
    image: Path
    caption: str | None


def folder_records(folder: Path) -> list[Record]:
    """Images under `folder` with the caption of the `.txt` of the same stem (None if absent)."""
    images = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower()[1:] in IMAGE_SUFFIXES
    )
    if not images:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    records = []
    for image in images:
        text = image.with_suffix(".txt")
        caption = text.read_text(encoding="utf-8", errors="replace") if text.is_file() else None
        records.append(Record(str(image.relative_to(folder)), image, caption))
    return records


def jsonl_records(index: Path) -> list[Record]:
    rows = []
    with open(index, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{index}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{index}:{number}: expected a JSON object, got {row!r:.60}")
            rows.append((f"{index.name}:{number}", row))
    return _records(index, rows)


def csv_records(index: Path) -> list[Record]:
    with open(index, encoding="utf-8", newline="") as f:
        rows = [(f"{index.name}:{n}", row) for n, row in enumerate(csv.DictReader(f), start=2)]
    return _records(index, rows)


def _records(index: Path, rows: list[tuple[str, Mapping]]) -> list[Record]:
    if not rows:
        raise InputError(f"{index}: no samples in this index")
    columns = set(rows[0][1])
    image_key = next((k for k in IMAGE_KEYS if k in columns), None)
    caption_key = next((k for k in CAPTION_KEYS if k in columns), None)
    if image_key is None or caption_key is None:
        raise InputError(
            f"{index}: needs an image column ({'/'.join(IMAGE_KEYS)}) and a caption column "
            f"({'/'.join(CAPTION_KEYS)}); found {sorted(columns)}"
        )
    records = []
    for where, row in rows:
        path = row.get(image_key)
        if not isinstance(path, str) or not path:
            raise InputError(f"{where}: no image path under {image_key!r}")
        caption = row.get(caption_key)
        caption = caption if isinstance(caption, str) else None
        records.append(Record(path, index.parent / path, caption))
    return records
