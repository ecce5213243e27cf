"""Lets ai-edge-quantizer quantize convolution weights over 32 MiB.

ai-edge-quantizer (0.10) quantizes a tensor over 32 MiB in chunks: it flattens the tensor to
2-D and broadcasts the scales to that shape. Per-channel scales of a 4-D convolution weight
([O, 1, 1, 1] for TFLite's OHWI layout) do not broadcast to [O*H*W, I], so every int8 recipe
fails with "input operand has more dimensions than allowed by the axis remapping" on a UNet
with 1280-channel 3x3 convolutions (59 MB in fp32: full-size SD-1.5 and SnapFusion). This is
upstream google-ai-edge/ai-edge-quantizer#472.

Quantizing is elementwise (round(x / scale) + zero point, clipped), so cutting the tensor and
its scales along the leading axis into slices under 32 MiB and quantizing each slice with the
library's own function gives exactly its unchunked result, at the same bounded memory its
chunking was for. `chunked_large_weights` installs that for the duration of a quantize call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np

CHUNK_BYTES = 32 * 1024 * 1024  # the size over which the library takes its chunked path


def leading_slice(array: np.ndarray, start: int, stop: int, rows: int) -> np.ndarray:
    """`array[start:stop]` where the array varies along the leading axis (per-channel scales
    of a [rows, ...] tensor), the array itself where it broadcasts along it."""
    return array[start:stop] if array.ndim and array.shape[0] == rows else array


@contextlib.contextmanager
def chunked_large_weights() -> Iterator[None]:
    """Within the block, tensors of rank 3 or more over CHUNK_BYTES are quantized one
    leading-axis slice at a time; everything else goes to the library unchanged."""
    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as library

    original = library.uniform_quantize

    def uniform_quantize(tensor_data, quantization_params, is_blockwise_quant=False):
        if is_blockwise_quant or tensor_data.ndim < 3 or tensor_data.nbytes <= CHUNK_BYTES:
            return original(tensor_data, quantization_params, is_blockwise_quant)
        params = library.fix_quantization_params_rank(tensor_data, quantization_params)
        rows = tensor_data.shape[0]
        step = max(1, CHUNK_BYTES // tensor_data[0].nbytes)
        pieces = []
        for start in range(0, rows, step):
            stop = min(start + step, rows)
            piece = dataclasses.replace(
                params,
                scale=leading_slice(params.scale, start, stop, rows),
                zero_point=leading_slice(params.zero_point, start, stop, rows),
            )
            pieces.append(original(tensor_data[start:stop], piece))
        return np.concatenate(pieces, axis=0)

    library.uniform_quantize = uniform_quantize
    try:
        yield
    finally:
        library.uniform_quantize = original
