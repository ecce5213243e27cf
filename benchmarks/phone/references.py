"""Published phone numbers the measured ones are set beside (quoted, never measured here).

Times in ms. unet_call_ms is one UNet call; unet_total_ms all calls of a generation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Reference:
    label: str
    source: str
    model: str
    device: str
    steps: int | None = None
    text_encoder_ms: float | None = None
    unet_call_ms: float | None = None
    unet_total_ms: float | None = None
    decoder_ms: float | None = None
    total_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def implied_total_ms(self, steps: int, calls_per_step: int = 2) -> float | None:
        """Text encoder + steps x calls x one UNet call + decoder, for references that give
        per-call times only (CFG as two batch-1 calls; tokenizer and scheduler left out)."""
        parts = (self.text_encoder_ms, self.unet_call_ms, self.decoder_ms)
        if self.total_ms is not None or any(p is None for p in parts):
            return None
        return self.text_encoder_ms + steps * calls_per_step * self.unet_call_ms + self.decoder_ms


GOOGLE_S23 = Reference(
    label="Google, SD-1.4, S23 Ultra GPU",
    source="Speed Is All You Need (arXiv 2304.11267), as quoted by SnapFusion",
    model="SD-1.4, 512x512",
    device="Samsung Galaxy S23 Ultra (GPU)",
    steps=20,
    total_ms=11_500,
)
SNAPFUSION_IPHONE = Reference(
    label="SnapFusion, iPhone 14 Pro",
    source="SnapFusion (arXiv 2306.00980)",
    model="SnapFusion efficient UNet + compressed decoder, 512x512",
    device="iPhone 14 Pro",
    steps=8,
    unet_total_ms=1_840,
    total_ms=1_960,
)
AIHUB_S24 = Reference(
    label="AI Hub SD-1.5 w8a16, S24",
    source="Qualcomm AI Hub (quic/ai-hub-models perf.yaml), per call",
    model="SD-1.5 w8a16 QNN context binaries, 512x512",
    device="Samsung Galaxy S24 (NPU)",
    text_encoder_ms=2.3,
    unet_call_ms=76.7,
    decoder_ms=203,
)
AIHUB_S25 = Reference(
    label="AI Hub SD-1.5 w8a16, S25",
    source="Qualcomm AI Hub (quic/ai-hub-models perf.yaml), per call",
    model="SD-1.5 w8a16 QNN context binaries, 512x512",
    device="Samsung Galaxy S25 (NPU)",
    text_encoder_ms=1.8,
    unet_call_ms=62.1,
    decoder_ms=180,
)
REFERENCES = (GOOGLE_S23, SNAPFUSION_IPHONE, AIHUB_S24, AIHUB_S25)
