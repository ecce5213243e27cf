"""Two processes under torchrun (gloo, CPU) train the tiny teacher through the same Trainer.

The reference is the ranks themselves: rank 0 logs every rank's weight fingerprint and batch
indices, which must show identical weights after every step (gradients were averaged) and
disjoint data shards (rank r reads scenes r, r + 2, ...). This file is also the script torchrun
runs: `python -m torch.distributed.run --standalone --nproc_per_node=2 tests/test_train_ddp.py
VAE_DIR OUT`.
"""

import os
import subprocess
import sys
from pathlib import Path

import tiny_models
import torch

from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.engine.train_state import METRICS_FILE, MetricsLog
from sfmobile.train.stages.teacher import TeacherStage
from sfmobile.train.stages.vae import load_vae, save_vae
from sfmobile.weights.sfmobile_checkpoint import load_checkpoint

STEPS, BATCH = 3, 2
TINY_VAE = tiny_models.vae()
TINY_TEXT = tiny_models.TEXT
TINY_UNET = tiny_models.unet(16, 32)


def train_on_this_rank(vae_dir: Path, out: Path) -> None:
    """What each torchrun process runs."""
    torch.set_num_threads(1)
    stage = TeacherStage(load_vae(vae_dir), TINY_UNET, TINY_TEXT, seed=0)
    config = TrainConfig(out=out, steps=STEPS, batch_size=BATCH, log_every=1, lr=1e-3)
    Trainer(stage, config).run()


def test_two_ranks_keep_identical_weights_and_read_different_scenes(tmp_path):
    torch.manual_seed(0)
    save_vae(AutoencoderKL(TINY_VAE), tmp_path / "vae")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, str(tmp_path / "vae"), str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

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


if __name__ == "__main__":
    train_on_this_rank(Path(sys.argv[1]), Path(sys.argv[2]))
