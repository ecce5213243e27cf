"""The LiteRT backend: runs a tflite bundle's models (three, or four with the encoder) with
`ai_edge_litert`'s interpreter.

Each model is opened once (all at construction when resident, else each when first needed and
closed when the next one is: residency.py), its tensors allocated once; every call writes into
preallocated input buffers (quantizing int8/uint8 inputs with the manifest's scale and zero
point), invokes, and reads the output (dequantized the same way). Tensors are bound by the
names of the file's signature, which the exporter made equal to the manifest's names.
"""

from __future__ import annotations

import os

import numpy as np

from sfmobile.backends.bundle_backend import (
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
from sfmobile.bundle import TFLITE_SIGNATURE, Bundle, ComponentSpec, TensorSpec
from sfmobile.errors import BundleError, InputError


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def bind(specs: list[TensorSpec], details: dict[str, dict], where: str) -> dict[str, int]:
    """Manifest tensor name -> interpreter tensor index, by name only; checks shape and dtype
    agree. No positional fallback: `timestep` and `guidance` are both float32 [B], so binding
    a renamed file by order could swap them without any error."""
    if sorted(details) != sorted(spec.name for spec in specs):
        raise BundleError(
            f"{where}: model tensors {sorted(details)} do not match the manifest's "
            f"{sorted(spec.name for spec in specs)} (tensors are bound by name)"
        )
    pairs = [(spec, details[spec.name]) for spec in specs]
    for spec, detail in pairs:
        shape, dtype = [int(d) for d in detail["shape"]], np.dtype(detail["dtype"]).name
        check_tensor(spec, shape, dtype, where)
    return {spec.name: int(detail["index"]) for spec, detail in pairs}


class TfliteModel:
    """One component's interpreter with its bound, preallocated inputs."""

    def __init__(self, bundle: Bundle, component: str, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec: ComponentSpec = bundle.manifest.components[component]
        self.name = component
        path = bundle.file(self.spec.files[0])
        where = f"{bundle.path}: component {component} ({self.spec.files[0]})"
        try:  # LiteRT raises ValueError / RuntimeError on a file that is not a model
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
            signatures = self.interpreter.get_signature_list()
        except Exception as error:
            raise BundleError(f"{where}: LiteRT cannot load it: {first_line(error)}") from None
        if list(signatures) != [TFLITE_SIGNATURE]:
            raise BundleError(
                f"{where}: expected one signature {TFLITE_SIGNATURE!r}, found {signatures}"
            )
        runner = self.interpreter.get_signature_runner(TFLITE_SIGNATURE)
        self.inputs = bind(self.spec.inputs, runner.get_input_details(), where)
        self.outputs = bind(self.spec.outputs, runner.get_output_details(), where)
        self.buffers = input_buffers(self.spec)

    def __call__(self, **values: np.ndarray) -> np.ndarray:
        for spec in self.spec.inputs:
            buffer = quantize_into(self.buffers[spec.name], values[spec.name], spec)
            self.interpreter.set_tensor(self.inputs[spec.name], buffer)
        try:
            self.interpreter.invoke()
        except Exception as error:  # a model that loaded but cannot run its own graph
            raise BundleError(
                f"component {self.name}: LiteRT failed: {first_line(error)}"
            ) from None
        output = self.spec.outputs[0]
        return dequantize(self.interpreter.get_tensor(self.outputs[output.name]), output)


class TfliteBackend(ComponentAccess):
    """threads: LiteRT's CPU threads per model (None: every core this process may use);
    resident: keep every model open (repeated generations); False: one at a time."""

    name = "tflite"

    def __init__(self, bundle: Bundle, threads: int | None = None, resident: bool = True) -> None:
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        count = threads or usable_cpus()
        self.info = model_info(bundle)
        self.bundle = bundle
        self.components = Components(
            component_names(bundle), lambda name: TfliteModel(bundle, name, count), resident
        )

    def encode_text(self, token_ids: np.ndarray) -> np.ndarray:
        return self.text_encoder(input_ids=token_ids)

    def predict(
        self,
        latents: np.ndarray,
        timestep: float,
        text: np.ndarray,
        guidance: float | None = None,
    ) -> np.ndarray:
        batch = latents.shape[0]
        inputs = {
            "sample": latents,
            "timestep": np.full((batch,), timestep, np.float32),
            "text_embeddings": text,
        }
        if self.info.guidance_input:
            if guidance is None:
                raise InputError("guidance: this bundle's UNet takes the guidance scale as input")
            inputs["guidance"] = np.full((batch,), guidance, np.float32)
        return self.unet(**inputs)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.decoder(latents=latents)

    def decode_tile(self, latents: np.ndarray) -> np.ndarray:
        return self.components.get("decoder_tile")(latents=latents)

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        if self.encoder is None:
            raise no_encoder(self.bundle)
        return self.encoder(image=image)
