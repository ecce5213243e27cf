"""What every bundle-backed runtime shares: the ModelInfo a manifest describes, the optional
encoder, (de)quantizing int8/uint8 inputs and outputs, and preallocated input buffers reused on
every call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sfmobile.backends.base import ModelInfo
from sfmobile.bundle import Bundle, ComponentSpec, TensorSpec
from sfmobile.errors import BundleError
from sfmobile.scheduler import SchedulerConfig

NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "int64": np.int64,
    "int8": np.int8,
    "uint8": np.uint8,
}


def model_info(bundle: Bundle) -> ModelInfo:
    manifest = bundle.manifest
    unet = manifest.components["unet"]
    text = manifest.components["text_encoder"].outputs[0]
    latent = manifest.latent
    tile = manifest.components.get("decoder_tile")
    return ModelInfo(
        scheduler=SchedulerConfig.from_dict(manifest.scheduler),
        scaling_factor=float(latent["scaling_factor"]),
        latent_channels=int(latent["channels"]),
        vae_downscale=manifest.image["height"] // latent["height"],
        text_width=text.shape[-1],
        tokenizer_dir=bundle.file(str(Path(manifest.tokenizer["vocab"]).parent)),
        unet_batches=(unet.inputs[0].shape[0],),
        image_size=(manifest.image["height"], manifest.image["width"]),
        guidance_input=bool(manifest.guidance["input"]),
        tokenizer=bundle.tokenizer(),
        guidance_range=_pair(manifest.guidance.get("distilled_range")),
        decoder_tile=tile.inputs[0].shape[-1] if tile else None,
    )


def _pair(values: list[float] | None) -> tuple[float, float] | None:
    return None if values is None else (float(values[0]), float(values[1]))


def encoder_of(bundle: Bundle) -> ComponentSpec | None:
    """The bundle's optional image encoder (image-to-image), None when it has none."""
    return bundle.manifest.components.get("encoder")


def component_names(bundle: Bundle) -> list[str]:
    """The bundle's components: the three every bundle has, then the optional ones it has."""
    optional = [name for name in ("encoder", "decoder_tile") if name in bundle.manifest.components]
    return ["text_encoder", "unet", "decoder", *optional]


def no_encoder(bundle: Bundle) -> BundleError:
    return BundleError(
        f"{bundle.path}: this bundle has no image encoder, which image-to-image needs; "
        "export it again with --with-encoder"
    )


def check_tensor(spec: TensorSpec, shape: list, dtype: str, where: str) -> None:
    """A model file's tensor agrees with the manifest (a dynamic dimension, None or a name,
    accepts any size), or a BundleError naming the component and tensor."""
    fixed = [d if isinstance(d, int) else None for d in shape]
    agrees = len(fixed) == len(spec.shape) and all(
        d is None or d == s for d, s in zip(fixed, spec.shape, strict=True)
    )
    if not agrees or dtype != spec.dtype:
        raise BundleError(
            f"{where}: tensor {spec.name} is {dtype} {shape} in the model, "
            f"the manifest says {spec.dtype} {spec.shape}"
        )


def first_line(error: BaseException) -> str:
    """The first non-empty line of a runtime's (often multi-line) error message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def quantize_into(buffer: np.ndarray, values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Write `values` (real numbers) into the model's input buffer, quantizing if the tensor is
    int8/uint8: q = clip(round(x / scale) + zero_point)."""
    if values.shape != buffer.shape:
        raise BundleError(
            f"input {spec.name}: shape {list(values.shape)}, the bundle expects {spec.shape}"
        )
    if spec.quantization is None:
        buffer[...] = values
        return buffer
    info = np.iinfo(buffer.dtype)
    q = np.round(values / spec.quantization.scale) + spec.quantization.zero_point
    buffer[...] = np.clip(q, info.min, info.max)
    return buffer


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """float32 real values of a model output."""
    if spec.quantization is None:
        return values.astype(np.float32, copy=False)
    q = spec.quantization
    return ((values.astype(np.float32) - q.zero_point) * np.float32(q.scale)).astype(np.float32)


def input_buffers(component: ComponentSpec) -> dict[str, np.ndarray]:
    """One zeroed array per model input, in the model's dtype, allocated once per pipeline."""
    return {t.name: np.zeros(t.shape, NUMPY_DTYPES[t.dtype]) for t in component.inputs}
