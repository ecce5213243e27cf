"""Reading a safetensors file into tensors of their own, one copy in memory.

`safetensors.torch.load_file` returns tensors that are views of one private mapping of the whole
file: pages a tensor touches count in the process's resident set until every tensor of the file
is gone. A model whose parameters *are* those tensors (built on the meta device and assigned,
weights/strict.py) would then keep a whole checkpoint resident until its last component is freed,
which undoes the export's freeing of each component once converted. So safetensors validates the
file (header, dtypes, offsets, size) and this module reads each tensor's bytes with plain file
reads into memory that tensor alone owns.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors import safe_open

HEADER_LENGTH_BYTES = 8  # little-endian u64, then that many bytes of JSON, then the data

DTYPES = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "U16": torch.uint16,
    "I32": torch.int32,
    "U32": torch.uint32,
    "I64": torch.int64,
    "U64": torch.uint64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


def load_owned(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, each in its own (not file-mapped) memory. Raises what
    safetensors raises for a malformed file (SafetensorError, OSError, ValueError); a dtype torch
    lacks or a file that shrank while read is a ValueError naming the tensor."""
    if sys.byteorder != "little":  # safetensors stores little-endian data
        raise ValueError("reading safetensors needs a little-endian machine")
    with safe_open(str(path), framework="pt"):  # validates header, offsets and file size
        pass
    with open(path, "rb", buffering=0) as stream:
        length = int.from_bytes(stream.read(HEADER_LENGTH_BYTES), "little")
        header = json.loads(stream.read(length))
        start = HEADER_LENGTH_BYTES + length
        size = os.fstat(stream.fileno()).st_size
        tensors = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = DTYPES.get(info["dtype"])
            if dtype is None:
                raise ValueError(f"tensor {name!r}: dtype {info['dtype']} is not supported")
            begin, end = info["data_offsets"]
            if not 0 <= begin <= end <= size - start:  # the file changed since it was validated
                raise ValueError(f"tensor {name!r}: data offsets beyond the end of the file")
            data = torch.empty(end - begin, dtype=torch.uint8)
            stream.seek(start + begin)
            _read_exactly(stream, memoryview(data.numpy()), name)
            tensors[name] = data.view(dtype).reshape(info["shape"])
    return tensors


def _read_exactly(stream, buffer: memoryview, name: str) -> None:
    """Fill `buffer` from `stream` (one read returns at most about 2 GiB on Linux)."""
    done = 0
    while done < len(buffer):
        count = stream.readinto(buffer[done:])
        if not count:
            raise ValueError(f"tensor {name!r}: the file ends inside its data")
        done += count
