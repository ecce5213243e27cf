"""The checks a bundle reader makes beyond the JSON Schema: closure (every file a component or
the tokenizer uses is listed, checksummed and inside the bundle folder, symlinks included) and
the consistency the runtimes rely on. export/README.md "Closure rules" is the text both the
Python and the Kotlin reader implement; the rule numbers below are the README's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sfmobile.errors import BundleError


def used_paths(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where in the manifest, path string) of every file a component or the tokenizer uses."""
    for name, component in data["components"].items():
        for index, file in enumerate(component["files"]):
            yield f"components.{name}.files[{index}]", file
    for key in ("vocab", "merges"):
        yield f"tokenizer.{key}", data["tokenizer"][key]


def check_listed(data: dict[str, Any], where: str) -> None:
    """Rule 3: every used path is a key of `files` (so it is size- and sha256-checked)."""
    for label, file in used_paths(data):
        if file not in data["files"]:
            raise BundleError(f"{where}: {label} {file!r} is not listed in files (no checksum)")


def check_inside(data: dict[str, Any], folder: Path, where: str) -> None:
    """Rule 4: every `files` entry resolves, symlinks followed, to a regular file strictly
    inside the bundle folder."""
    root = folder.resolve()
    for name in data["files"]:
        try:
            resolved = (folder / name).resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
            raise BundleError(f"{where}: files entry {name!r} does not resolve ({error})") from None
        if not resolved.is_relative_to(root) or resolved == root:
            raise BundleError(
                f"{where}: files entry {name!r} resolves outside the bundle folder ({resolved})"
            )
        if not resolved.is_file():
            raise BundleError(f"{folder / name}: missing from the bundle (files entry {name!r})")


def check_shapes(data: dict[str, Any], where: str) -> None:
    """Rules 6-7: the image is the latent times one integer factor in both directions; the
    UNet's first input and the decoder's input are [batch, channels, latent h, latent w]; an
    encoder maps the image [1, 3, H, W] to the latent [1, c, h, w]."""
    image, latent = data["image"], data["latent"]
    factor = image["height"] // latent["height"]
    if (
        factor < 1
        or image["height"] != factor * latent["height"]
        or (image["width"] != factor * latent["width"])
    ):
        raise BundleError(
            f"{where}: image {image['height']}x{image['width']} is not latent "
            f"{latent['height']}x{latent['width']} times one integer factor"
        )
    expected = [latent["channels"], latent["height"], latent["width"]]
    for name in ("unet", "decoder"):
        shape = data["components"][name]["inputs"][0]["shape"]
        if len(shape) != 4 or shape[1:] != expected:
            raise BundleError(
                f"{where}: components.{name}.inputs[0].shape {shape} is not "
                f"[batch, {', '.join(map(str, expected))}] (latent)"
            )
    encoder = data["components"].get("encoder")
    if encoder:  # image -> latent, one image at a time
        wants = {
            "inputs": [1, 3, image["height"], image["width"]],
            "outputs": [1, *expected],
        }
        for key, want in wants.items():
            shape = encoder[key][0]["shape"]
            if shape != want:
                raise BundleError(
                    f"{where}: components.encoder.{key}[0].shape {shape} is not {want}"
                )
    check_decoder_tile(data, factor, where)


def check_decoder_tile(data: dict[str, Any], factor: int, where: str) -> None:
    """The optional tile decoder maps a square latent tile [1, c, t, t], t at most the latent's
    sides, to the image tile [1, 3, factor t, factor t]."""
    tile = data["components"].get("decoder_tile")
    if not tile:
        return
    latent = data["latent"]
    shape = tile["inputs"][0]["shape"]
    t = shape[-1] if len(shape) == 4 else 0
    if shape != [1, latent["channels"], t, t] or not 0 < t <= min(
        latent["height"], latent["width"]
    ):
        raise BundleError(
            f"{where}: components.decoder_tile.inputs[0].shape {shape} is not a square latent "
            f"tile [1, {latent['channels']}, t, t], 0 < t <= "
            f"{min(latent['height'], latent['width'])}"
        )
    want = [1, 3, factor * t, factor * t]
    if tile["outputs"][0]["shape"] != want:
        raise BundleError(
            f"{where}: components.decoder_tile.outputs[0].shape {tile['outputs'][0]['shape']} "
            f"is not {want}"
        )


def check_qnn_section(data: dict[str, Any], where: str) -> None:
    """The top-level `qnn` section is present exactly when the components are format qnn
    (export/README.md): a QNN context needs its SoC, and a section on another format misleads."""
    formats = {name: component["format"] for name, component in data["components"].items()}
    qnn = [name for name, fmt in formats.items() if fmt == "qnn"]
    if qnn and len(qnn) != len(formats):
        other = next(name for name in formats if name not in qnn)
        raise BundleError(
            f"{where}: components.{qnn[0]} is format qnn but components.{other} is "
            f"{formats[other]}; a QNN bundle's components are all qnn"
        )
    if qnn and "qnn" not in data:
        raise BundleError(f"{where}: components are format qnn but the qnn section is missing")
    if not qnn and "qnn" in data:
        raise BundleError(
            f"{where}: qnn section present but the components are format {formats['unet']}, not qnn"
        )


def check_rules(data: dict[str, Any], folder: Path, where: str) -> None:
    """Every rule the schema cannot state, on a manifest that passed the schema."""
    check_qnn_section(data, where)
    check_listed(data, where)
    check_inside(data, folder, where)
    check_shapes(data, where)
