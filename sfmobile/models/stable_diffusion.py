"""The loaded model: three torch modules plus what the pipeline needs to run them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sfmobile.config import ModelConfig
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.scheduler import SchedulerConfig


@dataclass
class StableDiffusion:
    """config: the architecture; tokenizer_dir: vocab.json + merges.txt, or None for the
    vocabulary sfmobile ships; source: where the weights came from (for messages and manifests);
    loras: the LoRA files merged into the weights ({"file", "sha256", "scale"}, weights/lora.py);
    guidance_range: the (low, high) guidance scales a distilled model was trained for (outside
    it the images degrade: `generate` warns), None when not distilled or unknown."""

    config: ModelConfig
    unet: UNet
    text_encoder: TextEncoder
    vae: AutoencoderKL
    scheduler: SchedulerConfig
    tokenizer_dir: Path | None = None
    source: str = ""
    loras: list[dict] = field(default_factory=list)
    guidance_range: tuple[float, float] | None = None

    def modules(self) -> dict[str, object]:
        return {"unet": self.unet, "text_encoder": self.text_encoder, "vae": self.vae}

    def eval(self) -> StableDiffusion:
        for module in (self.unet, self.text_encoder, self.vae):
            module.eval().requires_grad_(False)
        return self
