"""Two processes under torchrun (gloo, CPU) train the tiny teacher through the same Trainer.

Two references:
- the ranks themselves: rank 0 logs every rank's weight fingerprint and batch indices, which must
  show identical weights after every step and disjoint data shards (rank r reads scenes r, r + 2,
  ...);
- one process with the same global batch (2 ranks x 2 = 4 scenes a step): its weights after the
  same steps must equal the ranks' within float tolerance, and its step-1 gradient norm the
  ranks' (identical ranks alone would also pass with gradients summed instead of averaged; the
  norm would then double; the weights barely move with it, as gradient clipping and AdamW's
  first steps are nearly blind to the gradient's scale). The noise of each sample is drawn from
  the sample's scene index here, not from the (seed, rank, step) generator, so that one process
  and two draw the same noise for the same scene.

The second reference also holds with --grad-accumulation 2 on the ranks (batch 1 each, two
micro-batches a step, DDP all-reducing on the second only): still 4 scenes a step, the same 4.

This file is also the script torchrun runs: `python -m torch.distributed.run --standalone
--nproc_per_node=2 tests/test_train_ddp.py MODE VAE_DIR OUT` (MODE: teacher | per-sample |
accumulated).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_models
import torch
import torch.nn.functional as F

from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.engine.train_state import METRICS_FILE, STATE_FILE, MetricsLog, load_state
from sfmobile.train.stages.teacher import TeacherStage
from sfmobile.train.stages.vae import load_vae, save_vae
from sfmobile.weights.sfmobile_checkpoint import load_checkpoint

STEPS, BATCH = 3, 2
TINY_VAE = tiny_models.vae()
TINY_TEXT = tiny_models.TEXT
TINY_UNET = tiny_models.unet(16, 32)


class PerSampleNoiseTeacher(TeacherStage):
    """The teacher's v-prediction loss with each sample's timestep and noise drawn from its scene
    index, so the draws do not depend on which rank (or how many) read the scene."""

    def loss(self, models, batch, step, generator):
        with torch.no_grad():
            latents = self.vae.encode(batch["image"]) * self.vae.config.scaling_factor
        timesteps, noise = [], []
        for index in batch["index"].tolist():
            draws = torch.Generator().manual_seed(1000 * step + index)
            timesteps.append(int(torch.randint(0, 1000, (1,), generator=draws)))
            noise.append(torch.randn(latents.shape[1:], generator=draws))
        timesteps, noise = torch.tensor(timesteps), torch.stack(noise)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        target = self.scheduler.velocity(latents, noise, timesteps)
        token_ids = torch.tensor(self.tokenizer.encode_batch(batch["caption"]), dtype=torch.int64)
        prediction = models["unet"](noisy, timesteps.float(), models["text_encoder"](token_ids))
        return F.mse_loss(prediction, target), {}


def train(mode: str, vae_dir: Path, out: Path, batch_size: int = BATCH) -> None:
    """What each torchrun process runs (and, with the global batch, the one-process reference)."""
    torch.set_num_threads(1)
    stage_type = TeacherStage if mode == "teacher" else PerSampleNoiseTeacher
    caption_dropout = 0.1 if mode == "teacher" else 0.0
    stage = stage_type(load_vae(vae_dir), TINY_UNET, TINY_TEXT, 0, caption_dropout)
    micro = 2 if mode == "accumulated" else 1
    config = TrainConfig(
        out=out,
        steps=STEPS,
        batch_size=batch_size // micro,
        grad_accumulation=micro,
        log_every=1,
        lr=1e-3,
    )
    Trainer(stage, config).run()


def torchrun(mode: str, vae_dir: Path, out: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, mode, str(vae_dir), str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_ranks_keep_identical_weights_and_read_different_scenes(tmp_path):
    torch.manual_seed(0)
    save_vae(AutoencoderKL(TINY_VAE), tmp_path / "vae")
    out = tmp_path / "run"
    torchrun("teacher", tmp_path / "vae", out)

    records = MetricsLog(out / METRICS_FILE).records()
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    fingerprints = [r["params_sha256_by_rank"] for r in records]
    assert all(rank0 == rank1 for rank0, rank1 in fingerprints)
    assert len({rank0 for rank0, _ in fingerprints}) == STEPS  # and the weights did change
    for step, record in enumerate(records):
        rank0, rank1 = record["batch_indices_by_rank"]
        assert rank0 == [4 * step + 0, 4 * step + 2]
        assert rank1 == [4 * step + 1, 4 * step + 3]
    assert load_checkpoint(out / "teacher").scheduler.prediction_type == "v_prediction"


@pytest.mark.parametrize("mode", ["per-sample", "accumulated"])
def test_two_ranks_end_with_the_weights_of_one_process_with_the_global_batch(tmp_path, mode):
    torch.manual_seed(0)
    save_vae(AutoencoderKL(TINY_VAE), tmp_path / "vae")
    torchrun(mode, tmp_path / "vae", tmp_path / "two")
    train("per-sample", tmp_path / "vae", tmp_path / "one", batch_size=2 * BATCH)

    two = MetricsLog(tmp_path / "two" / METRICS_FILE).records()
    one = MetricsLog(tmp_path / "one" / METRICS_FILE).records()
    # Same weights and scenes at step 1: the loss and gradient are those of the same 4 samples.
    assert abs(two[0]["loss"] - one[0]["loss"]) <= 1e-6 * one[0]["loss"]
    assert abs(two[0]["grad_norm"] - one[0]["grad_norm"]) <= 1e-4 * one[0]["grad_norm"]
    weights_two = load_state(tmp_path / "two" / STATE_FILE).modules
    weights_one = load_state(tmp_path / "one" / STATE_FILE).modules
    start = PerSampleNoiseTeacher(load_vae(tmp_path / "vae"), TINY_UNET, TINY_TEXT, 0, 0.0)
    for name, initial in start.trainable().items():
        for key, before in initial.state_dict().items():
            a, b = weights_two[name][key], weights_one[name][key]
            if key.endswith("weight") and "norm" not in key:
                # AdamW's first update is about lr * sign(gradient): an element whose gradient
                # is near zero may step either way under another summation order, so the
                # tolerance is relative to the whole tensor's update, not elementwise.
                update = (b - before).norm()
                assert update > 0, f"{name}.{key} did not train"
                assert (a - b).norm() <= 0.01 * update, f"{name}.{key}"
            else:
                torch.testing.assert_close(a, b, rtol=0, atol=1e-4, msg=f"{name}.{key}")


if __name__ == "__main__":
    train(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
