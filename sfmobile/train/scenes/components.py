"""Connected-component labelling in plain numpy (scipy is not a dependency of sfmobile).

Pixels join when they are 4-neighbours with the same class. Each pixel starts labelled with
its own flat index; every sweep takes the minimum over same-class neighbours and then jumps
pointers (a pixel adopts its label's label), so a component converges to its smallest index in
O(log diameter)-ish sweeps of whole-array numpy operations.
"""

from __future__ import annotations

import numpy as np

from sfmobile.errors import InputError


def label_components(classes: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 4-connected regions of equal class.

    classes: int H x W; negative values are background and never labelled.
    Returns (labels int32 H x W: -1 on background, 0..n-1 numbered in raster order of each
    component's first pixel; n).
    """
    classes = np.asarray(classes)
    if classes.ndim != 2 or not np.issubdtype(classes.dtype, np.integer):
        raise InputError(
            f"classes must be a 2-D integer array, got {classes.dtype} {classes.shape}"
        )
    h, w = classes.shape
    foreground = classes >= 0
    if not foreground.any():
        return np.full((h, w), -1, dtype=np.int32), 0
    join_right = foreground[:, :-1] & (classes[:, :-1] == classes[:, 1:])
    join_down = foreground[:-1, :] & (classes[:-1, :] == classes[1:, :])
    sentinel = h * w
    labels = np.where(foreground, np.arange(h * w).reshape(h, w), sentinel)
    while True:
        new = labels.copy()
        pair_min = np.minimum(labels[:, :-1], labels[:, 1:])
        new[:, :-1] = np.where(join_right, np.minimum(new[:, :-1], pair_min), new[:, :-1])
        new[:, 1:] = np.where(join_right, np.minimum(new[:, 1:], pair_min), new[:, 1:])
        pair_min = np.minimum(labels[:-1, :], labels[1:, :])
        new[:-1, :] = np.where(join_down, np.minimum(new[:-1, :], pair_min), new[:-1, :])
        new[1:, :] = np.where(join_down, np.minimum(new[1:, :], pair_min), new[1:, :])
        flat = new.reshape(-1)
        flat[foreground.reshape(-1)] = flat[flat[foreground.reshape(-1)]]  # pointer jumping
        if np.array_equal(new, labels):
            break
        labels = new
    roots, dense = np.unique(labels[foreground], return_inverse=True)
    out = np.full((h, w), -1, dtype=np.int32)
    out[foreground] = dense.astype(np.int32)
    return out, len(roots)
