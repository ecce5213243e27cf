"""int8 of convolution weights over 32 MiB (full-size UNets' 1280-channel 3x3 convolutions),
which ai-edge-quantizer's own chunked path cannot quantize (upstream issue #472).

The quantized values are checked against the int8 formula computed here with numpy, and a
single 59 MB convolution goes through the real TFLite int8 export and runs on LiteRT.
"""

import numpy as np
import pytest
import torch
from ai_edge_quantizer import qtyping
from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as library
from torch import nn

from sfmobile.bundle import TFLITE_SIGNATURE, TensorSpec
from sfmobile.export.large_weights import CHUNK_BYTES, chunked_large_weights
from sfmobile.export.targets import ExportTarget
from sfmobile.export.tflite import export_component


def symmetric_int8(weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The reference: round to nearest even, clip to the narrow range [-127, 127]."""
    return np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)


@pytest.fixture(scope="module")
def weight() -> np.ndarray:
    """A TFLite-layout (OHWI) convolution weight just over the 32 MiB threshold."""
    rng = np.random.default_rng(0)
    array = rng.standard_normal((160, 3, 3, 6000), dtype=np.float32)
    assert array.nbytes > CHUNK_BYTES
    return array


def params(scale: np.ndarray, quantized_dimension: int | None) -> qtyping.UniformQuantParams:
    return qtyping.UniformQuantParams(
        num_bits=8,
        quantized_dimension=quantized_dimension,
        scale=scale,
        zero_point=np.zeros(scale.shape, dtype=np.int32),
        symmetric=True,
    )


def test_per_channel_weight_over_threshold_quantizes_exactly(weight):
    scale = (np.abs(weight).max(axis=(1, 2, 3)) / 127).astype(np.float32)  # flat, as stored
    with chunked_large_weights():
        quantized = library.uniform_quantize(weight, params(scale, 0))
    expected = symmetric_int8(weight, scale[:, None, None, None])
    assert quantized.dtype == np.int8
    np.testing.assert_array_equal(quantized, expected)


def test_per_tensor_scale_over_threshold_quantizes_exactly(weight):
    scale = np.full((1, 1, 1, 1), np.abs(weight).max() / 127, dtype=np.float32)
    with chunked_large_weights():
        quantized = library.uniform_quantize(weight, params(scale, None))
    np.testing.assert_array_equal(quantized, symmetric_int8(weight, scale))


def test_library_function_restored_after_block():
    original = library.uniform_quantize
    with pytest.raises(RuntimeError), chunked_large_weights():
        assert library.uniform_quantize is not original
        raise RuntimeError("leave the block with an error")
    assert library.uniform_quantize is original


class WideConvolution(nn.Module):
    """SD-1.5's deepest 3x3 convolution: 1280 -> 1280 channels, 59 MB of fp32 weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1280, 1280, 3, padding=1)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.conv(sample)


def test_tflite_int8_export_of_a_59_mb_convolution(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    torch.manual_seed(0)
    module = WideConvolution().eval()
    shape = [1, 1280, 4, 4]
    target = ExportTarget(
        "unet",
        module,
        [TensorSpec("sample", shape, "float32")],
        [TensorSpec("model_output", shape, "float32")],
    )
    spec = export_component(target, "int8", "dynamic", None, tmp_path)

    path = tmp_path / spec.files[0]
    assert spec.precision == "int8-dynamic"
    assert path.stat().st_size < 0.3 * 1280 * 1280 * 9 * 4  # int8 weights, not fp32
    sample = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    runner = Interpreter(model_path=str(path)).get_signature_runner(TFLITE_SIGNATURE)
    got = runner(sample=sample.numpy())["model_output"]
    with torch.no_grad():
        expected = module(sample).numpy()
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert error < 0.03, f"int8 output differs from torch by {error:.3%} of its range"
