"""Reading a user's .npy array without ever unpickling and with errors that name the option.

numpy's own messages mislead here (a text file gets "load it unsafely with allow_pickle"), so the
file is checked step by step: the NumPy magic, the header, a numeric dtype, and a payload of
exactly the size the header announces (also refusing headers that claim terabytes).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sfmobile.errors import InputError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"


def read_npy(path: Path, option: str) -> np.ndarray:
    """The array in a .npy file given as `option`; InputError naming both on any problem."""
    path = Path(path)
    where = f"{option} {path}"
    if path.is_dir():
        raise InputError(f"{where}: is a folder, expected a .npy file")
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(NPY_MAGIC))
            if head.startswith(ZIP_MAGIC):
                raise InputError(
                    f"{where}: is a .npz archive; save the one array with numpy.save (.npy)"
                )
            if head != NPY_MAGIC:
                raise InputError(f"{where}: not a .npy file (no NumPy header)")
            stream.seek(0)
            return read_checked(stream, path.stat().st_size, where)
    except FileNotFoundError:
        raise InputError(f"{where}: no such file") from None
    except OSError as error:
        raise InputError(f"{where}: cannot read ({error.strerror})") from None


def read_checked(stream, file_size: int, where: str) -> np.ndarray:
    """Header, dtype and payload size first; then the numbers."""
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(stream)
    except (ValueError, SyntaxError, TypeError) as error:
        raise InputError(f"{where}: malformed .npy header ({error})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InputError(f"{where}: holds {dtype} values, not numbers; refused")
    expected = math.prod(shape) * dtype.itemsize
    if file_size - stream.tell() != expected:
        raise InputError(
            f"{where}: header announces {list(shape)} {dtype} ({expected} bytes) but the file "
            f"holds {file_size - stream.tell()} bytes after it (truncated or not .npy)"
        )
    data = np.frombuffer(stream.read(expected), dtype=dtype)
    order = "F" if fortran else "C"
    return data.reshape(shape, order=order).astype(dtype.newbyteorder("="), copy=True)
