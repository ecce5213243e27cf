"""ONNX Runtime sessions on QNN's HTP backend through the onnxruntime-qnn plugin.

onnxruntime-qnn (the `qnn` extra) is a plugin execution provider: its library is registered with
ONNX Runtime once per process, then added to a session's options for its devices. On x86 the HTP
backend is QNN's simulator: bit-faithful to the phone's NPU, far slower.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnxruntime as ort

from sfmobile.errors import BundleError, InputError
from sfmobile.qnn.socs import Soc

EP_NAME = "QNNExecutionProvider"
MISSING = (
    "the QNN execution provider is not installed: pip install 'sfmobile[qnn]' "
    "(the onnxruntime-qnn wheel, x86-64 Linux/Windows)"
)
_registered = False


def qnn_devices() -> list:
    """The plugin's devices, registering its library the first time (InputError if missing)."""
    global _registered
    if not _registered:
        try:
            import onnxruntime_qnn
        except ImportError:
            raise InputError(MISSING) from None
        ort.register_execution_provider_library(EP_NAME, onnxruntime_qnn.get_library_path())
        _registered = True
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        raise InputError(f"{MISSING}: registered, but it offers no device")
    return devices


def htp_options(soc: Soc) -> dict[str, str]:
    """Provider options for one SoC. Float graphs (and the float parts of a mixed one) run in
    float16 (enable_htp_fp16_precision=1, also the provider's default); quantized ops ignore it.

    offload_graph_io_quantization=0: the graph-edge Quantize/Dequantize of a QDQ model are
    compiled into the HTP context, whose inputs and outputs are then float32. With the default
    (1) they stay ONNX Runtime CPU nodes around the context, and running a compiled context of
    the tiny UNet (three inputs, 8-step calibration) crashed ONNX Runtime 1.32 + onnxruntime-qnn
    2.7.0 with a segmentation fault (the same graph compiled with 0 runs)."""
    return {
        "backend_type": "htp",
        "htp_arch": str(soc.htp_arch),
        "soc_model": str(soc.soc_model),
        "enable_htp_fp16_precision": "1",
        "offload_graph_io_quantization": "0",
    }


def htp_session(
    model: Path,
    soc: Soc,
    context_file: Path | None = None,
    allow_cpu_fallback: bool = True,
) -> ort.InferenceSession:
    """A session whose graph runs on the HTP. context_file: compile ahead of time and write the
    EPContext model there (its `.bin` beside it). allow_cpu_fallback False: a node the HTP
    rejects is an error instead of running on the CPU."""
    options = ort.SessionOptions()
    if not allow_cpu_fallback:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if context_file is not None:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_embed_mode", "0")
        options.add_session_config_entry("ep.context_file_path", str(context_file))
    options.add_provider_for_devices(qnn_devices(), htp_options(soc))
    return ort.InferenceSession(str(model), options)


def runtime_qnn_version() -> str:
    """The QNN SDK release the installed onnxruntime-qnn carries (e.g. `2.51.0`)."""
    qnn_devices()
    from onnxruntime_qnn import build_and_package_info

    return str(build_and_package_info.qnn_version)


def major_minor(version: str) -> tuple[int, int] | None:
    """(2, 51) of `2.51.0`, `v2.51.0.260929181845` or `2.51`; None for anything else."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)*", version.strip())
    return (int(match[1]), int(match[2])) if match else None


def check_context_sdk(compiled: str, runtime: str, where: Path) -> None:
    """Refuse contexts compiled by another QNN major.minor than the runtime that would load them:
    QNN promises no compatibility of stored context binaries across releases, while patch
    releases of one minor interoperate (the rule and its sources: android_app's QnnRuntime.kt,
    which the phone applies with its qnn-runtime version)."""
    bundle, ours = major_minor(compiled), major_minor(runtime)
    if bundle is None or bundle != ours:
        raise BundleError(
            f"{where}: contexts compiled with QNN SDK {compiled}, but the installed "
            f"onnxruntime-qnn carries QNN {runtime}: export the bundle again with this "
            "onnxruntime-qnn, or install one built on the bundle's QNN release"
        )
