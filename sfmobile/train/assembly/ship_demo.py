"""Assemble the demo model that ships in the package from the training runs' outputs.

The 8-step student checkpoint gives the UNet, the text encoder and the scheduler (its
default_steps and default_guidance are what `sfmobile generate` uses); the compressed decoder's
run folder gives the VAE. The result is saved as an sfmobile checkpoint with fp16 weights and
refused above SIZE_LIMIT_BYTES, so the wheel stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from sfmobile.errors import CheckpointError, ConfigError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.train.stages.decoder import with_decoder
from sfmobile.train.stages.vae import load_vae
from sfmobile.weights.sfmobile_checkpoint import is_sfmobile_checkpoint, save_checkpoint

SIZE_LIMIT_BYTES = 40_000_000  # 40 MB (decimal, as the export command prints sizes)
SHIP_DTYPE = torch.float16


@dataclass(frozen=True)
class ComponentSize:
    name: str
    parameters: int
    bytes: int


def component_sizes(model: StableDiffusion, dtype: torch.dtype = SHIP_DTYPE) -> list[ComponentSize]:
    """Bytes of each component's tensors once floating ones are cast to `dtype`, as
    save_checkpoint writes them (the file adds a small header)."""
    sizes = []
    for name, module in model.modules().items():
        parameters = sum(p.numel() for p in module.parameters())
        total = 0
        for tensor in module.state_dict().values():
            itemsize = dtype.itemsize if tensor.is_floating_point() else tensor.element_size()
            total += tensor.numel() * itemsize
        sizes.append(ComponentSize(name, parameters, total))
    return sizes


def describe_sizes(sizes: list[ComponentSize]) -> str:
    return ", ".join(f"{s.name} {s.bytes / 1e6:.2f} MB" for s in sizes)


def assemble_demo(student_path: Path, decoder_path: Path) -> StableDiffusion:
    """The student's UNet, text encoder and scheduler with the decoder run's VAE (which must read
    the same latents: channels, scaling factor, up-sampling depth)."""
    from sfmobile.weights import load_model

    student_path, decoder_path = Path(student_path), Path(decoder_path)
    if not is_sfmobile_checkpoint(student_path):
        raise CheckpointError(
            f"--student {student_path}: not an sfmobile checkpoint (no sfmobile.json); expected "
            "a distillation run's student folder, e.g. runs/s8/student"
        )
    student = load_model(student_path)
    vae = load_vae(decoder_path)
    try:
        model = with_decoder(student, vae)
    except ConfigError as error:
        raise CheckpointError(
            f"--decoder {decoder_path} does not decode --student {student_path}'s latents: {error}"
        ) from error
    source = f"ship-demo: student {student_path}, decoder {decoder_path}"
    return replace(model, source=source).eval()


def ship_demo(
    student_path: Path, decoder_path: Path, out: Path, limit_bytes: int | None = None
) -> list[ComponentSize]:
    """Write the assembled demo model to `out` in fp16; refused (nothing written) above
    `limit_bytes` (default SIZE_LIMIT_BYTES). Returns the size of each component."""
    limit_bytes = SIZE_LIMIT_BYTES if limit_bytes is None else limit_bytes
    model = assemble_demo(student_path, decoder_path)
    sizes = component_sizes(model)
    total = sum(s.bytes for s in sizes)
    if total > limit_bytes:
        raise InputError(
            f"--student {student_path} + --decoder {decoder_path}: {total / 1e6:.2f} MB in fp16 "
            f"exceeds the {limit_bytes / 1e6:.0f} MB a shipped demo model may weigh "
            f"({describe_sizes(sizes)}); nothing written to {out}"
        )
    save_checkpoint(model, Path(out), dtype=SHIP_DTYPE)
    make_world_readable(Path(out))
    return sizes


def make_world_readable(folder: Path) -> None:
    """Package data must be readable by every user of an installed sfmobile, whatever the umask
    of whoever shipped it (staged outputs otherwise follow the umask, staged_folder.py)."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
