"""The QNN backend: a QNN bundle's precompiled HTP contexts through ONNX Runtime's QNN plugin.

A QNN bundle's components are EPContext models (`<name>_ctx.onnx` + `.bin`, export/qnn.py)
compiled for one Snapdragon SoC; this backend opens them as the phone's ONNX Runtime does and
runs them on the HTP (on x86: QNN's HTP simulator, faithful but slow: a correctness check, not
a speed one). Everything else (IO binding, static batches) is the ONNX backend's.
"""

from __future__ import annotations

from sfmobile.backends.bundle_backend import model_info
from sfmobile.backends.onnx_backend import OnnxBackend
from sfmobile.bundle import Bundle
from sfmobile.errors import BundleError
from sfmobile.qnn.provider import check_context_sdk, htp_session, runtime_qnn_version
from sfmobile.qnn.socs import soc as find_soc


class QnnBackend(OnnxBackend):
    """encode_text / predict / decode on the (simulated) HTP of the bundle's SoC."""

    name = "qnn"
    format = "qnn"

    def __init__(self, bundle: Bundle, soc: str | None = None, resident: bool = True) -> None:
        """soc: the chip to run on (default: the one the bundle was compiled for); a bundle
        compiled for another chip is refused, since its context binary would not load there.
        resident: keep every context open (else one at a time, residency.py)."""
        section = bundle.manifest.qnn
        if section is None:
            raise BundleError(f"{bundle.path}: manifest has no qnn section (not a QNN bundle)")
        compiled = find_soc(section["soc"])
        device = find_soc(soc) if soc else compiled
        if device != compiled:
            raise BundleError(
                f"{bundle.path}: compiled for {compiled.name} ({compiled.marketing_name}), "
                f"cannot run on {device.name} ({device.marketing_name}): export it again with "
                f"--soc {device.name}"
            )
        check_context_sdk(section["qnn_sdk"], runtime_qnn_version(), bundle.path)
        self.bundle = bundle
        self.info = model_info(bundle)
        # A node off the HTP was accepted at export (--allow-cpu-fallback) and recorded in the
        # placement; otherwise one appearing now is an error, not a silent CPU fallback.
        fallback = any(p["cpu_nodes"] or p["io_nodes"] for p in section["placement"].values())
        self.open_components(lambda path: htp_session(path, device, None, fallback), resident)
