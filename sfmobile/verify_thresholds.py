"""verify's pass/fail limits, one row per recipe label (sfmobile/export/recipe.py: LABELS).

A component is judged by its relative error, ||ours - reference|| / ||reference|| (L2 over every
output value of the check), which does not depend on the scale of a model's activations nor
grow with the image size the way a max abs error does; a final image by its PSNR against the
fp32 PyTorch image. Each component is judged at its own manifest precision (a QNN bundle's text
encoder is fp16 whatever its UNet is); images at the UNet's.

The numbers were set from measured bundles, with the margin rule of docs/verify.md ("How the
thresholds were set"); the measurements are there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfmobile.errors import BundleError
from sfmobile.export.recipe import LABELS


@dataclass(frozen=True)
class Thresholds:
    """Largest relative error per component (the UNet's at every step) and the smallest PSNR
    of every final image."""

    text_encoder: float
    unet: float
    decoder: float
    encoder: float
    min_psnr_db: float

    def component(self, name: str) -> float:
        """The limit of a bundle component; the tile decoder is the decoder at a smaller size."""
        return getattr(self, "decoder" if name == "decoder_tile" else name)


# int8-static's text encoder limit, which the w8a* rows share (no w8a* text encoder exists).
INT8_STATIC_TEXT_ENCODER = 0.09
# 3x the worst relative error measured on a bundle that passed (rounded up to one significant
# digit), the worst image PSNR minus 10 dB; fp32 rows are floors. docs/verify.md has the table.
THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(text_encoder=1e-4, unet=1e-4, decoder=1e-4, encoder=1e-4, min_psnr_db=50.0),
    "fp16": Thresholds(
        text_encoder=0.004, unet=0.03, decoder=0.004, encoder=0.006, min_psnr_db=42.0
    ),
    "int8-dynamic": Thresholds(
        text_encoder=0.07, unet=0.08, decoder=0.2, encoder=0.08, min_psnr_db=23.0
    ),
    "int8-static": Thresholds(
        text_encoder=INT8_STATIC_TEXT_ENCODER, unet=0.6, decoder=0.2, encoder=0.2, min_psnr_db=17.0
    ),
    # No w8a* text encoder exists (QNN compiles it in fp16); its limit is int8-static's.
    "w8a16": Thresholds(
        text_encoder=INT8_STATIC_TEXT_ENCODER, unet=0.2, decoder=0.3, encoder=0.2, min_psnr_db=18.0
    ),
    "w8a8": Thresholds(
        text_encoder=INT8_STATIC_TEXT_ENCODER, unet=0.4, decoder=0.3, encoder=0.2, min_psnr_db=19.0
    ),
}
if set(THRESHOLDS) != set(LABELS):  # tests/test_verify_components.py checks every label
    raise RuntimeError("verify THRESHOLDS must have exactly one row per recipe label")


def thresholds_for(label: str, where: str) -> Thresholds:
    """The row of `label`; a BundleError naming `where` (the manifest entry) when verify has
    none, rather than judging a bundle against the wrong precision's limits."""
    if label not in THRESHOLDS:
        raise BundleError(
            f"{where}: precision {label!r} has no verify thresholds "
            f"(known: {', '.join(THRESHOLDS)})"
        )
    return THRESHOLDS[label]
