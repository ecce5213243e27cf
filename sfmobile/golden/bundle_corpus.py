"""Manifest corpus: small bundle folders, one valid manifest per shape of bundle and one invalid
variant per rule of export/manifest.schema.json and of the reader (a path leaving the folder, a
wrong sha256, a missing file). Each case's verdict is what sfmobile.bundle.read_bundle says when
the corpus is written; the Kotlin core's Bundle must say the same (tests/golden/bundles/)."""

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfmobile.bundle import read_bundle
from sfmobile.errors import BundleError
from sfmobile.scheduler import SchedulerConfig

GOLDEN_FORMAT = "sfmobile-bundle-corpus/1"

# Placeholder contents: the reader checks sizes and checksums, it never parses model files.
FILES = {
    "text_encoder.onnx": b"text encoder placeholder\n",
    "unet.onnx": b"unet placeholder\n",
    "decoder.onnx": b"decoder placeholder\n",
    "tokenizer/vocab.json": b"{}\n",
    "tokenizer/merges.txt": b"#version: 0.2\n",
}


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


# (name, what it checks, manifest mutation, file changes: path -> bytes or None to delete,
#  a phrase both readers' messages must contain when they refuse)
CASES: tuple[tuple[str, str, Callable[[dict], None] | None, dict, str], ...] = (
    ("valid", "the base bundle", None, {}, ""),
    ("valid-int8-guidance-input",
     "quantization, cfg_batch 1, guidance input and its distilled range, open created_by",
     quantized_int8, {}, ""),
    ("valid-integral-numbers", "JSON Schema integers: 64.0 is an integer",
     setter("image/height", 64.0), {}, ""),
    ("valid-encoder-lora", "the optional encoder component and recipe.lora", with_encoder(),
     ENCODER, ""),
    ("missing-field-guidance", "a required top-level field", deleter("guidance"), {}, "guidance"),
    ("missing-field-beta-end", "a required scheduler field", deleter("scheduler/beta_end"), {},
     "beta_end"),
    ("missing-field-unet-outputs", "a required component field",
     deleter("components/unet/outputs"), {}, "outputs"),
    ("wrong-type-image-height", "a string for an integer", setter("image/height", "64"), {},
     "image/height"),
    ("wrong-type-guidance-input", "an integer for a boolean", setter("guidance/input", 1), {},
     "guidance/input"),
    ("wrong-type-steps-offset", "a fraction for an integer", setter("scheduler/steps_offset", 1.5),
     {}, "scheduler/steps_offset"),
    ("wrong-type-files-list", "an object for the files list",
     setter("components/unet/files", {"0": "unet.onnx"}), {}, "components/unet/files"),
    ("unknown-format-version", "format_version other than 1", setter("format_version", 2), {},
     "format_version"),
    ("unknown-format", "format other than sfmobile-bundle", setter("format", "bundle"), {},
     "format"),
    ("extra-top-level-field", "additionalProperties false", setter("notes", "hi"), {}, "notes"),
    ("extra-scheduler-field", "additionalProperties false in scheduler",
     setter("scheduler/eta", 0.0), {}, "eta"),
    ("enum-prediction-type", "an unknown prediction type",
     setter("scheduler/prediction_type", "sample"), {}, "scheduler/prediction_type"),
    ("enum-cfg-batch", "cfg_batch 3", setter("guidance/cfg_batch", 3), {}, "guidance/cfg_batch"),
    ("short-distilled-range", "distilled_range of one number",
     setter("guidance/distilled_range", [2.0]), {}, "guidance/distilled_range"),
    ("negative-distilled-range", "distilled_range below 0",
     setter("guidance/distilled_range", [-1.0, 8.0]), {}, "guidance/distilled_range/0"),
    ("enum-dtype", "an unknown tensor dtype",
     setter("components/decoder/inputs/0/dtype", "bfloat16"), {},
     "components/decoder/inputs/0/dtype"),
    ("minimum-image-width", "image width below 8", setter("image/width", 4), {}, "image/width"),
    ("minimum-tensor-dimension", "a zero dimension",
     setter("components/unet/inputs/0/shape/0", 0), {}, "components/unet/inputs/0/shape/0"),
    ("empty-component-files", "minItems 1", setter("components/unet/files", []), {},
     "components/unet/files"),
    ("pattern-sha256", "an uppercase sha256",
     file_entry("unet.onnx", {"sha256": "A" * 64}), {}, "sha256"),
    ("path-leaves-bundle", "a files entry leaving the bundle folder",
     file_entry("../outside.bin", {"sha256": "0" * 64, "bytes": 1}), {}, "../outside.bin"),
    ("extra-component", "a component other than the four named",
     setter("components/refiner", component("unet.onnx", [tensor("x", [1])], [tensor("y", [1])])),
     {}, "refiner"),
    ("encoder-missing-outputs", "the encoder is a full component",
     with_encoder(deleter("components/encoder/outputs")), ENCODER, "outputs"),
    ("encoder-enum-precision", "the encoder's precision",
     with_encoder(setter("components/encoder/precision", "int4")), ENCODER,
     "components/encoder/precision"),
    ("lora-not-array", "recipe.lora is an array",
     with_encoder(setter("created_by/recipe/lora", LORAS[0])), ENCODER, "created_by/recipe/lora"),
    ("lora-null", "recipe.lora, when present, is not null",
     with_encoder(setter("created_by/recipe/lora", None)), ENCODER, "created_by/recipe/lora"),
    ("lora-missing-sha256", "a LoRA entry's required sha256",
     with_encoder(deleter("created_by/recipe/lora/1/sha256")), ENCODER, "sha256"),
    ("lora-pattern-sha256", "a LoRA entry's sha256 pattern",
     with_encoder(setter("created_by/recipe/lora/0/sha256", "A" * 64)), ENCODER,
     "created_by/recipe/lora/0/sha256"),
    ("lora-extra-field", "additionalProperties false in a LoRA entry",
     with_encoder(setter("created_by/recipe/lora/0/alpha", 4)), ENCODER, "alpha"),
    ("lora-scale-string", "a LoRA scale is a number",
     with_encoder(setter("created_by/recipe/lora/1/scale", "1.0")), ENCODER,
     "created_by/recipe/lora/1/scale"),
    ("wrong-sha256", "a changed file with the original size", None,
     {"unet.onnx": b"unet PLACEHOLDER\n"}, "unet.onnx"),
    ("wrong-size", "a changed file of another size", None,
     {"decoder.onnx": b"decoder placeholder, longer\n"}, "decoder.onnx"),
    ("missing-file", "a listed file that is absent", None, {"tokenizer/merges.txt": None},
     "merges.txt"),
)  # fmt: skip


def write_case(folder: Path, mutate: Callable[[dict], None] | None, changes: dict) -> None:
    folder.mkdir(parents=True)
    data = copy.deepcopy(base_manifest())
    if mutate:
        mutate(data)
    for name, content in {**FILES, **changes}.items():
        if content is not None:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    (folder / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")


def python_verdict(folder: Path) -> tuple[bool, str]:
    try:
        read_bundle(folder, verify="full")
    except BundleError as error:
        return False, str(error).replace(str(folder), "<bundle>")
    return True, ""


def write_bundle_corpus(out_dir: Path) -> dict:
    """Write every case as out_dir/<name>/ plus index.json with Python's verdict on each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, checks, mutate, changes, phrase in CASES:
        folder = out_dir / name
        if folder.exists():
            shutil.rmtree(folder)
        write_case(folder, mutate, changes)
        accepted, message = python_verdict(folder)
        if not accepted and phrase not in message:
            raise AssertionError(f"bundle corpus case {name}: {message!r} lacks {phrase!r}")
        cases.append({"name": name, "checks": checks, "accepted": accepted,
                      "python_message": message, "message_names": phrase})  # fmt: skip
    index = {"format": GOLDEN_FORMAT, "spec": "export/README.md, export/manifest.schema.json",
             "cases": cases}  # fmt: skip
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index
