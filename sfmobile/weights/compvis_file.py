"""Loading a CompVis single-file checkpoint (`v1-5-pruned-emaonly.safetensors` layout).

A single file carries no architecture, so it comes from a preset (sd15 by default). The file holds
all three components under `model.diffusion_model.`, `cond_stage_model.transformer.` and
`first_stage_model.`; tensors that are not weights (the training schedule's buffers, EMA copies)
are recognised and skipped; anything else unmapped is an error.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.presets import preset
from sfmobile.scheduler import SchedulerConfig
from sfmobile.weights.components import COMPONENTS
from sfmobile.weights.safe_io import read_tensors
from sfmobile.weights.strict import build_empty, load_strict

# Buffers of the original LatentDiffusion module: the scheduler, not weights.
SCHEDULE_BUFFERS = frozenset(
    {
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "logvar",
    }
)
SKIPPED_PREFIXES = ("model_ema.",)


def is_skipped(key: str) -> bool:
    return key in SCHEDULE_BUFFERS or key.startswith(SKIPPED_PREFIXES)


def load_single_file(path: Path, preset_name: str = "sd15") -> StableDiffusion:
    """A CompVis checkpoint (.safetensors, or .ckpt read with weights_only=True)."""
    config = preset(preset_name)
    tensors = {k: v for k, v in read_tensors(Path(path)).items() if not is_skipped(k)}
    modules = {}
    claimed: set[str] = set()
    for component in COMPONENTS:
        sub_config = component.config_of(config)
        key_map = component.compvis_key_map(sub_config)
        state: dict[str, torch.Tensor] = {}
        for key, tensor in tensors.items():
            if key in key_map:
                state[key_map[key]] = tensor
                claimed.add(key)
            elif key in component.ignored:
                claimed.add(key)
        module = build_empty(component.build, sub_config)
        load_strict(module, state, f"{path} ({component.name})")
        modules[component.name] = module
    unexpected = sorted(k for k in tensors if k not in claimed)
    if unexpected:
        load_strict(torch.nn.Module(), {}, str(path), unexpected)  # raises the standard report
    return StableDiffusion(
        config=config,
        unet=modules["unet"],
        text_encoder=modules["text_encoder"],
        vae=modules["vae"],
        scheduler=SchedulerConfig(),
        source=str(path),
    ).eval()
