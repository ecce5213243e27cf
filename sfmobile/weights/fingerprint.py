"""One hash of a set of weights, whatever file format held them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
from torch import nn


def weights_fingerprint(modules: Mapping[str, nn.Module]) -> str:
    """sha256 over every tensor of the named modules (module, tensor name, dtype, raw bytes):
    a bundle names the exact weights it came from with it, and a training run that continues
    trained weights derives its seed from it."""
    digest = hashlib.sha256()
    for component, module in modules.items():
        for name, tensor in module.state_dict().items():
            digest.update(f"{component}.{name}:{tensor.dtype}".encode())
            digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    return digest.hexdigest()
