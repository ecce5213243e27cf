"""What a run measures between two log records, and where the records go besides metrics.jsonl:
TensorBoard scalars when `torch.utils.tensorboard` imports (the tensorboard package installed),
nothing otherwise."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sfmobile.train.data.batches import stream_report
from sfmobile.train.data.source import DataReport

TENSORBOARD_FOLDER = "tensorboard"


class Window:
    """Metric sums, steps and samples (all ranks together) since the last log record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.samples = 0
        self.start = time.perf_counter()

    def add(self, values: dict[str, float], samples: int) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        self.samples += samples

    def means(self) -> dict[str, float]:
        return {key: total / self.count for key, total in self.sums.items()}

    def timing(self) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        return {
            "seconds_per_step": seconds / self.count,
            "samples_per_second": self.samples / seconds,
        }


def data_totals(states: list[dict | None]) -> DataReport | None:
    """What every rank's --data readers read and skipped so far (None: no stream reports)."""
    reports = [stream_report(state) for state in states if state is not None]
    return DataReport.merged(reports) if reports else None


def data_fields(report: DataReport) -> dict[str, int]:
    """The metrics.jsonl fields of a data report (running totals over the run, all ranks)."""
    return {
        "data_samples_read": report.yielded,
        "data_unreadable_images": report.unreadable_images,
        "data_missing_captions": report.missing_captions,
        "data_corrupt_shards": len(report.corrupt_shards),
    }


class Scalars:
    """TensorBoard event files under out/tensorboard/ (rank 0), when TensorBoard is installed."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: metrics.jsonl only
            return
        self.writer = SummaryWriter(str(Path(out) / TENSORBOARD_FOLDER))

    def add(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
