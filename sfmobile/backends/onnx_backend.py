"""The ONNX Runtime backend: runs an ONNX bundle's components (three, or four with the encoder).

One InferenceSession per component: all created at once and kept (resident, for repeated
generations), or each created when first needed and closed when the next one is (one at a time,
for a one-shot generation's peak memory: residency.py). Every input and output lives in a numpy
buffer allocated with its session and bound to it through IO binding, so a call only copies the
caller's arrays into the bound input buffers and the result out of the bound output buffer.

Exported models have a static batch (the manifest's shapes): a call with fewer rows is padded by
repeating them (a batch-2 UNet asked for one row, e.g. guidance <= 1), a call with a multiple of
the batch runs in slices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import onnx
import onnxruntime as ort

from sfmobile.backends.bundle_backend import (
    NUMPY_DTYPES,
    check_tensor,
    component_names,
    dequantize,
    first_line,
    input_buffers,
    model_info,
    no_encoder,
    quantize_into,
)
from sfmobile.backends.residency import ComponentAccess, Components
from sfmobile.bundle import Bundle, ComponentSpec
from sfmobile.errors import BundleError, InputError, SfmobileError

# ONNX Runtime's type strings -> the manifest's dtype names.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
}


def check_session(session: ort.InferenceSession, spec: ComponentSpec, where: str) -> None:
    """The model's inputs and outputs are the manifest's: same names, shapes and dtypes."""
    for kind, specs, args in (
        ("inputs", spec.inputs, session.get_inputs()),
        ("outputs", spec.outputs, session.get_outputs()),
    ):
        found = {arg.name: arg for arg in args}
        if sorted(found) != sorted(t.name for t in specs):
            raise BundleError(
                f"{where}: model {kind} {sorted(found)} differ from the manifest's "
                f"{sorted(t.name for t in specs)}"
            )
        for tensor in specs:
            arg = found[tensor.name]
            check_tensor(tensor, list(arg.shape), ORT_DTYPES.get(arg.type, arg.type), where)


def check_external_data(path: Path, spec: ComponentSpec, where: str) -> None:
    """Closure rule 5: every external-data file the ONNX model names is one of the component's
    listed files (so it is checksummed and inside the bundle)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends
        raise BundleError(f"{where}: not an ONNX model: {first_line(error)}") from None
    folder = PurePosixPath(spec.files[0]).parent
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if str(folder / location) not in spec.files:
            raise BundleError(
                f"{where}: tensor {tensor.name} reads external data {location!r}, "
                "which is not one of the component's files"
            )


class BoundSession:
    """One component: its session and its IO-bound input/output buffers."""

    def __init__(
        self,
        bundle: Bundle,
        name: str,
        open_session: Callable[[Path], ort.InferenceSession],
        format: str = "onnx",
    ) -> None:
        self.name = name
        self.spec: ComponentSpec = bundle.manifest.components[name]
        if self.spec.format != format:
            raise BundleError(
                f"{bundle.path}: component {name} is {self.spec.format}, not {format}"
            )
        path = bundle.file(self.spec.files[0])
        where = f"{bundle.path}: component {name} ({self.spec.files[0]})"
        check_external_data(path, self.spec, where)
        try:  # ORT raises its own InvalidProtobuf / Fail / ... types
            self.session = open_session(path)
        except SfmobileError:
            raise
        except Exception as error:
            raise BundleError(
                f"{where}: ONNX Runtime cannot load it: {first_line(error)}"
            ) from None
        check_session(self.session, self.spec, where)
        self.inputs = input_buffers(self.spec)
        output = self.spec.outputs[0]
        self.output = np.zeros(output.shape, NUMPY_DTYPES[output.dtype])
        # OrtValues over the numpy buffers (no copy): writing a buffer changes the bound input.
        self.values = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self.inputs.items()}
        self.values[output.name] = ort.OrtValue.ortvalue_from_numpy(self.output)
        self.binding = self.session.io_binding()
        for tensor in self.spec.inputs:
            self.binding.bind_ortvalue_input(tensor.name, self.values[tensor.name])
        self.binding.bind_ortvalue_output(output.name, self.values[output.name])
        self.batch = self.spec.inputs[0].shape[0]

    def run(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """One call at the model's static batch: real-valued inputs -> float32 output (a copy)."""
        for tensor in self.spec.inputs:
            quantize_into(self.inputs[tensor.name], values[tensor.name], tensor)
        try:
            self.session.run_with_iobinding(self.binding)
        except Exception as error:  # a model that loaded but cannot run its own graph
            raise BundleError(
                f"component {self.name}: ONNX Runtime failed: {first_line(error)}"
            ) from None
        return dequantize(self.output, self.spec.outputs[0]).copy()

    def run_rows(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Any number of rows: padded up to, or sliced into, the static batch."""
        rows = next(iter(values.values())).shape[0]
        if rows == self.batch:
            return self.run(values)
        if self.batch % rows == 0:
            repeats = self.batch // rows
            padded = {k: np.concatenate([v] * repeats) for k, v in values.items()}
            return self.run(padded)[:rows]
        if rows % self.batch == 0:
            parts = [
                self.run({k: v[start : start + self.batch] for k, v in values.items()})
                for start in range(0, rows, self.batch)
            ]
            return np.concatenate(parts)
        raise InputError(
            f"{self.name}: {rows} rows, the bundle's {self.spec.inputs[0].name} has a static "
            f"batch of {self.batch}"
        )


class OnnxBackend(ComponentAccess):
    """encode_text / predict / decode on ONNX Runtime (see base.Backend for shapes).
    resident: keep every session open (repeated generations); False: one at a time."""

    name = "onnx"
    format = "onnx"  # the manifest's component format this backend runs

    def __init__(
        self,
        bundle: Bundle,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        resident: bool = True,
    ) -> None:
        self.bundle = bundle
        self.info = model_info(bundle)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # One at a time: without ONNX Runtime's CPU arena a closed session's memory goes back to
        # the system (with it, a half-channel int8 decoder's 785 MB stayed resident after the
        # session was deleted) and a decode peaks lower (full int8 decoder at 512x512: 1.34 GB
        # instead of 1.72 GB), at about 10% more decode time. Resident sessions keep the arena.
        options.enable_cpu_mem_arena = resident
        self.open_components(
            lambda path: ort.InferenceSession(str(path), options, providers=list(providers)),
            resident,
        )

    def open_components(
        self, open_session: Callable[[Path], ort.InferenceSession], resident: bool = True
    ) -> None:
        """One bound session per component, each opened by `open_session(model file)`: all now
        (resident) or each when first used."""
        self.components = Components(
            component_names(self.bundle),
            lambda name: BoundSession(self.bundle, name, open_session, self.format),
            resident,
        )
        self.unet_names = [t.name for t in self.bundle.manifest.components["unet"].inputs]

    def encode_text(self, token_ids: np.ndarray) -> np.ndarray:
        name = self.text_encoder.spec.inputs[0].name
        return self.text_encoder.run_rows({name: np.asarray(token_ids)})

    def predict(
        self,
        latents: np.ndarray,
        timestep: float,
        text: np.ndarray,
        guidance: float | None = None,
    ) -> np.ndarray:
        rows = latents.shape[0]
        values = [latents, np.full((rows,), timestep, np.float32), text]
        if "guidance" in self.unet_names:
            if guidance is None:
                raise InputError(
                    f"{self.bundle.path}: this UNet takes a guidance input: pass guidance"
                )
            values.append(np.full((rows,), guidance, np.float32))
        return self.unet.run_rows(dict(zip(self.unet_names, values, strict=True)))

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.decoder.run_rows({self.decoder.spec.inputs[0].name: latents})

    def decode_tile(self, latents: np.ndarray) -> np.ndarray:
        tile = self.components.get("decoder_tile")
        return tile.run_rows({tile.spec.inputs[0].name: latents})

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        if self.encoder is None:
            raise no_encoder(self.bundle)
        return self.encoder.run_rows({self.encoder.spec.inputs[0].name: image})
