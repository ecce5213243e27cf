"""Manifest corpus: small bundle folders, one valid manifest per shape of bundle and one invalid
variant per rule of export/manifest.schema.json and per closure rule of export/README.md (path
form, no self or repeats, listed, inside with symlinks followed, checksums, geometry, latent
inputs, tokenizer ids, strict JSON) and of the QNN additions (bundle_qnn_cases.py). Each case's
verdict is what sfmobile.bundle.read_bundle followed by Bundle.tokenizer() says when the corpus
is written; the Kotlin core's Bundle.open followed by tokenizer() must say the same
(tests/golden/bundles/).

Closure rules 8 (ONNX external-data locations) and 9 (model files agree with the manifest) need
real model files, which these placeholder bundles do not have: tests/test_bundle.py and
tests/test_safety_catalogue.py cover them on the Python side. The corpus folder itself holds
OUTSIDE, a file beside the bundles, so that paths and symlinks leaving a bundle reach a file
that exists (with the right size and sha256): the refusal never depends on its absence."""

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from sfmobile.bundle import read_bundle
from sfmobile.errors import BundleError, TokenizerError
from sfmobile.golden.bundle_closure_cases import CLOSURE_CASES
from sfmobile.golden.bundle_manifests import (
    DECODER_TILE,
    ENCODER,
    FILES,
    LORAS,
    OUTSIDE,
    RAW,
    Raw,
    Symlink,
    base_manifest,
    component,
    deleter,
    file_entry,
    quantized_int8,
    setter,
    tensor,
    with_decoder_tile,
    with_encoder,
)
from sfmobile.golden.bundle_qnn_cases import QNN_CASES

GOLDEN_FORMAT = "sfmobile-bundle-corpus/1"


# (name, what it checks, manifest mutation, file changes: path -> bytes, Symlink or None to delete,
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
    ("valid-decoder-tile", "the optional tile decoder component", with_decoder_tile(),
     DECODER_TILE, ""),
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
    ("short-distilled-range", "distilled_range of one number",
     setter("guidance/distilled_range", [2.0]), {}, "guidance/distilled_range"),
    ("negative-distilled-range", "distilled_range below 0",
     setter("guidance/distilled_range", [-1.0, 8.0]), {}, "guidance/distilled_range/0"),
    ("extra-top-level-field", "additionalProperties false", setter("notes", "hi"), {}, "notes"),
    ("extra-scheduler-field", "additionalProperties false in scheduler",
     setter("scheduler/eta", 0.0), {}, "eta"),
    ("enum-prediction-type", "an unknown prediction type",
     setter("scheduler/prediction_type", "sample"), {}, "scheduler/prediction_type"),
    ("enum-cfg-batch", "cfg_batch 3", setter("guidance/cfg_batch", 3), {}, "guidance/cfg_batch"),
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
    *CLOSURE_CASES,
    *QNN_CASES,
)  # fmt: skip


def write_case(folder: Path, mutate: Callable[[dict], None] | None, changes: dict) -> None:
    folder.mkdir(parents=True)
    data = copy.deepcopy(base_manifest())
    if mutate:
        mutate(data)
    for name, content in {**FILES, **changes}.items():
        if content is not None:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            (folder / name).symlink_to(content.target)
        elif content is not None:
            (folder / name).write_bytes(content)
    raws: list[str] = []  # Raw values, written as their text in place of a numbered marker

    def marker(value: Raw) -> str:
        raws.append(value.text)
        return f"{RAW}{len(raws) - 1}"

    text = json.dumps(data, indent=2, default=marker)
    text = re.sub(f'"{RAW}(\\d+)"', lambda match: raws[int(match[1])], text)
    (folder / "manifest.json").write_bytes((text + "\n").encode("utf-8", "surrogateescape"))


def python_verdict(folder: Path) -> tuple[bool, str]:
    """Python's reader: read_bundle with full verification, then the bundle's tokenizer."""
    try:
        read_bundle(folder, verify="full").tokenizer()
    except (BundleError, TokenizerError) as error:
        message = str(error)
        for real, shown in ((folder, "<bundle>"), (folder.parent, "<corpus>")):
            message = message.replace(str(real.resolve()), shown).replace(str(real), shown)
        return False, message
    return True, ""


def write_bundle_corpus(out_dir: Path) -> dict:
    """Write every case as out_dir/<name>/ plus index.json with Python's verdict on each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {case[0] for case in CASES}
    for stale in out_dir.iterdir():  # a case renamed or removed since the last run
        if stale.is_dir() and not stale.is_symlink() and stale.name not in names:
            shutil.rmtree(stale)
    for name, content in OUTSIDE.items():
        (out_dir / name).write_bytes(content)
    cases = []
    for name, checks, mutate, changes, phrase in CASES:
        folder = out_dir / name
        if folder.exists() or folder.is_symlink():
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
