"""What a training step of each stage costs: FLOPs per sample at 512x512 for the full-size presets
(SD-1.5 teacher, SnapFusion student), counted by torch's FlopCounterMode on meta tensors (no
weights, no memory), and seconds per step measured on this machine with demo-size random models
at 64x64 (FLOPs counted the same way, so the measured rate is FLOP/s achieved). docs/training.md
("What it costs") derives GPU-hours from these numbers.

    PYTHONPATH=. python scripts/train_step_cost.py [--steps 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from sfmobile.models.random_init import random_model
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL, Decoder
from sfmobile.presets import preset
from sfmobile.train.data.source import DataSpec
from sfmobile.train.stages.decoder import DecoderStage
from sfmobile.train.stages.distill import DistillConfig, DistillStage
from sfmobile.train.stages.real_data import RealData
from sfmobile.train.stages.unet import UnetStage, UnetTrainConfig


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def full_size_tflops() -> dict[str, float]:
    """Forward TFLOPs of each full-size component, batch 1, 512x512 (latents 64x64)."""
    sd15, snapfusion = preset("sd15"), preset("snapfusion")
    with torch.device("meta"):
        z, t = torch.empty(1, 4, 64, 64), torch.empty(1)
        text = torch.empty(1, 77, sd15.text_encoder.width)
        image, ids = torch.empty(1, 3, 512, 512), torch.zeros(1, 77, dtype=torch.int64)
        sd15_unet, student = UNet(sd15.unet), UNet(snapfusion.unet)
        vae, pruned = AutoencoderKL(sd15.vae), Decoder(sd15.vae.pruned())
        encoder = TextEncoder(sd15.text_encoder)
        parts = {
            "sd15 UNet": flops(lambda: sd15_unet(z, t, text)),
            "snapfusion UNet": flops(lambda: student(z, t, text)),
            "VAE encoder": flops(lambda: vae.encode(image)),
            "VAE decoder": flops(lambda: vae.decoder(z)),
            "pruned decoder": flops(lambda: pruned(z)),
            "text encoder": flops(lambda: encoder(ids)),
        }
    return {name: value / 1e12 for name, value in parts.items()}


def write_photos(folder: Path, count: int = 8, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a photo number {i}")
    return folder


def measured(stage, batch_size: int, steps: int) -> tuple[float, float]:
    """(seconds per step, FLOPs per step) of loss + backward + AdamW, after one warm-up step."""
    models = stage.trainable()
    params = [p for m in models.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    batches = stage.batches(0, batch_size, 0, 1)

    def step(i: int) -> None:
        loss, _ = stage.loss(models, next(batches), i, torch.Generator().manual_seed(i))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)
    per_step = flops(lambda: step(1))
    start = time.perf_counter()
    for i in range(steps):
        step(2 + i)
    return (time.perf_counter() - start) / steps, per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print("forward TFLOPs per sample at 512x512 (full size):")
    for name, value in full_size_tflops().items():
        print(f"  {name:16s} {value:8.3f}")

    with tempfile.TemporaryDirectory(prefix="train-step-cost-") as scratch:
        data = RealData(DataSpec(str(write_photos(Path(scratch)))), image_size=64)
        teacher = random_model("demo", seed=0)  # epsilon, as SD-1.5
        stages = {
            "train unet": UnetStage(
                teacher, teacher.config.unet, UnetTrainConfig(data.data, image_size=64)
            ),
            "distill 16->8": DistillStage(teacher, DistillConfig(8, 16), data=data),
            "train decoder": DecoderStage(
                teacher, Path(scratch) / "run", pool_size=4, heldout=1, data=data
            ),
        }
        print(f"\ndemo-size models, 64x64, batch {args.batch_size}, {args.threads} threads:")
        for name, stage in stages.items():
            seconds, per_step = measured(stage, args.batch_size, args.steps)
            print(
                f"  {name:14s} {seconds:7.3f} s/step  {per_step / 1e9:8.2f} GFLOP/step  "
                f"{per_step / seconds / 1e9:6.1f} GFLOP/s achieved"
            )


if __name__ == "__main__":
    main()
