"""The exported bundle: the contract between the Python exporter and every runtime (Python
backends, the Kotlin core on the phone).

A bundle is a folder: `manifest.json` plus model files and tokenizer files. The manifest is
validated against sfmobile/data/manifest.schema.json (the package carries the real file;
`export/manifest.schema.json` at the top of the repository is a copy that tests/test_bundle.py
keeps byte-identical, for the Kotlin side and the docs) on write and on read. Bundles are
written into a temporary folder beside the destination and renamed into place only when
complete; reading one verifies every file's size and (unless told to check sizes only) its
sha256, after the closure rules of export/README.md (sfmobile/bundle_rules.py): every file a
component or the tokenizer uses is listed in `files` and lies inside the bundle folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from sfmobile.bundle_rules import check_rules
from sfmobile.errors import BundleError, TokenizerError
from sfmobile.staged_folder import new_staging, replace_folder
from sfmobile.tokenizer import ClipTokenizer, read_merges, read_vocab

FORMAT = "sfmobile-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COMPONENT_NAMES = ("text_encoder", "unet", "decoder")
# A TFLite component's one signature: the exporter writes it, every runtime runs it by name.
TFLITE_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class Quantization:
    """real = scale * (q - zero_point), for an int8/uint8 model input or output."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, static shape, dtype (float32, float16, int32, int64,
    int8, uint8) and, for quantized tensors, how to (de)quantize."""

    name: str
    shape: list[int]
    dtype: str
    quantization: Quantization | None = None

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TensorSpec:
        quant = data.get("quantization")
        return TensorSpec(
            name=data["name"],
            shape=list(data["shape"]),
            dtype=data["dtype"],
            quantization=Quantization(**quant) if quant else None,
        )


@dataclass(frozen=True)
class ComponentSpec:
    """One exported model file (or a model file plus its external-data files)."""

    format: str
    precision: str
    files: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ComponentSpec:
        return ComponentSpec(
            format=data["format"],
            precision=data["precision"],
            files=list(data["files"]),
            inputs=[TensorSpec.from_dict(t) for t in data["inputs"]],
            outputs=[TensorSpec.from_dict(t) for t in data["outputs"]],
        )

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)


@dataclass
class Manifest:
    """Everything a runtime needs besides the model files. See export/README.md."""

    components: dict[str, ComponentSpec]
    scheduler: dict[str, Any]
    image: dict[str, int]
    latent: dict[str, Any]
    tokenizer: dict[str, Any]
    guidance: dict[str, Any]
    created_by: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    qnn: dict[str, Any] | None = None  # QNN bundles only: SoC and node placement
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for component in data["components"].values():
            for tensor in component["inputs"] + component["outputs"]:
                if tensor["quantization"] is None:
                    del tensor["quantization"]
        if data["qnn"] is None:
            del data["qnn"]
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Manifest:
        fields = {k: v for k, v in data.items() if k != "components"}
        components = {k: ComponentSpec.from_dict(v) for k, v in data["components"].items()}
        return Manifest(components=components, **fields)


@cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("sfmobile.data").joinpath("manifest.schema.json").read_text()
    return json.loads(text)


def validate_manifest(data: dict[str, Any], where: str) -> None:
    try:
        jsonschema.validate(data, manifest_schema())
    except jsonschema.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise BundleError(f"{where}: manifest invalid at {path}: {schema_message(error)}") from None


def schema_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, except where it would quote a regular expression."""
    if error.schema == manifest_schema()["$defs"]["relative_path"]:
        return (
            f"{error.instance!r} is not a relative, normalised path inside the bundle "
            "(closure rule 1, export/README.md)"
        )
    if error.validator == "not":
        return f"{error.instance!r} is not allowed here"
    return error.message


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class BundleWriter:
    """Stage a bundle beside `destination`; `finish(manifest)` checksums every file, writes and
    validates the manifest, then renames the folder into place. Leaving the `with` block without
    finishing (an error, an interrupt) removes the staging folder and leaves nothing behind."""

    def __init__(self, destination: Path) -> None:
        self.destination = Path(destination)
        self.staging: Path | None = None

    def __enter__(self) -> BundleWriter:
        self.staging = new_staging(self.destination)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging)

    @property
    def dir(self) -> Path:
        if self.staging is None:
            raise RuntimeError("BundleWriter used outside its `with` block")
        return self.staging

    def finish(self, manifest: Manifest) -> Path:
        manifest.files = {}
        for path in sorted(p for p in self.dir.rglob("*") if p.is_file()):
            name = path.relative_to(self.dir).as_posix()
            manifest.files[name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
        data = manifest.to_dict()
        validate_manifest(data, str(self.destination / MANIFEST))
        check_rules(data, self.dir, str(self.destination / MANIFEST))
        (self.dir / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")
        replace_folder(self.dir, self.destination)
        self.staging = None
        return self.destination


@dataclass
class Bundle:
    path: Path
    manifest: Manifest

    def file(self, name: str) -> Path:
        return self.path / name

    def tokenizer(self) -> ClipTokenizer:
        """The CLIP tokenizer from exactly the manifest's vocab and merges files, its ids checked
        against the manifest's; errors name the manifest's own path strings."""
        spec = self.manifest.tokenizer
        where = f"{self.path / MANIFEST}: tokenizer"
        try:
            vocab = read_vocab(self.file(spec["vocab"]))
            merges = read_merges(self.file(spec["merges"]))
        except TokenizerError as error:
            raise TokenizerError(
                f"{where} ({spec['vocab']!r}, {spec['merges']!r}): {error}"
            ) from None
        pads = [token for token, id_ in vocab.items() if id_ == spec["pad_id"]]
        if not pads:
            raise TokenizerError(f"{where}.pad_id {spec['pad_id']} is not in {spec['vocab']!r}")
        tokenizer = ClipTokenizer(vocab, merges, pads[0], source=f"{where}.vocab {spec['vocab']!r}")
        if (tokenizer.start_id, tokenizer.end_id) != (spec["start_id"], spec["end_id"]):
            raise TokenizerError(
                f"{where}.start_id/end_id {spec['start_id']}/{spec['end_id']} differ from "
                f"{spec['vocab']!r}'s {tokenizer.start_id}/{tokenizer.end_id}"
            )
        return tokenizer


class NotJson:
    """What the parser makes of NaN, Infinity, -Infinity and numbers too large for a double, such
    as 1e400 (closure rule 11), found afterwards so the error can name the field holding it."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def parse_float(literal: str) -> float | NotJson:
    value = float(literal)
    return value if math.isfinite(value) else NotJson(literal)


def first_not_json(data: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, literal) of the first NaN/Infinity in document order, or None."""
    if isinstance(data, NotJson):
        return path or "(root)", data.literal
    if isinstance(data, dict | list):
        items = data.items() if isinstance(data, dict) else enumerate(data)
    else:
        items = ()
    for key, value in items:
        found = first_not_json(value, f"{path}/{key}" if path else str(key))
        if found:
            return found
    return None


def read_bundle(path: Path, verify: str = "full") -> Bundle:
    """Read and check a bundle. verify: "full" (sizes and sha256) or "sizes"."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a bundle (no {MANIFEST})")
    try:
        text = manifest_path.read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=NotJson, parse_float=parse_float)
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise BundleError(f"{manifest_path}: not valid JSON ({error})") from None
    if found := first_not_json(data):
        raise BundleError(
            f"{manifest_path}: manifest invalid at {found[0]}: {found[1]} is not a finite JSON "
            "number (closure rule 11, export/README.md)"
        )
    validate_manifest(data, str(manifest_path))
    check_rules(data, path, str(manifest_path))
    for name, expected in data["files"].items():
        file = path / name
        if file.stat().st_size != expected["bytes"]:
            raise BundleError(
                f"{file}: size {file.stat().st_size} bytes, manifest says {expected['bytes']}"
            )
        if verify == "full" and sha256_of(file) != expected["sha256"]:
            raise BundleError(f"{file}: sha256 does not match the manifest (file changed)")
    return Bundle(path=path, manifest=Manifest.from_dict(data))
