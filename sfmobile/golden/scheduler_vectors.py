"""Scheduler golden vectors: timesteps and whole DDIM trajectories for a model whose output is
a fixed float32 function of (sample, t), so another language can replay them exactly.

model_output(sample, t) = sample * 0.5f + 0.001f * float32(t)   (float32 arithmetic throughout)
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from sfmobile.noise import gaussian_noise
from sfmobile.scheduler import DdimScheduler, SchedulerConfig

GOLDEN_FORMAT = "sfmobile-scheduler-golden/1"
SHAPE = (1, 4, 8, 8)
SEED = 3
CASES = (
    ("sd15-epsilon-leading", SchedulerConfig(), 8),
    ("v-trailing", SchedulerConfig(prediction_type="v_prediction", timestep_spacing="trailing"), 8),
    ("v-leading-16", SchedulerConfig(prediction_type="v_prediction"), 16),
    ("epsilon-linspace", SchedulerConfig(timestep_spacing="linspace", steps_offset=0), 8),
    ("linear-alpha-one", SchedulerConfig(beta_schedule="linear", set_alpha_to_one=True), 8),
)


def model_output(sample: np.ndarray, t: int) -> np.ndarray:
    return sample * np.float32(0.5) + np.float32(0.001) * np.float32(t)


def write_scheduler_vectors(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, config, steps in CASES:
        scheduler = DdimScheduler(config)
        sample = gaussian_noise(SEED, SHAPE)
        timesteps = scheduler.timesteps(steps)
        trajectory = []
        for t in timesteps:
            sample = scheduler.step(model_output(sample, int(t)), int(t), sample, num_steps=steps)
            trajectory.append(sample.astype("<f4"))
        data = np.stack(trajectory).tobytes()
        file = f"{name}.f32"
        (out_dir / file).write_bytes(data)
        cases.append(
            {
                "name": name,
                "config": config.to_dict(),
                "steps": steps,
                "timesteps": [int(t) for t in timesteps],
                "alphas_cumprod_first_last": [
                    float(scheduler.alphas_cumprod[0]),
                    float(scheduler.alphas_cumprod[-1]),
                ],
                "file": file,
                "file_shape": [steps, *SHAPE],
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    index = {
        "format": GOLDEN_FORMAT,
        "spec": "docs/scheduler.md",
        "model_output": "sample * 0.5f + 0.001f * float32(t)",
        "initial_latents": {"noise_seed": SEED, "shape": list(SHAPE)},
        "file_layout": "latents after each step, little-endian float32, C order",
        "cases": cases,
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index
