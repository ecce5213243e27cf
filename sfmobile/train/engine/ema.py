"""Exponential moving average of the trainable weights (what diffusion teachers sample with).

decay_t = min(decay, (1 + t) / (10 + t)): the average forgets the random initialisation quickly
in a short run and settles at `decay` (the warm-up diffusers' EMAModel uses).
"""

from __future__ import annotations

import torch
from torch import nn

from sfmobile.errors import CheckpointError


class Ema:
    """Shadow copies of every trainable parameter of the named modules."""

    def __init__(self, modules: dict[str, nn.Module], decay: float) -> None:
        self.modules = modules
        self.decay = decay
        self.shadow = {
            name: {key: p.detach().clone() for key, p in module.named_parameters()}
            for name, module in modules.items()
        }

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the shadows towards the current weights after optimizer step `step` (0-based)."""
        weight = 1.0 - self.decay_at(step)
        for name, module in self.modules.items():
            shadow = self.shadow[name]
            for key, parameter in module.named_parameters():
                shadow[key].lerp_(parameter.detach(), weight)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return self.shadow

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]], source: str) -> None:
        """Restore the shadows; `source` names the file in errors."""
        for name, shadow in self.shadow.items():
            for key, tensor in shadow.items():
                saved = state.get(name, {}).get(key)
                if saved is None or saved.shape != tensor.shape:
                    raise CheckpointError(f"{source}: EMA of {name}.{key} missing or mis-shaped")
                tensor.copy_(saved)

    @torch.no_grad()
    def copy_to_modules(self) -> None:
        """Overwrite the live weights with the averages (done once, before writing results)."""
        for name, module in self.modules.items():
            for key, parameter in module.named_parameters():
                parameter.copy_(self.shadow[name][key])
