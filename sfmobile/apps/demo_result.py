"""What a demo run is asked (DemoConfig, the backends it may name) and what it finds (DemoResult):
the records demo.py fills and demo_report.py renders, so neither imports the other's code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sfmobile.errors import InputError
from sfmobile.pipeline import Timings
from sfmobile.shipped import DEMO_IMAGE_SIZE

# backend name -> (bundle format, precision); torch runs the checkpoint itself (the reference).
RECIPES: dict[str, tuple[str, str] | None] = {
    "torch": None,
    "onnx-fp16": ("onnx", "fp16"),
    "onnx-int8": ("onnx", "int8"),
    "tflite-fp16": ("tflite", "fp16"),
    "tflite-int8": ("tflite", "int8"),
}
REFERENCE = "torch"
COMPONENTS = ("text_encoder", "unet", "decoder")


@dataclass(frozen=True)
class DemoConfig:
    """model None: the shipped demo model. backends: names from RECIPES; torch is always run
    (the reference the others are compared with). size: square image side, None: the demo
    model's DEMO_IMAGE_SIZE. torch_threads: threads of the torch reference, None: torch's own
    choice (on a loaded machine 1 avoids OpenMP's spin-waiting: a demo UNet call measured 14 ms
    on 1 thread against 2.8 s on 2, with another process busy on the 2 cores)."""

    out: Path = Path("sfmobile-demo")
    model: Path | None = None
    prompts: int = 4
    backends: tuple[str, ...] = tuple(RECIPES)
    size: int | None = None
    seed: int = 0
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.backends if name not in RECIPES]
        if unknown:
            raise InputError(
                f"--backends {','.join(unknown)}: expected names from {', '.join(RECIPES)}"
            )
        if self.prompts < 1:
            raise InputError(f"--prompts must be >= 1, got {self.prompts}")
        if self.size is not None and (self.size < 8 or self.size % 8):
            raise InputError(f"--size must be a positive multiple of 8, got {self.size}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise InputError(f"--torch-threads must be >= 1, got {self.torch_threads}")

    @property
    def image_size(self) -> int:
        return DEMO_IMAGE_SIZE if self.size is None else self.size

    def backend_order(self) -> list[str]:
        """torch first, then the requested bundles in RECIPES order."""
        return [name for name in RECIPES if name == REFERENCE or name in self.backends]


@dataclass
class BundleResult:
    """One exported bundle: its folder, precision label and bytes per component, export time."""

    name: str
    path: Path
    precision: str
    component_bytes: dict[str, int]
    export_seconds: float


@dataclass
class BackendResult:
    """One backend's images (paths, one per prompt), their timings and, against the torch
    images of the same prompt and seed, PSNR (dB, inf when identical) and max pixel diff."""

    name: str
    precision: str
    images: list[Path] = field(default_factory=list)
    timings: list[Timings] = field(default_factory=list)
    psnr_db: list[float] = field(default_factory=list)
    max_pixel_diff: list[int] = field(default_factory=list)
    min_psnr_db: float | None = None  # sfmobile.verify's threshold for this precision


@dataclass
class DemoResult:
    config: DemoConfig
    source: str
    parameters: dict[str, int]  # per bundle component (COMPONENTS) of the torch model
    steps: int
    guidance: float
    prompts: list[str]
    seeds: list[int]
    torch_threads: int
    bundles: dict[str, BundleResult] = field(default_factory=dict)
    backends: dict[str, BackendResult] = field(default_factory=dict)
    wall_seconds: float = 0.0
