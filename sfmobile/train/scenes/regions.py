"""Connected-component labelling of a class map, for the scene analyser: scipy.ndimage.label on
each class's mask (4-connectivity), numbered the way the analyser reads them.

(Named `regions` so it is not confused with weights/components.py, the model's three parts.)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    labels = np.full(classes.shape, -1, dtype=np.int32)
    count = 0
    for value in np.unique(classes[classes >= 0]):
        mask = classes == value
        found, n = ndimage.label(mask)  # 4-connectivity: scipy's default structure in 2-D
        labels[mask] = found[mask] - 1 + count
        count += n
    flat = labels.reshape(-1)
    foreground = flat >= 0
    _, first = np.unique(flat[foreground], return_index=True)  # raster index of each's 1st pixel
    raster_rank = np.empty(count, dtype=np.int32)
    raster_rank[np.argsort(first)] = np.arange(count, dtype=np.int32)
    flat[foreground] = raster_rank[flat[foreground]]
    return labels, count
