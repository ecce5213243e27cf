"""The bundle contract: schema validation, atomic writes, checksum and size verification."""

import json

import pytest

from sfmobile.bundle import (
    BundleWriter,
    ComponentSpec,
    Manifest,
    Quantization,
    TensorSpec,
    read_bundle,
    validate_manifest,
)
from sfmobile.bundle_rules import check_qnn_section
from sfmobile.errors import BundleError
from sfmobile.golden.bundle_manifests import base_manifest


def component(file: str, quantized: bool = False) -> ComponentSpec:
    quant = Quantization(scale=0.05, zero_point=-3) if quantized else None
    return ComponentSpec(
        format="onnx",
        precision="int8-static" if quantized else "fp32",
        files=[file],
        inputs=[TensorSpec("x", [1, 4, 8, 8], "int8" if quantized else "float32", quant)],
        outputs=[TensorSpec("y", [1, 4, 8, 8], "float32")],
    )


def manifest() -> Manifest:
    """A valid manifest: generic components (an int8 UNet input) around the corpus base's other
    sections."""
    base = base_manifest()
    return Manifest(
        components={
            "text_encoder": component("text_encoder.onnx"),
            "unet": component("unet.onnx", quantized=True),
            "decoder": component("decoder.onnx"),
        },
        **{key: base[key] for key in ("scheduler", "image", "latent", "tokenizer", "guidance")},
        created_by={
            "sfmobile_version": "0.1.0",
            "source": "test",
            "source_sha256": "0" * 64,
            "recipe": {"format": "onnx", "precision": "fp32", "quantization": None},
        },
    )


def write_bundle(destination):
    with BundleWriter(destination) as writer:
        for name in ("text_encoder.onnx", "unet.onnx", "decoder.onnx"):
            (writer.dir / name).write_bytes(name.encode() * 100)
        (writer.dir / "tokenizer").mkdir()
        (writer.dir / "tokenizer" / "vocab.json").write_text("{}")
        (writer.dir / "tokenizer" / "merges.txt").write_text("")
        return writer.finish(manifest())


def test_written_bundle_reads_back_with_checksums_and_quantization(tmp_path):
    path = write_bundle(tmp_path / "bundle")
    bundle = read_bundle(path)
    assert set(bundle.manifest.files) == {
        "text_encoder.onnx",
        "unet.onnx",
        "decoder.onnx",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
    }
    assert bundle.manifest.components["unet"].inputs[0].quantization == Quantization(0.05, -3)
    assert bundle.manifest.to_dict() == json.loads((path / "manifest.json").read_text())


def test_tampered_file_is_caught_by_checksum_and_named(tmp_path):
    path = write_bundle(tmp_path / "bundle")
    data = bytearray((path / "unet.onnx").read_bytes())
    data[10] ^= 0xFF
    (path / "unet.onnx").write_bytes(bytes(data))
    read_bundle(path, verify="sizes")  # same size: the fast mode cannot see it
    with pytest.raises(BundleError, match=r"unet\.onnx: sha256"):
        read_bundle(path)


def test_truncated_file_is_caught_by_size(tmp_path):
    path = write_bundle(tmp_path / "bundle")
    (path / "decoder.onnx").write_bytes(b"short")
    with pytest.raises(BundleError, match=r"decoder\.onnx: size 5 bytes"):
        read_bundle(path, verify="sizes")


def test_missing_file_is_named(tmp_path):
    path = write_bundle(tmp_path / "bundle")
    (path / "tokenizer" / "merges.txt").unlink()
    with pytest.raises(BundleError, match=r"merges\.txt: missing"):
        read_bundle(path)


def test_failure_inside_the_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), BundleWriter(tmp_path / "bundle") as writer:
        (writer.dir / "unet.onnx").write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_is_replaced_only_when_the_new_one_is_complete(tmp_path):
    path = write_bundle(tmp_path / "bundle")
    with pytest.raises(RuntimeError), BundleWriter(path) as writer:
        (writer.dir / "unet.onnx").write_bytes(b"new")
        raise RuntimeError("interrupted")
    read_bundle(path)  # the old bundle is intact


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda m: m["components"].pop("unet"), "components"),
        (lambda m: m["scheduler"].update(prediction_type="sample"), "scheduler/prediction_type"),
        (lambda m: m.update(format_version=2), "format_version"),
        (lambda m: m["guidance"].update(cfg_batch=3), "guidance/cfg_batch"),
        (
            lambda m: m["components"]["unet"]["inputs"][0].update(dtype="bfloat16"),
            "components/unet/inputs/0/dtype",
        ),
        (
            lambda m: m["components"].update(encoder={"format": "onnx"}),
            "components/encoder",
        ),
        (
            lambda m: m["created_by"]["recipe"].update(lora=[{"file": "a.safetensors"}]),
            "created_by/recipe/lora/0",
        ),
    ],
)
def test_schema_rejects_malformed_manifests_naming_the_field(edit, where):
    data = manifest().to_dict()
    data["files"] = {}
    validate_manifest(data, "m.json")
    edit(data)
    with pytest.raises(BundleError, match=f"m.json: manifest invalid at {where}"):
        validate_manifest(data, "m.json")


def test_schema_takes_the_optional_encoder_and_lora_record():
    data = manifest().to_dict()
    data["files"] = {}
    data["components"]["encoder"] = data["components"]["decoder"]
    lora = {"file": "style.safetensors", "sha256": "a" * 64, "scale": 0.5}
    data["created_by"]["recipe"]["lora"] = [lora]
    validate_manifest(data, "m.json")


def test_manifest_naming_a_file_that_is_not_there_is_refused(tmp_path):
    with pytest.raises(BundleError, match="not listed"), BundleWriter(tmp_path / "b") as writer:
        (writer.dir / "unet.onnx").write_bytes(b"x")
        writer.finish(manifest())
    assert not (tmp_path / "b").exists()


def test_export_schema_is_a_byte_identical_copy_of_the_package_schema():
    """The package holds the real file (an sdist or a Windows checkout may not carry a
    symlink); export/ keeps a copy for the Kotlin side and the docs."""
    from pathlib import Path

    from sfmobile.bundle import manifest_schema

    repo = Path(__file__).parents[1]
    package, top_level = (repo / "sfmobile" / "data", repo / "export")
    kept = (top_level / "manifest.schema.json").read_bytes()
    assert kept == (package / "manifest.schema.json").read_bytes(), (
        "export/manifest.schema.json differs from sfmobile/data/manifest.schema.json (the "
        "source): edit the package file and copy it to export/"
    )
    assert manifest_schema() == json.loads(kept)


QNN_SECTION = {
    "soc": "SM8650",
    "htp_arch": 75,
    "soc_model": 57,
    "qnn_sdk": "v2.51.0",
    "placement": {
        name: {"htp_nodes": 3, "io_nodes": 0, "cpu_nodes": []}
        for name in ("text_encoder", "unet", "decoder")
    },
}


def qnn_manifest() -> dict:
    data = manifest().to_dict()
    for component in data["components"].values():
        component.update(format="qnn", precision="w8a16")
    data["qnn"] = json.loads(json.dumps(QNN_SECTION))
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("qnn"), "components are format qnn but the qnn section is missing"),
        (
            lambda m: m["components"]["decoder"].update(format="onnx"),
            "components.text_encoder is format qnn but components.decoder is onnx",
        ),
        (
            lambda m: [c.update(format="onnx") for c in m["components"].values()],
            "qnn section present but the components are format onnx, not qnn",
        ),
    ],
)
def test_qnn_section_is_present_exactly_when_the_components_are_qnn(edit, message):
    """export/README.md: `qnn` is present exactly when the components are format qnn."""
    data = qnn_manifest()
    validate_manifest(data, "m.json")
    check_qnn_section(data, "m.json")  # the valid QNN manifest passes
    edit(data)
    validate_manifest(data, "m.json")  # the schema cannot say it
    with pytest.raises(BundleError, match=f"m.json: {message}"):
        check_qnn_section(data, "m.json")
