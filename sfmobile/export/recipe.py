"""The export recipe (format, precision, quantization): its allowed values, its validation and
the precision label a component records in the manifest, in one place for the bundle exporter,
the CLI and the per-format converters (onnx.py, tflite.py, qnn.py).

Errors name the CLI options (--format, --precision, --quantization), which is what a user typed;
a converter called directly raises the same messages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sfmobile.errors import InputError

FORMATS = ("onnx", "tflite", "qnn")
PRECISIONS = ("fp32", "fp16", "int8")  # onnx and tflite
QNN_PRECISIONS = ("w8a16", "w8a8", "fp16")  # qnn: static QDQ for the HTP, or its float16
QUANTIZATIONS = ("dynamic", "static")  # int8 only
# What a component's manifest entry records as its precision.
LABELS = ("fp32", "fp16", "int8-dynamic", "int8-static", "w8a16", "w8a8")


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: int8 carries its quantization, every other precision None."""

    format: str
    precision: str
    quantization: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InputError(f"--format {self.format!r}: expected one of {', '.join(FORMATS)}")
        if self.format == "qnn":
            if self.precision not in QNN_PRECISIONS:
                raise InputError(
                    f"--precision {self.precision!r}: --format qnn takes "
                    f"{', '.join(QNN_PRECISIONS)}"
                )
            if self.quantization is not None:
                raise InputError("--quantization does not apply to --format qnn (w8a* are static)")
            return
        if self.precision not in PRECISIONS:
            raise InputError(
                f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}"
            )
        if self.precision != "int8":
            if self.quantization is not None:
                raise InputError(
                    f"--quantization {self.quantization!r} applies to --precision int8 only, "
                    f"not {self.precision}"
                )
        elif self.quantization not in QUANTIZATIONS:
            raise InputError(
                f"--quantization {self.quantization!r}: --precision int8 needs one of "
                f"{', '.join(QUANTIZATIONS)}"
            )

    @classmethod
    def from_options(cls, format: str, precision: str, quantization: str | None) -> Recipe:
        """The recipe the CLI options ask for: int8 without --quantization means dynamic."""
        if precision == "int8" and format != "qnn" and quantization is None:
            quantization = "dynamic"
        return cls(format, precision, quantization)

    @property
    def label(self) -> str:
        """The component precision label (one of LABELS)."""
        return f"int8-{self.quantization}" if self.quantization else self.precision

    @property
    def calibrated(self) -> bool:
        """Whether the recipe quantizes activations statically, from calibration samples."""
        return self.quantization == "static" or self.precision in ("w8a16", "w8a8")

    def check_calibration(self, component: str, samples: list[tuple[np.ndarray, ...]] | None):
        """Refuse a calibrated recipe without samples for `component`."""
        if self.calibrated and not samples:
            raise InputError(f"calibration: {self.label} of {component} needs calibration samples")
