"""Replay recordings: whole generations of the shipped demo model's ONNX fp32 bundle, every call
the pipeline makes to the backend written down (inputs and outputs), so the Kotlin Pipeline can
be run against a replay engine that checks each input it receives and returns the recorded
output, and must then give the same pixels (tests/golden/replay/).

Raw little-endian .f32 / .i32 / .u8 files plus one index.json per case. The bundle is exported
once with a UNet of batch 1, the image encoder and a 32-pixel tile decoder; the ONNX backend runs
a batch-2 call as two rows, so the same bundle records the batch-2 and batch-1 CFG paths (the
recorded manifest says which). The text-to-image cases' manifests leave the encoder out, as a
bundle exported without --with-encoder does; the image-to-image case starts from INIT_PICTURE
(stored as init-image.u8). Only the tiled-decode case keeps the tile decoder (the pipeline then
decodes 9 overlapping 4x4 latent tiles, tiled_decode.py); the others decode whole.
"""

import copy
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

GOLDEN_FORMAT = "sfmobile-replay-golden/1"
IMAGE_SIZE = 64  # the demo model's training size: 8x8 latents keep the recordings small
# (name, cfg_batch, steps, guidance, strength, tiled): CFG as one batch-2 call, as two batch-1
# calls, and off; image-to-image (strength: None is text-to-image) at 0.6, the last 4 of 8 steps;
# decoding in tiles with the bundle's tile decoder.
CASES = (
    ("cfg-batch2", 2, 8, 7.5, None, False),
    ("cfg-batch1", 1, 4, 4.5, None, False),
    ("guidance-off", 2, 4, 1.0, None, False),
    ("img2img", 2, 8, 7.5, 0.6, False),
    ("tiled-decode", 2, 4, 4.5, None, True),
)
DECODER_TILE = 32  # pixels: 4x4 latent tiles of the 8x8 latent
PROMPT = "a small red circle on the left of a blue background"
NEGATIVE = "blurry"
SEED = 1234


def init_picture() -> np.ndarray:
    """The image-to-image case's starting picture, uint8 [H, W, RGB]: a yellow disc on a
    red-to-blue horizontal ramp (deterministic, so the golden never depends on a file)."""
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    ramp = (x * 255 // (IMAGE_SIZE - 1)).astype(np.uint8)
    picture = np.stack([255 - ramp, np.full_like(ramp, 64), ramp], axis=-1)
    picture[(x - 40) ** 2 + (y - 24) ** 2 < 14**2] = (240, 220, 40)
    return picture


class RecordingBackend:
    """Wraps a backend; writes each call's inputs and output into `calls` (and files)."""

    def __init__(self, backend: Any, out_dir: Path, tiled: bool) -> None:
        self.backend = backend
        # No static batch: the pipeline then uses the cfg_batch it is given; the tile decoder
        # only where the case decodes in tiles.
        tile = backend.info.decoder_tile if tiled else None
        self.info = dataclasses.replace(backend.info, unet_batches=None, decoder_tile=tile)
        self.name = backend.name
        self.out_dir = out_dir
        self.calls: list[dict[str, Any]] = []
        self.text_outputs: list[np.ndarray] = []

    def save(self, array: np.ndarray, stem: str) -> dict[str, Any]:
        suffix = {np.dtype(np.float32): "f32", np.dtype(np.int32): "i32"}[array.dtype]
        file = f"{len(self.calls):02d}-{stem}.{suffix}"
        (self.out_dir / file).write_bytes(array.astype(array.dtype.newbyteorder("<")).tobytes())
        return {"file": file, "shape": list(array.shape)}

    def text_rows(self, text: np.ndarray) -> list[int]:
        """Which encode_text outputs, concatenated, the UNet's text input is (checked exactly)."""
        count = len(self.text_outputs)
        for rows in ([*range(count)], *([i] for i in range(count))):
            if np.array_equal(np.concatenate([self.text_outputs[i] for i in rows]), text):
                return rows
        raise AssertionError("the UNet's text input is not a concatenation of encode_text outputs")

    def encode_text(self, token_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(token_ids, dtype=np.int32)
        output = self.backend.encode_text(ids).astype(np.float32)
        call = {"call": "encode_text", "token_ids": self.save(ids, "token-ids")}
        call["output"] = self.save(output, "text-embeddings")
        self.calls.append(call)
        self.text_outputs.append(output)
        return output

    def predict(
        self, latents: np.ndarray, timestep: float, text: np.ndarray, guidance: float | None = None
    ) -> np.ndarray:
        output = self.backend.predict(latents, timestep, text, guidance).astype(np.float32)
        call = {
            "call": "predict",
            "latents": self.save(latents.astype(np.float32), "latents"),
            "timestep": timestep,
            "text_rows": self.text_rows(text),
            "guidance": guidance,
        }
        call["output"] = self.save(output, "model-output")
        self.calls.append(call)
        return output

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        output = self.backend.encode_image(image).astype(np.float32)
        call = {"call": "encode_image", "image": self.save(image.astype(np.float32), "image")}
        call["output"] = self.save(output, "latent-mean")
        self.calls.append(call)
        return output

    def decode(self, latents: np.ndarray) -> np.ndarray:
        output = self.backend.decode(latents).astype(np.float32)
        call = {"call": "decode", "latents": self.save(latents.astype(np.float32), "latents")}
        call["output"] = self.save(output, "image")
        self.calls.append(call)
        return output

    def decode_tile(self, latents: np.ndarray) -> np.ndarray:
        output = self.backend.decode_tile(latents).astype(np.float32)
        call = {"call": "decode_tile", "latents": self.save(latents.astype(np.float32), "tile")}
        call["output"] = self.save(output, "image-tile")
        self.calls.append(call)
        return output


def recorded_manifest(
    manifest: dict[str, Any], cfg_batch: int, encoder: bool, tiled: bool
) -> dict[str, Any]:
    """The bundle's manifest as the Kotlin side reads it for one case: the case's cfg_batch (and
    UNet batch), the encoder and the tile decoder only if the case uses them, no
    machine-specific source path, no files (the model files are not kept)."""
    data = copy.deepcopy(manifest)
    if not encoder:
        del data["components"]["encoder"]
    if not tiled:
        del data["components"]["decoder_tile"]
    data["guidance"]["cfg_batch"] = cfg_batch
    unet = data["components"]["unet"]
    for spec in unet["inputs"] + unet["outputs"]:
        spec["shape"][0] = cfg_batch
    data["created_by"]["source"] = "the shipped demo model (sfmobile/data/demo_model)"
    data["files"] = {}
    return data


def export_demo_bundle(folder: Path) -> Path:
    from sfmobile.export.bundle_export import export_bundle
    from sfmobile.weights import load_model

    model = load_model(None)
    return export_bundle(
        model,
        folder / "bundle",
        "onnx",
        "fp32",
        height=IMAGE_SIZE,
        width=IMAGE_SIZE,
        cfg_batch=1,
        with_encoder=True,
        decoder_tile=DECODER_TILE,
    )


def write_replay_vectors(out_dir: Path) -> dict:
    """Export the demo model once, record every case into out_dir/<case>/; return the index."""
    from sfmobile.backends.onnx_backend import OnnxBackend
    from sfmobile.bundle import read_bundle
    from sfmobile.pipeline import Pipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    with tempfile.TemporaryDirectory(prefix="sfmobile-replay-") as tmp:
        bundle = read_bundle(export_demo_bundle(Path(tmp)))
        manifest = json.loads((bundle.path / "manifest.json").read_text())
        backend = OnnxBackend(bundle, threads=1)
        for name, cfg_batch, steps, guidance, strength, tiled in CASES:
            case_dir = out_dir / name
            case_dir.mkdir(parents=True, exist_ok=True)
            for old in case_dir.iterdir():
                old.unlink()
            recorder = RecordingBackend(backend, case_dir, tiled)
            pipeline = Pipeline(recorder, cfg_batch=cfg_batch)
            request: dict[str, Any] = {
                "prompt": PROMPT,
                "negative_prompt": NEGATIVE,
                "steps": steps,
                "guidance": guidance,
                "seed": str(SEED),
            }
            img2img: dict[str, Any] = {}
            if strength is not None:
                picture = init_picture()
                (case_dir / "init-image.u8").write_bytes(picture.tobytes())
                img2img = {"init_image": Image.fromarray(picture), "strength": strength}
                request["strength"] = strength
                request["init_image"] = {"file": "init-image.u8", "shape": list(picture.shape),
                                         "layout": "H, W, RGB"}  # fmt: skip
            generation = pipeline.generate(
                PROMPT,
                NEGATIVE,
                steps=steps,
                guidance_scale=guidance,
                seed=SEED,
                height=IMAGE_SIZE,
                width=IMAGE_SIZE,
                **img2img,
            )
            pixels = np.asarray(generation.image, dtype=np.uint8)
            (case_dir / "pixels.u8").write_bytes(pixels.tobytes())
            (case_dir / "manifest.json").write_text(
                json.dumps(
                    recorded_manifest(manifest, cfg_batch, strength is not None, tiled), indent=2
                )
                + "\n"
            )
            index = {
                "format": GOLDEN_FORMAT,
                "request": request,
                "manifest": "manifest.json",
                "calls": recorder.calls,
                "pixels": {"file": "pixels.u8", "shape": list(pixels.shape), "layout": "H, W, RGB"},
            }
            (case_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
            cases.append(name)
    summary = {
        "format": GOLDEN_FORMAT,
        "model": "the shipped demo model, ONNX fp32, 64x64, with the image encoder and a "
        f"{DECODER_TILE}-pixel tile decoder",
        "cases": cases,
    }
    (out_dir / "index.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
