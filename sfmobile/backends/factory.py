"""Open a backend by name over a path: a checkpoint for torch, a bundle for onnx and tflite."""

from __future__ import annotations

from pathlib import Path

from sfmobile.backends.base import Backend
from sfmobile.errors import InputError

BACKENDS = ("torch", "onnx", "tflite", "qnn")


def default_backend(path: Path | None) -> str:
    """The backend a model runs on when none is named: a bundle's own format (its recipe),
    anything else torch. An unreadable manifest picks onnx, whose reader then names the fault."""
    import json

    from sfmobile.bundle import MANIFEST

    if path is None or not (Path(path) / MANIFEST).is_file():
        return "torch"
    try:
        fmt = json.loads((Path(path) / MANIFEST).read_text())["created_by"]["recipe"]["format"]
    except (OSError, ValueError, KeyError, TypeError):
        return "onnx"
    return fmt if fmt in BACKENDS else "onnx"


def open_backend(
    path: Path | None,
    name: str,
    preset: str | None = None,
    verify: str = "full",
    soc: str | None = None,
    resident: bool = True,
) -> Backend:
    """torch: a diffusers folder, sfmobile checkpoint or CompVis file, or no path for the shipped
    demo model; onnx/tflite/qnn: a bundle of that format (checksums verified unless
    verify="sizes"); soc: qnn only, the chip to run on (default: the bundle's). resident: a
    bundle's components all stay loaded (repeated generations); False loads each when needed
    and releases the one before (a one-shot generation's peak memory; backends/residency.py).
    A torch model is one set of modules in memory either way."""
    if name not in BACKENDS:
        raise InputError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
    if path is None:
        if name != "torch":
            raise InputError(
                f"--backend {name}: needs --model, the path of an exported {name} bundle "
                "(only the torch backend runs the shipped demo model without one)"
            )
        from sfmobile.backends.torch_backend import TorchBackend
        from sfmobile.weights import load_model

        return TorchBackend(load_model(None, preset))
    path = Path(path)
    if name == "torch":
        from sfmobile.bundle import MANIFEST

        if (path / MANIFEST).is_file():
            raise InputError(
                f"--model {path} is an exported bundle: use --backend onnx, tflite or qnn "
                "(the torch backend runs checkpoints)"
            )
        from sfmobile.backends.torch_backend import TorchBackend
        from sfmobile.weights import load_model

        return TorchBackend(load_model(path, preset))
    from sfmobile.bundle import read_bundle

    bundle = read_bundle(path, verify=verify)
    formats = {spec.format for spec in bundle.manifest.components.values()}
    if formats != {name}:
        raise InputError(
            f"--backend {name}: bundle {path} holds {', '.join(sorted(formats))} models"
        )
    if name == "qnn":
        from sfmobile.backends.qnn_backend import QnnBackend

        return QnnBackend(bundle, soc, resident)
    if name == "onnx":
        from sfmobile.backends.onnx_backend import OnnxBackend

        return OnnxBackend(bundle, resident=resident)
    from sfmobile.backends.tflite_backend import TfliteBackend

    return TfliteBackend(bundle, resident=resident)
