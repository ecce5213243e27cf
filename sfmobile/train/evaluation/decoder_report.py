"""What stage 4 reports about its compressed decoder (OUT/decoder/report.json): how much smaller,
how close to the full decoder, how much faster.

- parameters: of the full and the pruned Decoder, post_quant_conv included (the bundle's
  "decoder" is exactly that module).
- fidelity: PSNR (dB, 8-bit images as the pipeline rounds them) of the pruned decoder's images
  against the full decoder's, on HELDOUT_LATENTS teacher latents the pool never holds: captions
  of held-out scenes, seeds 2^32 + i (pool seeds are below 2^32).
- speed: median seconds of each decoder on one latent of the training image size, measured in
  the same process on TIMING_THREADS thread, alternating the two so a busy machine slows both
  alike. One thread because on a loaded 2-core machine two threads contend with other jobs and
  the timings become noise (measured: 1.9 s against 34 ms for the demo decoder).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
from rich.console import Console
from torch import nn

from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.sampling import to_uint8
from sfmobile.train.scenes.generator import heldout_prompts
from sfmobile.train.stages.latent_pool import generate_latents

HELDOUT_LATENTS = 64
HELDOUT_SEED_BASE = 2**32
TIMING_REPEATS = 20
TIMING_WARMUP = 3
TIMING_THREADS = 1


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def heldout_latents(
    teacher: StableDiffusion,
    count: int,
    data_seed: int,
    latent_size: int,
    console: Console,
    captions: Sequence[str] | None = None,
) -> torch.Tensor:
    """Teacher latents for held-out captions (the held-out scenes', or `captions`) and fixed
    seeds 2^32 + i (never in a pool)."""
    if captions is None:
        captions = [scene.caption for scene in heldout_prompts(count, seed=data_seed)]
    seeds = [HELDOUT_SEED_BASE + i for i in range(count)]
    return generate_latents(teacher, captions, seeds, latent_size, console, "held-out latents")


@torch.no_grad()
def decoded_uint8(vae: AutoencoderKL, latents: torch.Tensor) -> np.ndarray:
    """uint8 [N, H, W, 3] images of scaled latents, decoded as the pipeline decodes them."""
    images = [vae.decode(part / vae.config.scaling_factor) for part in latents.split(16)]
    return to_uint8(torch.cat(images))


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10 log10(255^2 / MSE) over all pixels (inf when identical)."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@torch.no_grad()
def median_seconds(
    modules: dict[str, nn.Module], latents: torch.Tensor, repeats: int = TIMING_REPEATS
) -> dict[str, float]:
    """Median wall time of one forward of each module on `latents`, the modules alternating,
    on TIMING_THREADS torch threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(TIMING_THREADS)
    try:
        return _median_seconds(modules, latents, repeats)
    finally:
        torch.set_num_threads(threads)


def _median_seconds(
    modules: dict[str, nn.Module], latents: torch.Tensor, repeats: int
) -> dict[str, float]:
    for module in modules.values():
        for _ in range(TIMING_WARMUP):
            module(latents)
    times: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(repeats):
        for name, module in modules.items():
            start = time.perf_counter()
            module(latents)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def decoder_report(
    teacher: StableDiffusion,
    pruned: AutoencoderKL,
    latents: torch.Tensor,
    image_size: int,
) -> dict:
    """The report.json contents for the pruned VAE against the teacher's, on held-out `latents`."""
    full = teacher.vae.eval()
    pruned = pruned.eval()
    reference, test = decoded_uint8(full, latents), decoded_uint8(pruned, latents)
    per_image = [psnr_db(r, t) for r, t in zip(reference, test, strict=True)]
    latent_size = image_size // full.config.downscale
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(
        (1, full.config.latent_channels, latent_size, latent_size), generator=generator
    )
    seconds = median_seconds({"full": full.decoder, "pruned": pruned.decoder}, probe)
    full_params, pruned_params = parameter_count(full.decoder), parameter_count(pruned.decoder)
    return {
        "parameters": {
            "full_decoder": full_params,
            "pruned_decoder": pruned_params,
            "ratio": pruned_params / full_params,
        },
        "psnr_db": psnr_db(reference, test),
        "psnr_db_worst_image": min(per_image),
        "heldout_latents": len(latents),
        "decode_seconds": {
            "full": seconds["full"],
            "pruned": seconds["pruned"],
            "speedup": seconds["full"] / seconds["pruned"],
            "batch": 1,
            "image_size": image_size,
            "threads": TIMING_THREADS,
            "repeats": TIMING_REPEATS,
        },
    }


def print_report(report: dict, console: Console) -> None:
    params, seconds = report["parameters"], report["decode_seconds"]
    console.print(
        f"decoder parameters: full {params['full_decoder']:,}, pruned {params['pruned_decoder']:,} "
        f"({params['ratio']:.1%})"
    )
    console.print(
        f"pruned vs full decoder on {report['heldout_latents']} held-out teacher latents: "
        f"PSNR {report['psnr_db']:.2f} dB (worst image {report['psnr_db_worst_image']:.2f} dB)"
    )
    console.print(
        f"decode time, batch 1 at {seconds['image_size']}x{seconds['image_size']}, "
        f"torch threads {seconds['threads']}: full {seconds['full'] * 1e3:.2f} ms, pruned "
        f"{seconds['pruned'] * 1e3:.2f} ms ({seconds['speedup']:.2f}x faster)"
    )
