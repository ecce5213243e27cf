"""TFLite tensors are bound to the manifest by name only (backends/tflite_backend.bind)."""

from __future__ import annotations

import numpy as np
import pytest

from sfmobile.backends.tflite_backend import bind
from sfmobile.bundle import TensorSpec
from sfmobile.errors import BundleError

SPECS = [TensorSpec("timestep", [1], "float32"), TensorSpec("guidance", [1], "float32")]


def detail(index: int) -> dict:
    return {"index": index, "shape": np.array([1]), "dtype": np.float32}


def test_tensors_bind_by_name_whatever_the_file_order():
    assert bind(SPECS, {"guidance": detail(7), "timestep": detail(3)}, "unet") == {
        "timestep": 3,
        "guidance": 7,
    }


def test_renamed_tensors_are_refused_not_bound_by_position():
    """Same count, shapes and dtypes: a positional fallback would silently bind them."""
    with pytest.raises(BundleError, match=r"unet: model tensors .* bound by name"):
        bind(SPECS, {"serving_t": detail(3), "serving_g": detail(7)}, "unet")
