"""Writing `generate`'s image with its settings inside it, in a format that can carry them.

PNG keeps each setting as a text chunk (prompt, negative_prompt, seed, steps, guidance,
backend); JPEG keeps the same keys as one JSON object in its comment (COM) segment. Other
extensions are refused before the generation runs, since they would drop the settings.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sfmobile.output_paths import check_output_file, write_atomically

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_HELP = (
    "Where to write the image: .png (settings in text chunks) or .jpg/.jpeg (settings as a "
    "JSON comment)."
)


def check_image_out(path: Path) -> None:
    """Before the generation: a supported extension, in an existing folder we can write."""
    check_output_file(path, "--out", IMAGE_SUFFIXES)


def save_image(image: Image.Image, path: Path, settings: dict[str, object]) -> None:
    """Write `image` to `path` with `settings` inside it (module docstring)."""
    encoded = io.BytesIO()
    if path.suffix.lower() == ".png":
        info = PngInfo()
        for key, value in settings.items():
            info.add_text(key, str(value))
        image.save(encoded, format="PNG", pnginfo=info)
    else:
        text = json.dumps({k: str(v) for k, v in settings.items()}, ensure_ascii=False)
        image.save(encoded, format="JPEG", quality=95, comment=text.encode("utf-8"))
    write_atomically(path, encoded.getvalue())
