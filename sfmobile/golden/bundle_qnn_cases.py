"""The bundle corpus's QNN cases (export/README.md "QNN bundles"): a valid QNN bundle of
placeholder context files, and one invalid variant per rule of the qnn schema additions and of
the reader's "qnn section present exactly when the components are qnn" check."""

import copy
import hashlib
from collections.abc import Callable
from typing import Any

from sfmobile.bundle import COMPONENT_NAMES
from sfmobile.golden.bundle_manifests import deleter, setter

# Each component's EPContext model and its context binary, replacing the ONNX placeholders.
QNN_FILES: dict[str, bytes | None] = {
    **{f"{name}.onnx": None for name in COMPONENT_NAMES},
    **{f"{name}_ctx.onnx": f"{name} EPContext placeholder\n".encode() for name in COMPONENT_NAMES},
    **{f"{name}_ctx_qnn.bin": f"{name} HTP context\n".encode() for name in COMPONENT_NAMES},
}
QNN_SECTION: dict[str, Any] = {
    "soc": "SM8650",
    "htp_arch": 75,
    "soc_model": 57,
    "qnn_sdk": "v2.51.0.260929181845",
    "placement": {
        name: {"htp_nodes": nodes, "io_nodes": 0, "cpu_nodes": []}
        for name, nodes in zip(COMPONENT_NAMES, (412, 1630, 212), strict=True)
    },
}


def with_qnn(then: Callable[[dict], None] | None = None) -> Callable[[dict], None]:
    """The base bundle exported as `--format qnn --precision w8a16 --soc SM8650` (text encoder
    fp16, as export writes it), then `then` (one broken rule) on top."""

    def mutate(data: dict) -> None:
        for name, component in data["components"].items():
            component["format"] = "qnn"
            component["precision"] = "fp16" if name == "text_encoder" else "w8a16"
            component["files"] = [f"{name}_ctx.onnx", f"{name}_ctx_qnn.bin"]
            del data["files"][f"{name}.onnx"]
        for file, content in QNN_FILES.items():
            if content is not None:
                data["files"][file] = {"sha256": hashlib.sha256(content).hexdigest(),
                                       "bytes": len(content)}  # fmt: skip
        data["created_by"]["recipe"] = {"format": "qnn", "precision": "w8a16",
            "quantization": None, "calibration": {"prompts": 8, "seed": 0, "steps": 8}}  # fmt: skip
        data["qnn"] = copy.deepcopy(QNN_SECTION)
        if then:
            then(data)

    return mutate


def cpu_fallback(data: dict) -> None:
    """Exported with --allow-cpu-fallback; placement may name components beyond the three."""
    data["qnn"]["placement"]["unet"]["cpu_nodes"] = ["/mid_block/attentions.0/Softmax"]
    data["qnn"]["placement"]["unet"]["io_nodes"] = 2
    data["qnn"]["placement"]["refiner"] = {"htp_nodes": 0, "io_nodes": 0, "cpu_nodes": []}


QNN_CASES = (
    ("valid-qnn", "a QNN bundle: EPContext model + context binary per component, the qnn section",
     with_qnn(), QNN_FILES, ""),
    ("valid-qnn-cpu-fallback", "qnn: cpu_nodes, io_nodes and an extra placement entry",
     with_qnn(cpu_fallback), QNN_FILES, ""),
    ("qnn-enum-precision", "qnn: an unknown component precision",
     with_qnn(setter("components/unet/precision", "w4a16")), QNN_FILES,
     "components/unet/precision"),
    ("qnn-recipe-precision", "qnn: an unknown recipe precision",
     with_qnn(setter("created_by/recipe/precision", "int4")), QNN_FILES,
     "created_by/recipe/precision"),
    ("qnn-enum-format", "an unknown component format",
     with_qnn(setter("components/unet/format", "dlc")), QNN_FILES, "components/unet/format"),
    ("qnn-section-missing", "components are qnn but there is no qnn section",
     with_qnn(deleter("qnn")), QNN_FILES, "the qnn section is missing"),
    ("qnn-section-on-onnx", "a qnn section in an ONNX bundle", setter("qnn", QNN_SECTION), {},
     "qnn section present but the components are format onnx"),
    ("qnn-mixed-formats", "one component qnn, another onnx",
     with_qnn(setter("components/decoder/format", "onnx")), QNN_FILES,
     "components.decoder is onnx"),
    ("qnn-section-not-object", "qnn is an object", with_qnn(setter("qnn", "SM8650")), QNN_FILES,
     "manifest invalid at qnn"),
    ("qnn-missing-soc", "qnn.soc is required", with_qnn(deleter("qnn/soc")), QNN_FILES,
     "'soc' is a required property"),
    ("qnn-missing-qnn-sdk", "qnn.qnn_sdk is required", with_qnn(deleter("qnn/qnn_sdk")),
     QNN_FILES, "'qnn_sdk' is a required property"),
    ("qnn-pattern-soc", "qnn.soc matches ^SM[0-9]{4}$", with_qnn(setter("qnn/soc", "sm8650")),
     QNN_FILES, "qnn/soc"),
    ("qnn-pattern-soc-newline", "qnn.soc ends at its four digits (Python's $ would allow a \\n)",
     with_qnn(setter("qnn/soc", "SM8650\n")), QNN_FILES, "qnn/soc"),
    ("qnn-htp-arch-string", "qnn.htp_arch is an integer", with_qnn(setter("qnn/htp_arch", "75")),
     QNN_FILES, "qnn/htp_arch"),
    ("qnn-htp-arch-minimum", "qnn.htp_arch is at least 68", with_qnn(setter("qnn/htp_arch", 66)),
     QNN_FILES, "qnn/htp_arch"),
    ("qnn-soc-model-zero", "qnn.soc_model is at least 1", with_qnn(setter("qnn/soc_model", 0)),
     QNN_FILES, "qnn/soc_model"),
    ("qnn-sdk-number", "qnn.qnn_sdk is a string", with_qnn(setter("qnn/qnn_sdk", 2.51)),
     QNN_FILES, "qnn/qnn_sdk"),
    ("qnn-extra-field", "additionalProperties false in qnn",
     with_qnn(setter("qnn/board", "pineapple")), QNN_FILES, "board"),
    ("qnn-placement-missing-unet", "placement names text_encoder, unet and decoder",
     with_qnn(deleter("qnn/placement/unet")), QNN_FILES, "'unet' is a required property"),
    ("qnn-placement-missing-io-nodes", "a placement entry's required io_nodes",
     with_qnn(deleter("qnn/placement/decoder/io_nodes")), QNN_FILES,
     "'io_nodes' is a required property"),
    ("qnn-placement-negative", "htp_nodes is at least 0",
     with_qnn(setter("qnn/placement/unet/htp_nodes", -1)), QNN_FILES,
     "qnn/placement/unet/htp_nodes"),
    ("qnn-placement-cpu-node-number", "cpu_nodes holds strings",
     with_qnn(setter("qnn/placement/unet/cpu_nodes", [3])), QNN_FILES,
     "qnn/placement/unet/cpu_nodes/0"),
    ("qnn-placement-extra-field", "additionalProperties false in a placement entry",
     with_qnn(setter("qnn/placement/text_encoder/cpu_ms", 1.5)), QNN_FILES, "cpu_ms"),
    ("qnn-placement-entry-not-object", "a placement entry is an object",
     with_qnn(setter("qnn/placement/refiner", [])), QNN_FILES, "qnn/placement/refiner"),
)  # fmt: skip
