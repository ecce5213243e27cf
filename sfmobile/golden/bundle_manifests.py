"""Building blocks of the bundle corpus (sfmobile/golden/bundle_corpus.py): placeholder files, a
valid base manifest of the demo model's shapes, and mutations that break one rule each."""

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sfmobile.scheduler import SchedulerConfig
from sfmobile.tokenizer import END_OF_WORD, END_TOKEN, START_TOKEN, bytes_to_unicode


def tiny_vocab() -> bytes:
    """The smallest complete CLIP vocabulary (every byte with and without </w>, no merges) with
    CLIP's start/end ids, so that the tokenizer rule (10) is checked on every case."""
    chars = list(bytes_to_unicode().values())
    tokens = chars + [char + END_OF_WORD for char in chars]
    vocab = {token: id_ for id_, token in enumerate(tokens)}
    vocab |= {START_TOKEN: 49406, END_TOKEN: 49407}
    return (json.dumps(vocab) + "\n").encode()


# Placeholder model files: the reader checks sizes and checksums, it never parses model files.
FILES = {
    "text_encoder.onnx": b"text encoder placeholder\n",
    "unet.onnx": b"unet placeholder\n",
    "decoder.onnx": b"decoder placeholder\n",
    "tokenizer/vocab.json": tiny_vocab(),
    "tokenizer/merges.txt": b"#version: 0.2\n",
}
# Beside the bundles, in the corpus folder: what escaping paths and symlinks point at.
OUTSIDE = {"outside-unet.onnx": FILES["unet.onnx"]}


RAW = "raw-json-literal:"


@dataclass(frozen=True)
class Raw:
    """A manifest value written as this literal text: a number json.dumps cannot write, or bytes
    that are not UTF-8 (as surrogate escapes: U+DCFF is the byte 0xff)."""

    text: str


@dataclass(frozen=True)
class Symlink:
    """A file change: make the path a symbolic link to `target` (relative to its folder)."""

    target: str


def tensor(name: str, shape: list[int], dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": dtype}


def component(file: str, inputs: list[dict], outputs: list[dict]) -> dict[str, Any]:
    return {"format": "onnx", "precision": "fp32", "files": [file], "inputs": inputs,
            "outputs": outputs}  # fmt: skip


def base_manifest() -> dict[str, Any]:
    """A valid 64x64 bundle manifest of the demo model's shapes (UNet batch 2, text width 128)."""
    files = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in FILES.items()
    }
    return {
        "format": "sfmobile-bundle",
        "format_version": 1,
        "components": {
            "text_encoder": component(
                "text_encoder.onnx",
                [tensor("input_ids", [1, 77], "int32")],
                [tensor("text_embeddings", [1, 77, 128])],
            ),
            "unet": component(
                "unet.onnx",
                [
                    tensor("sample", [2, 4, 8, 8]),
                    tensor("timestep", [2]),
                    tensor("text_embeddings", [2, 77, 128]),
                ],
                [tensor("model_output", [2, 4, 8, 8])],
            ),
            "decoder": component(
                "decoder.onnx", [tensor("latents", [1, 4, 8, 8])], [tensor("image", [1, 3, 64, 64])]
            ),
        },
        "scheduler": SchedulerConfig().to_dict(),
        "image": {"height": 64, "width": 64},
        "latent": {"channels": 4, "height": 8, "width": 8, "scaling_factor": 0.18215},
        "tokenizer": {
            "vocab": "tokenizer/vocab.json",
            "merges": "tokenizer/merges.txt",
            "max_length": 77,
            "start_id": 49406,
            "end_id": 49407,
            "pad_id": 49407,
        },
        "guidance": {"cfg_batch": 2, "input": False},
        "created_by": {
            "sfmobile_version": "0.1.0",
            "source": "corpus",
            "source_sha256": "0" * 64,
            "recipe": {
                "format": "onnx",
                "precision": "fp32",
                "quantization": None,
                "calibration": None,
            },
        },
        "files": files,
    }


def at(path: str) -> tuple[list[str], str]:
    parts = path.split("/")
    return parts[:-1], parts[-1]


def setter(path: str, value: Any) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        parents, key = at(path)
        for part in parents:
            data = data[int(part)] if isinstance(data, list) else data[part]
        data[int(key) if isinstance(data, list) else key] = value

    return mutate


def deleter(path: str) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        parents, key = at(path)
        for part in parents:
            data = data[int(part)] if isinstance(data, list) else data[part]
        del data[key]

    return mutate


def file_entry(name: str, entry: dict[str, Any]) -> Callable[[dict], None]:
    """Set files[name] (a key holding slashes, so not a setter path)."""

    def mutate(data: dict) -> None:
        data["files"][name] = {**data["files"].get(name, {}), **entry}

    return mutate


def quantized_int8(data: dict) -> None:
    data["guidance"] = {"cfg_batch": 1, "input": True, "distilled_range": [1.0, 14.0]}
    unet = data["components"]["unet"]
    unet["precision"] = "int8-static"
    unet["inputs"][0] = {**tensor("sample", [1, 4, 8, 8], "int8"),
                         "quantization": {"scale": 0.05, "zero_point": -3}}  # fmt: skip
    data["created_by"]["recipe"] = {"format": "onnx", "precision": "int8", "quantization": "static",
        "calibration": {"prompts": 8, "seed": 0, "steps": 8, "guidance": 7.5}}  # fmt: skip
    data["created_by"]["extra_note"] = "created_by and recipe allow more keys"


ENCODER_FILE = b"encoder placeholder\n"
LORAS = [
    {"file": "style.safetensors", "sha256": hashlib.sha256(b"style").hexdigest(), "scale": 0.8},
    {"file": "detail.safetensors", "sha256": hashlib.sha256(b"detail").hexdigest(), "scale": 1},
]


def with_encoder(then: Callable[[dict], None] | None = None) -> Callable[[dict], None]:
    """The optional encoder component (export --with-encoder) and two merged LoRAs in the
    recipe, then `then` (one broken rule) on top."""

    def mutate(data: dict) -> None:
        data["components"]["encoder"] = component(
            "encoder.onnx", [tensor("image", [1, 3, 64, 64])], [tensor("latent_mean", [1, 4, 8, 8])]
        )
        entry = {"sha256": hashlib.sha256(ENCODER_FILE).hexdigest(), "bytes": len(ENCODER_FILE)}
        data["files"]["encoder.onnx"] = entry
        data["created_by"]["recipe"]["lora"] = copy.deepcopy(LORAS)
        if then:
            then(data)

    return mutate


ENCODER = {"encoder.onnx": ENCODER_FILE}


DECODER_TILE_FILE = b"tile decoder placeholder\n"


def with_decoder_tile(then: Callable[[dict], None] | None = None) -> Callable[[dict], None]:
    """The optional tile decoder (export --decoder-tile 32: a 4x4 latent tile to a 32x32 image
    tile), then `then` (one broken rule) on top."""

    def mutate(data: dict) -> None:
        data["components"]["decoder_tile"] = component(
            "decoder_tile.onnx",
            [tensor("latents", [1, 4, 4, 4])],
            [tensor("image", [1, 3, 32, 32])],
        )
        entry = {"sha256": hashlib.sha256(DECODER_TILE_FILE).hexdigest(),
                 "bytes": len(DECODER_TILE_FILE)}  # fmt: skip
        data["files"]["decoder_tile.onnx"] = entry
        if then:
            then(data)

    return mutate


DECODER_TILE = {"decoder_tile.onnx": DECODER_TILE_FILE}
