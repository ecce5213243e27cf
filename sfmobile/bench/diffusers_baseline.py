"""What a user would otherwise run: diffusers' StableDiffusionPipeline with SD-1.5's
architecture (random weights built from config here: no download), DDIM with guidance 7.5,
PyTorch fp32. `scale="tiny"` builds the same layout at the tiny preset's width (for tests).

With fewer steps than the 50 compared against, the run is extrapolated: the measured run plus
the missing steps at the measured per-step time (first UNet call to last step's end / steps).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

BASELINE_STEPS = 50
GUIDANCE = 7.5
SCALES = {
    # diffusers' UNet defaults are SD-1.x's but for these two (runwayml's unet/config.json)
    "full": {
        "unet": {"cross_attention_dim": 768, "attention_head_dim": 8},
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
        "text": {"hidden_size": 768, "intermediate_size": 3072, "layers": 12, "heads": 12},
    },
    "tiny": {
        "unet": {
            "block_out_channels": (32, 64, 64),
            "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            "cross_attention_dim": 32,
            "attention_head_dim": 2,
        },
        "vae": {"block_out_channels": (32, 64), "layers_per_block": 1},
        "text": {"hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 4},
    },
}


def sd_text_encoder(hidden_size: int, intermediate_size: int, layers: int, heads: int):
    """SD-1.x's CLIP text model (random weights) at the given width and depth."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
    )
    return CLIPTextModel(config).eval()


def sd_tokenizer(folder: Path):
    """transformers' CLIPTokenizer over the vocabulary sfmobile ships (written to `folder`)."""
    from transformers import CLIPTokenizer

    from sfmobile.tokenizer import ClipTokenizer

    ClipTokenizer.default().save(folder)
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


def sd_scheduler(prediction_type: str = "epsilon"):
    """SD-1.x's DDIM configuration (runwayml's scheduler_config.json)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def sd_pipeline(scale: str):
    """A StableDiffusionPipeline of SD-1.5's layout at `scale`, random weights, fp32, CPU."""
    import torch
    from diffusers import AutoencoderKL
    from diffusers import UNet2DConditionModel as UNet

    from sfmobile.weights.diffusers_export import assemble

    spec = SCALES[scale]
    torch.manual_seed(0)
    levels = len(spec["vae"]["block_out_channels"])
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        latent_channels=4,
        **spec["vae"],
    )
    vocab = Path(tempfile.mkdtemp(prefix="sfmobile-bench-vocab-"))
    return assemble(
        UNet(**spec["unet"]).eval(),
        vae.eval(),
        sd_text_encoder(**spec["text"]),
        sd_tokenizer(vocab),
        sd_scheduler(),
    )


def timed_run(pipe, size: int, steps: int) -> tuple[float, float]:
    """(seconds of the whole call, seconds per denoising step)."""
    import torch

    marks: dict[str, float] = {}

    def on_unet_call(*_) -> None:  # a pre-hook that returns something replaces the inputs
        marks.setdefault("first_unet", time.perf_counter())

    hook = pipe.unet.register_forward_pre_hook(on_unet_call)

    def on_step_end(_pipe, _index, _t, kwargs):
        marks["last_step_end"] = time.perf_counter()
        return kwargs

    start = time.perf_counter()
    with torch.inference_mode():
        pipe(
            "a red bicycle leaning on a blue door",
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
    total = time.perf_counter() - start
    hook.remove()
    return total, (marks["last_step_end"] - marks["first_unet"]) / steps


def time_diffusers(scale: str, size: int, steps: int, repeats: int) -> dict:
    """`repeats` runs of `steps` steps after a 1-step warm-up, each extrapolated to 50 steps."""
    pipe = sd_pipeline(scale)
    timed_run(pipe, size, 1)
    runs = [timed_run(pipe, size, steps) for _ in range(repeats)]
    missing = BASELINE_STEPS - steps
    return {
        "times_s": [total + missing * per_step for total, per_step in runs],
        "measured_s": [total for total, _ in runs],
        "per_step_s": statistics.median(per_step for _, per_step in runs),
        "steps": BASELINE_STEPS,
        "measured_steps": steps,
        "extrapolated_from_steps": steps if missing else None,
    }
