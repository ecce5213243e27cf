"""The committed golden vectors (tests/golden/) are exactly what `sfmobile golden` writes, and
agree with the independent references (diffusers' DDIMScheduler, transformers' CLIPTokenizer)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from typer.testing import CliRunner

from sfmobile.bench.diffusers_baseline import sd_tokenizer
from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.noise import gaussian_noise

GOLDEN = Path(__file__).parent / "golden"


def test_committed_golden_vectors_match_regeneration(tmp_path):
    _register_commands()
    result = CliRunner().invoke(app, ["golden", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    recorded = GOLDEN / "cpuinfo"  # recorded from machines (test_bench.py), not generated
    committed = sorted(
        p.relative_to(GOLDEN)
        for p in GOLDEN.rglob("*")
        if p.is_file() and not p.is_relative_to(recorded)
    )
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == committed
    for name in committed:
        fresh, kept = (tmp_path / name).read_bytes(), (GOLDEN / name).read_bytes()
        if name.parts[0] == "replay" and name.suffix in (".f32", ".u8"):
            assert_replay_file_close(name, fresh, kept)
        else:
            assert fresh == kept, name


def assert_replay_file_close(name: Path, fresh: bytes, kept: bytes) -> None:
    """Replay recordings hold ONNX Runtime's floats, which may differ in the last bits from one
    CPU to the next (AVX2 vs AVX-512 kernels): stale means more than rounding apart."""
    if name.suffix == ".u8":
        diff = np.abs(np.frombuffer(fresh, np.uint8).astype(int) - np.frombuffer(kept, np.uint8))
        assert diff.max() <= 1, name
    else:
        np.testing.assert_allclose(
            np.frombuffer(fresh, "<f4"), np.frombuffer(kept, "<f4"), rtol=1e-4, atol=1e-5,
            err_msg=str(name),
        )  # fmt: skip


SCHEDULER_INDEX = json.loads((GOLDEN / "scheduler" / "index.json").read_text())


@pytest.mark.parametrize("case", SCHEDULER_INDEX["cases"], ids=lambda c: c["name"])
def test_scheduler_trajectories_agree_with_diffusers(case):
    config = case["config"]
    reference = DDIMScheduler(
        num_train_timesteps=config["num_train_timesteps"],
        beta_start=config["beta_start"],
        beta_end=config["beta_end"],
        beta_schedule=config["beta_schedule"],
        prediction_type=config["prediction_type"],
        timestep_spacing=config["timestep_spacing"],
        steps_offset=config["steps_offset"],
        set_alpha_to_one=config["set_alpha_to_one"],
        clip_sample=config["clip_sample"],
    )
    reference.set_timesteps(case["steps"])
    assert reference.timesteps.tolist() == case["timesteps"]
    seed = SCHEDULER_INDEX["initial_latents"]["noise_seed"]
    shape = tuple(SCHEDULER_INDEX["initial_latents"]["shape"])
    sample = torch.from_numpy(gaussian_noise(seed, shape))
    golden = np.fromfile(GOLDEN / "scheduler" / case["file"], dtype="<f4")
    golden = golden.reshape(case["file_shape"])
    for index, t in enumerate(reference.timesteps):
        output = sample * 0.5 + torch.tensor(0.001, dtype=torch.float32) * float(t)
        sample = reference.step(output, t, sample).prev_sample
        # diffusers' float32 sqrt is off by an ulp now and then (docs/scheduler.md): 1e-5 rel.
        np.testing.assert_allclose(golden[index], sample.numpy(), rtol=1e-5, atol=1e-6)


def test_tokenizer_cases_agree_with_transformers(tmp_path):
    reference = sd_tokenizer(tmp_path)  # transformers' CLIPTokenizer over our vocabulary
    cases = json.loads((GOLDEN / "tokenizer" / "cases.json").read_text())["cases"]
    for case in cases:
        expected = reference(case["text"], padding="max_length", truncation=True).input_ids
        assert case["ids"] == expected, case["text"]
