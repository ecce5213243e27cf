"""ONNX models whose weights live in side files, rewritten without loading the weights.

A model over protobuf's 2 GiB limit keeps its tensors in external data files. Every converter
step (trace, onnxsim, fp16, the quantizers) writes its own files, named its own way; the bundle
wants one `<name>.onnx` beside one `<name>.onnx.data`. `gather_external_data` writes that pair
by copying each tensor's bytes from wherever it lies, one tensor at a time: `onnx.load` then
`onnx.save` would hold all the weights (3 GB for a full-size UNet) to move a file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx.external_data_helper import (
    ExternalDataInfo,
    _get_all_tensors,
    _get_initializer_tensors,
    uses_external_data,
)

INLINE_BYTES = 1024  # raw tensors under this stay in the protobuf (onnx.save_model's default)
ALIGNMENT = 4096  # each tensor starts on a page, so a runtime can map it in place


def gather_external_data(source: Path, destination: Path) -> None:
    """Write the model at `source` as `destination` + `<destination name>.data`, holding every
    external tensor (in any number of files beside `source`) and every initializer of
    INLINE_BYTES or more."""
    model = onnx.load(str(source), load_external_data=False)
    data_name = destination.name + ".data"
    with open(destination.parent / data_name, "wb") as data:
        for tensor in _get_all_tensors(model):
            if uses_external_data(tensor):
                info = ExternalDataInfo(tensor)
                start = next_page(data)
                with open(source.parent / info.location, "rb") as stored:
                    stored.seek(info.offset or 0)
                    if info.length:
                        copy_bytes(stored, data, info.length)
                    else:
                        shutil.copyfileobj(stored, data)
                point_at(tensor, data_name, start, data.tell() - start)
        for tensor in _get_initializer_tensors(model):
            if tensor.HasField("raw_data") and len(tensor.raw_data) >= INLINE_BYTES:
                start = next_page(data)
                data.write(tensor.raw_data)
                tensor.ClearField("raw_data")
                point_at(tensor, data_name, start, data.tell() - start)
    onnx.save_model(model, str(destination))


def next_page(data) -> int:
    """Move the write position of `data` to the next ALIGNMENT boundary; returns it."""
    start = data.tell() + (-data.tell() % ALIGNMENT)
    data.seek(start)
    return start


def copy_bytes(source, destination, length: int, chunk: int = 64 * 1024 * 1024) -> None:
    """Copy exactly `length` bytes between open binary files, a bounded chunk at a time."""
    while length > 0:
        block = source.read(min(chunk, length))
        if not block:
            raise EOFError(f"{source.name}: external data ends {length} bytes early")
        destination.write(block)
        length -= len(block)


def point_at(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    """Make `tensor` refer to `length` bytes at `offset` of the file `location`."""
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)


def hide_weights(source: Path, destination: Path, op_types: tuple[str, ...]) -> list:
    """Write `source` as `destination` with every float initializer of INLINE_BYTES or more that
    no node of `op_types` reads turned into a graph input; returns those initializers (external
    ones still pointing at their data beside `source`) for `restore_weights`.

    For a quantizer that loads the whole model and copies it: ONNX Runtime's quantize_dynamic
    holds about three copies of every weight (14.2 GB for the SD-1.5 UNet), although it
    rewrites only MatMul/Gemm/Gather; the convolutions, half of a UNet's weights, need not be
    in memory at all. The graph stays valid for shape inference (inputs carry type and shape).
    """
    model = onnx.load(str(source), load_external_data=False)
    graph = model.graph
    read = {name for node in graph.node if node.op_type in op_types for name in node.input}
    hidden = [t for t in graph.initializer if t.name not in read and is_float_weight(t)]
    names = {t.name for t in hidden}
    kept = [t for t in graph.initializer if t.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend(
        onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in hidden
    )
    onnx.save_model(model, str(destination))
    return hidden


def is_float_weight(tensor: onnx.TensorProto) -> bool:
    """A float tensor of INLINE_BYTES or more (shape constants, int64, are never hidden: shape
    inference needs their values)."""
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    size = int(np.prod(tensor.dims)) * (4 if tensor.data_type == onnx.TensorProto.FLOAT else 2)
    return tensor.data_type in floats and size >= INLINE_BYTES


def restore_weights(source: Path, hidden: list, destination: Path) -> None:
    """Write `source` as `destination` with the initializers `hide_weights` took out put back
    (graph inputs again initializers). `destination` must sit beside both data files."""
    model = onnx.load(str(source), load_external_data=False)
    names = {t.name for t in hidden}
    inputs = [i for i in model.graph.input if i.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.graph.initializer.extend(hidden)
    onnx.save_model(model, str(destination))
