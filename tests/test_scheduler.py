"""sfmobile.scheduler against diffusers' DDIMScheduler (the reference) and the DDPM algebra.

Float32 note: torch's CPU float32 sqrt is not correctly rounded (about 1 value in 5 is 1 ulp
off), while numpy's (and Kotlin's) is. So the numpy float32 path drifts from diffusers by a few
ulps over 50 steps; exactness of the algorithm is checked in float64 (tables cast like diffusers
casts them), and the float32 formulas by running our torch path against diffusers bit for bit.
"""

import itertools
import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from sfmobile.errors import ConfigError, InputError
from sfmobile.scheduler import (
    BETA_SCHEDULES,
    PREDICTION_TYPES,
    TIMESTEP_SPACINGS,
    DdimScheduler,
    SchedulerConfig,
)

# runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json, as published.
SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

TRAJECTORY_CASES = list(
    itertools.product(
        BETA_SCHEDULES, TIMESTEP_SPACINGS, PREDICTION_TYPES, (True, False), (8, 16, 50)
    )
)
TRAJECTORY_IDS = ["-".join(str(part) for part in case) for case in TRAJECTORY_CASES]


def diffusers_twin(config: SchedulerConfig, dtype: torch.dtype = torch.float32) -> DDIMScheduler:
    """diffusers' DDIMScheduler with the same schedule; float64 casts its tables afterwards."""
    kwargs = config.to_dict()
    del kwargs["default_steps"], kwargs["default_guidance"]
    reference = DDIMScheduler(**kwargs)
    reference.alphas_cumprod = reference.alphas_cumprod.to(dtype)
    reference.final_alpha_cumprod = reference.final_alpha_cumprod.to(dtype)
    return reference


def pseudo_model(sample: np.ndarray, t: int) -> np.ndarray:
    """A deterministic stand-in for the UNet: a fixed function of (sample, t)."""
    out = 0.9 * np.tanh(sample.astype(np.float64)) + 0.05 * np.cos(0.01 * float(t))
    return out.astype(sample.dtype)


def start_latents(dtype: type) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(dtype)


def run_ours(scheduler: DdimScheduler, sample, num_steps: int, as_torch: bool = False):
    for t in scheduler.timesteps(num_steps):
        as_numpy = sample.numpy() if as_torch else sample
        output = pseudo_model(as_numpy, t)
        output = torch.from_numpy(output) if as_torch else output
        sample = scheduler.step(output, t, sample, num_steps)
    return sample


def run_diffusers(reference: DDIMScheduler, sample: torch.Tensor, num_steps: int) -> np.ndarray:
    reference.set_timesteps(num_steps)
    for t in reference.timesteps:
        output = torch.from_numpy(pseudo_model(sample.numpy(), int(t)))
        sample = reference.step(output, int(t), sample).prev_sample
    return sample.numpy()


def config_for(beta_schedule, spacing, prediction, alpha_to_one) -> SchedulerConfig:
    return SchedulerConfig(
        beta_schedule=beta_schedule,
        timestep_spacing=spacing,
        prediction_type=prediction,
        set_alpha_to_one=alpha_to_one,
    )


# ---- schedule tables and timesteps -------------------------------------------------------


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
def test_alphas_cumprod_match_diffusers_to_the_ulp(beta_schedule):
    config = SchedulerConfig(beta_schedule=beta_schedule)
    ours = DdimScheduler(config).alphas_cumprod
    reference = diffusers_twin(config).alphas_cumprod.numpy()
    assert ours.dtype == np.float32
    # Bit-equal on FMA CPUs; torch.linspace without FMA may differ by one ulp.
    np.testing.assert_allclose(ours, reference, rtol=1.2e-7, atol=0)


@pytest.mark.parametrize("alpha_to_one", [True, False])
def test_final_alpha_cumprod_matches_diffusers(alpha_to_one):
    config = SchedulerConfig(set_alpha_to_one=alpha_to_one)
    expected = diffusers_twin(config).final_alpha_cumprod.item()
    assert DdimScheduler(config).final_alpha_cumprod == pytest.approx(expected, rel=1.2e-7)


@pytest.mark.parametrize("spacing", TIMESTEP_SPACINGS)
@pytest.mark.parametrize("steps_offset", [0, 1])
def test_timesteps_match_diffusers_for_every_step_count(spacing, steps_offset):
    config = SchedulerConfig(timestep_spacing=spacing, steps_offset=steps_offset)
    scheduler, reference = DdimScheduler(config), diffusers_twin(config)
    for n in range(1, 1001):
        reference.set_timesteps(n)
        expected = reference.timesteps.numpy()
        if expected.max() >= 1000:  # leading + offset past the table: we refuse (next test)
            continue
        ours = scheduler.timesteps(n)
        assert ours.dtype == np.int64
        # diffusers' trailing arange overshoots for some n and appends a -1; we stop at n.
        np.testing.assert_array_equal(ours, expected[:n], err_msg=f"num_steps={n}")
        assert (expected[n:] < 0).all()


def test_trailing_timesteps_omit_diffusers_negative_extra_step():
    config = SchedulerConfig(timestep_spacing="trailing")
    reference = diffusers_twin(config)
    reference.set_timesteps(61)
    assert len(reference.timesteps) == 62 and reference.timesteps[-1] == -1
    assert len(DdimScheduler(config).timesteps(61)) == 61


@pytest.mark.parametrize("num_steps", [0, 1001, True, 8.0])
def test_timesteps_reject_bad_step_counts(num_steps):
    with pytest.raises(InputError, match="num_steps"):
        DdimScheduler().timesteps(num_steps)


def test_timesteps_reject_leading_offset_past_the_table():
    with pytest.raises(InputError, match="num_steps=1000"):
        DdimScheduler(SchedulerConfig(steps_offset=1)).timesteps(1000)


def test_timesteps_default_to_config_default_steps():
    assert len(DdimScheduler(SchedulerConfig(default_steps=5)).timesteps()) == 5


# ---- whole trajectories ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("beta_schedule", "spacing", "prediction", "alpha_to_one", "num_steps"),
    TRAJECTORY_CASES,
    ids=TRAJECTORY_IDS,
)
def test_trajectory_matches_diffusers_in_float64(
    beta_schedule, spacing, prediction, alpha_to_one, num_steps
):
    config = config_for(beta_schedule, spacing, prediction, alpha_to_one)
    ours = run_ours(DdimScheduler(config), start_latents(np.float64), num_steps)
    reference = diffusers_twin(config, torch.float64)
    expected = run_diffusers(reference, torch.from_numpy(start_latents(np.float64)), num_steps)
    scale = max(1.0, float(np.abs(expected).max()))  # cosine + epsilon reaches ~6e4
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize(
    ("beta_schedule", "spacing", "prediction", "alpha_to_one", "num_steps"),
    TRAJECTORY_CASES,
    ids=TRAJECTORY_IDS,
)
def test_trajectory_in_torch_float32_is_bitwise_diffusers(
    beta_schedule, spacing, prediction, alpha_to_one, num_steps
):
    config = config_for(beta_schedule, spacing, prediction, alpha_to_one)
    start = torch.from_numpy(start_latents(np.float32))
    ours = run_ours(DdimScheduler(config), start.clone(), num_steps, as_torch=True)
    expected = run_diffusers(diffusers_twin(config), start.clone(), num_steps)
    np.testing.assert_array_equal(ours.numpy(), expected)


@pytest.mark.parametrize(
    ("spacing", "prediction"), list(itertools.product(TIMESTEP_SPACINGS, PREDICTION_TYPES))
)
def test_trajectory_in_numpy_float32_is_within_rounding_of_diffusers(spacing, prediction):
    config = config_for("scaled_linear", spacing, prediction, False)
    ours = run_ours(DdimScheduler(config), start_latents(np.float32), 50)
    expected = run_diffusers(
        diffusers_twin(config), torch.from_numpy(start_latents(np.float32)), 50
    )
    assert ours.dtype == np.float32
    # A few ulps per step from torch's 1-ulp sqrt, over 50 steps.
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("prediction", PREDICTION_TYPES)
def test_clip_sample_matches_diffusers(prediction):
    config = SchedulerConfig(prediction_type=prediction, clip_sample=True, clip_sample_range=0.5)
    start = torch.from_numpy(start_latents(np.float32)) * 3
    ours = run_ours(DdimScheduler(config), start.clone(), 8, as_torch=True)
    expected = run_diffusers(diffusers_twin(config), start.clone(), 8)
    np.testing.assert_array_equal(ours.numpy(), expected)


@pytest.mark.parametrize("as_torch", [False, True])
def test_step_rejects_timestep_outside_the_table(as_torch):
    sample = start_latents(np.float32)
    sample = torch.from_numpy(sample) if as_torch else sample
    with pytest.raises(InputError, match="timestep 1000"):
        DdimScheduler().step(sample, 1000, sample)


# ---- training helpers --------------------------------------------------------------------

BATCH_T = torch.tensor([0, 1, 250, 500, 999])


def batch(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(len(BATCH_T), 4, 8, 8, generator=generator)


@pytest.mark.parametrize("beta_schedule", ["scaled_linear", "linear"])
def test_add_noise_matches_diffusers(beta_schedule):
    config = SchedulerConfig(beta_schedule=beta_schedule)
    x0, noise = batch(1), batch(2)
    ours = DdimScheduler(config).add_noise(x0, noise, BATCH_T)
    expected = diffusers_twin(config).add_noise(x0, noise, BATCH_T)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("beta_schedule", ["scaled_linear", "linear"])
def test_velocity_matches_diffusers_get_velocity(beta_schedule):
    config = SchedulerConfig(beta_schedule=beta_schedule)
    x0, noise = batch(1), batch(2)
    ours = DdimScheduler(config).velocity(x0, noise, BATCH_T)
    expected = diffusers_twin(config).get_velocity(x0, noise, BATCH_T)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


def test_add_noise_rejects_negative_timestep():
    with pytest.raises(InputError, match="timestep"):
        DdimScheduler().add_noise(batch(1), batch(2), torch.tensor([-1, 0, 1, 2, 3]))


def test_alpha_sigma_are_sqrt_alphas_cumprod_shaped_like_t():
    scheduler = DdimScheduler()
    alpha, sigma = scheduler.alpha_sigma(BATCH_T)
    table = torch.from_numpy(scheduler.alphas_cumprod.astype(np.float64))[BATCH_T]
    assert alpha.shape == BATCH_T.shape and alpha.dtype == torch.float32
    torch.testing.assert_close(alpha.double(), table.sqrt(), rtol=1e-7, atol=0)
    torch.testing.assert_close(sigma.double(), (1 - table).sqrt(), rtol=1e-7, atol=1e-9)
    np_alpha, _ = scheduler.alpha_sigma(np.int64(250))
    assert np_alpha.shape == () and np_alpha == alpha[2].item()


def test_x0_from_v_inverts_add_noise_and_velocity():
    scheduler, x0, noise = DdimScheduler(), batch(1).double(), batch(2).double()
    x_t = scheduler.add_noise(x0, noise, BATCH_T)
    v = scheduler.velocity(x0, noise, BATCH_T)
    torch.testing.assert_close(scheduler.x0_from_v(x_t, v, BATCH_T), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(scheduler.eps_from_v(x_t, v, BATCH_T), noise, rtol=0, atol=1e-12)


def test_x0_from_eps_and_eps_from_x0_invert_add_noise():
    scheduler, x0, noise = DdimScheduler(), batch(1).double(), batch(2).double()
    x_t = scheduler.add_noise(x0, noise, BATCH_T)
    torch.testing.assert_close(scheduler.x0_from_eps(x_t, noise, BATCH_T), x0, rtol=0, atol=1e-9)
    torch.testing.assert_close(scheduler.eps_from_x0(x_t, x0, BATCH_T), noise, rtol=0, atol=1e-9)


def test_ddim_step_to_with_true_x0_and_eps_lands_on_forward_process():
    scheduler, x0, noise = DdimScheduler(), batch(1).double(), batch(2).double()
    t_prev = torch.tensor([-1, 0, 100, 499, 998])  # -1: past t=0, final_alpha_cumprod
    x_t = scheduler.add_noise(x0, noise, BATCH_T)
    x_prev = scheduler.ddim_step_to(x_t, x0, noise, BATCH_T, t_prev)
    final = scheduler.final_alpha_cumprod.astype(np.float64)
    expected_first = np.sqrt(final) * x0[0] + np.sqrt(1 - final) * noise[0]
    on_forward = scheduler.add_noise(x0[1:], noise[1:], t_prev[1:])
    torch.testing.assert_close(x_prev[1:], on_forward)
    torch.testing.assert_close(x_prev[0], expected_first)


def test_ddim_step_to_derives_eps_from_x_t_when_not_given():
    scheduler, x0, noise = DdimScheduler(), batch(1).double(), batch(2).double()
    t_prev = BATCH_T - 1
    x_t = scheduler.add_noise(x0, noise, BATCH_T)
    with_eps = scheduler.ddim_step_to(x_t, x0, noise, BATCH_T, t_prev)
    without_eps = scheduler.ddim_step_to(x_t, x0, None, BATCH_T, t_prev)
    torch.testing.assert_close(without_eps, with_eps, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prediction", PREDICTION_TYPES)
def test_batched_ddim_step_matches_diffusers_step_per_item(prediction):
    config = SchedulerConfig(prediction_type=prediction)
    scheduler, reference = DdimScheduler(config), diffusers_twin(config)
    reference.set_timesteps(8)
    t = torch.from_numpy(scheduler.timesteps(8)[[0, 3, 7]])
    sample, output = batch(1)[:3], batch(2)[:3]
    x0, eps = scheduler.x0_eps_from_output(sample, output, t)
    ours = scheduler.ddim_step_to(sample, x0, eps, t, scheduler.prev_timestep(t, 8))
    for i in range(3):
        expected = reference.step(output[i], int(t[i]), sample[i]).prev_sample
        torch.testing.assert_close(ours[i], expected, rtol=0, atol=1e-6)


# ---- configs -----------------------------------------------------------------------------


def test_from_diffusers_reads_sd15_scheduler_config():
    config = SchedulerConfig.from_diffusers(SD15_SCHEDULER_CONFIG)
    assert (config.beta_schedule, config.beta_start, config.beta_end) == (
        "scaled_linear",
        0.00085,
        0.012,
    )
    assert (config.steps_offset, config.set_alpha_to_one, config.clip_sample) == (1, False, False)
    assert (config.prediction_type, config.timestep_spacing) == ("epsilon", "leading")


def test_from_diffusers_sd15_trajectory_matches_ddim_from_config():
    config = SchedulerConfig.from_diffusers(SD15_SCHEDULER_CONFIG)
    reference = DDIMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    start = torch.from_numpy(start_latents(np.float32))
    ours = run_ours(DdimScheduler(config), start.clone(), 8, as_torch=True)
    np.testing.assert_array_equal(ours.numpy(), run_diffusers(reference, start.clone(), 8))


def test_from_diffusers_missing_keys_take_ddim_defaults():
    config = SchedulerConfig.from_diffusers({})
    defaults = DDIMScheduler.from_config({}).config
    for key in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "steps_offset",
                "set_alpha_to_one", "clip_sample", "clip_sample_range", "prediction_type",
                "timestep_spacing"):  # fmt: skip
        assert getattr(config, key) == defaults[key], key


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("beta_schedule", "sigmoid"),
        ("prediction_type", "sample"),
        ("timestep_spacing", "karras"),
        ("trained_betas", [0.1, 0.2]),
        ("rescale_betas_zero_snr", True),
        ("thresholding", True),
        ("steps_offset", "1"),
        ("set_alpha_to_one", "false"),
    ],
)
def test_from_diffusers_rejects_unsupported_value_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        SchedulerConfig.from_diffusers({**SD15_SCHEDULER_CONFIG, key: value})


def test_to_dict_round_trips_through_json():
    config = SchedulerConfig(prediction_type="v_prediction", timestep_spacing="trailing")
    assert SchedulerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_from_dict_rejects_missing_and_unknown_keys():
    data = SchedulerConfig().to_dict()
    del data["beta_end"]
    data["eta"] = 0.0
    with pytest.raises(ConfigError, match=r"missing keys \['beta_end'\], unknown keys \['eta'\]"):
        SchedulerConfig.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("default_steps", 0), ("beta_start", 0.0), ("clip_sample_range", -1.0), ("steps_offset", -1)],
)
def test_config_rejects_out_of_range_fields(field, value):
    with pytest.raises(ConfigError, match=field):
        SchedulerConfig(**{field: value})


def test_v_from_eps_matches_a_hand_computation():
    """SD-1.x's schedule by hand in float64: a_t = prod(1 - beta), betas scaled_linear."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    a = np.cumprod(1 - betas)[BATCH_T.numpy()].reshape(-1, 1, 1, 1)
    x_t, eps = batch(3).double().numpy(), batch(4).double().numpy()
    x0 = (x_t - np.sqrt(1 - a) * eps) / np.sqrt(a)
    expected = np.sqrt(a) * eps - np.sqrt(1 - a) * x0
    ours = DdimScheduler().v_from_eps(batch(3), batch(4), BATCH_T)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-5)  # float32 vs 64


def test_v_from_eps_of_the_true_noise_is_diffusers_ddpm_get_velocity():
    """x_t made from (x0, eps) by diffusers' DDPMScheduler: the v target recovered from eps alone
    is its get_velocity(x0, eps, t)."""
    from diffusers import DDPMScheduler

    reference = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    x0, eps = batch(1), batch(2)
    x_t = reference.add_noise(x0, eps, BATCH_T)
    ours = DdimScheduler().v_from_eps(x_t, eps, BATCH_T)
    expected = reference.get_velocity(x0, eps, BATCH_T)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
