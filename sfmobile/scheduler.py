"""DDIM (eta = 0) for epsilon and v-prediction: the one sampler of sfmobile, plus training helpers.

Reproduces diffusers' DDIMScheduler to float32 rounding, so a diffusers user sees the same
trajectories, and is written as plain arithmetic so the Kotlin core's DdimScheduler.kt
(android_app/core/) follows it line by line; the scheduler golden vectors hold both to it.
docs/scheduler.md is the spec (formulas, timestep rules, dtypes).

Arrays: every formula takes numpy arrays (the runtime) or torch tensors (training) and is written
once, with + - * / and one `_sqrt`; the coefficient table is gathered in the sample's type.
Timesteps may be a scalar or a batch [B] broadcast against a sample [B, ...].
"""

import math
import sys
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from sfmobile.errors import ConfigError, InputError

BETA_SCHEDULES = ("scaled_linear", "linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")

# diffusers DDIMScheduler's own defaults: what a scheduler_config.json means by a missing key.
_DIFFUSERS_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "steps_offset": 0,
    "set_alpha_to_one": True,
    "clip_sample": True,
    "clip_sample_range": 1.0,
}
# Keys of a diffusers config that change the schedule in ways this scheduler does not implement.
_UNSUPPORTED_WHEN_SET = ("trained_betas", "rescale_betas_zero_snr", "thresholding")


@dataclass(frozen=True)
class SchedulerConfig:
    """The noise schedule and sampling rules; defaults are Stable Diffusion 1.x's."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    clip_sample: bool = False
    clip_sample_range: float = 1.0
    default_steps: int = 8
    default_guidance: float = 7.5

    def __post_init__(self) -> None:
        for field in fields(self):
            _check_type(field.name, getattr(self, field.name), field.type, "SchedulerConfig")
        for name, allowed in (
            ("beta_schedule", BETA_SCHEDULES),
            ("prediction_type", PREDICTION_TYPES),
            ("timestep_spacing", TIMESTEP_SPACINGS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"SchedulerConfig.{name} = {getattr(self, name)!r} is not supported; "
                    f"expected one of {', '.join(allowed)}"
                )
        checks = (
            ("num_train_timesteps", self.num_train_timesteps >= 1, ">= 1"),
            ("beta_start", 0.0 < self.beta_start < 1.0, "in (0, 1)"),
            ("beta_end", 0.0 < self.beta_end < 1.0, "in (0, 1)"),
            ("steps_offset", self.steps_offset >= 0, ">= 0"),
            ("clip_sample_range", self.clip_sample_range > 0.0, "> 0"),
            ("default_steps", 1 <= self.default_steps <= self.num_train_timesteps,
             "in [1, num_train_timesteps]"),
            ("default_guidance", math.isfinite(self.default_guidance)
             and self.default_guidance >= 0.0, "finite and >= 0"),
        )  # fmt: skip
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(
                    f"SchedulerConfig.{name} = {getattr(self, name)!r} must be {rule}"
                )

    @classmethod
    def from_diffusers(
        cls, config: dict[str, Any], source: str = "scheduler_config.json"
    ) -> "SchedulerConfig":
        """Read a diffusers scheduler config (DDIM, PNDM, Euler... of an SD-1.x folder).

        Only the keys that define the schedule are read; a missing one takes diffusers
        DDIMScheduler's default (as DDIMScheduler.from_config would), other keys are ignored.
        default_steps / default_guidance are not diffusers keys and keep their defaults.
        """
        for key in _UNSUPPORTED_WHEN_SET:
            if config.get(key) not in (None, False):
                raise ConfigError(f"{source}: key {key!r} = {config[key]!r} is not supported")
        values = {key: config.get(key, default) for key, default in _DIFFUSERS_DEFAULTS.items()}
        return _build(values, source)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict for the bundle manifest (every field, no defaults left implicit)."""
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "manifest scheduler"
    ) -> "SchedulerConfig":
        """Inverse of to_dict; every field must be present and no other key."""
        names = {field.name for field in fields(cls)}
        missing, unknown = sorted(names - data.keys()), sorted(data.keys() - names)
        if missing or unknown:
            raise ConfigError(f"{source}: missing keys {missing}, unknown keys {unknown}")
        return _build(dict(data), source)


def _build(values: dict[str, Any], source: str) -> SchedulerConfig:
    """SchedulerConfig(**values) with errors prefixed by where the values came from."""
    try:
        return SchedulerConfig(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _check_type(name: str, value: Any, annotation: type, owner: str) -> None:
    """bool for bool fields, int (not bool) for int fields, int or float for float fields."""
    expected = annotation
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{owner}.{name} = {value!r} must be of type {expected.__name__}")


def betas_float32(config: SchedulerConfig) -> np.ndarray:
    """beta_t, t = 0..T-1, float32, bit for bit as torch.linspace(..., float32) on an FMA CPU."""
    n = config.num_train_timesteps
    if config.beta_schedule == "squaredcos_cap_v2":  # Glide cosine, float64 then float32

        def alpha_bar(x: float) -> float:
            return math.cos((x + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)]
        return np.array(betas, dtype=np.float64).astype(np.float32)
    start, end = config.beta_start, config.beta_end
    if config.beta_schedule == "scaled_linear":  # linspace of square roots, squared in float32
        start, end = math.sqrt(start), math.sqrt(end)
    betas = _linspace_float32(start, end, n)
    return betas * betas if config.beta_schedule == "scaled_linear" else betas


def _linspace_float32(start: float, end: float, n: int) -> np.ndarray:
    """torch's CPU float32 linspace: step in float32, the first half counted up from start and
    the second half down from end, each value one fused multiply-add (float64 here, exact)."""
    start32, end32 = np.float32(start), np.float32(end)
    step32 = np.float32(end32 - start32) / np.float32(max(n - 1, 1))
    index = np.arange(n)
    from_start = float(start32) + float(step32) * index
    from_end = float(end32) - float(step32) * (n - 1 - index)
    return np.where(index < n // 2, from_start, from_end).astype(np.float32)


def alphas_cumprod_float32(config: SchedulerConfig) -> np.ndarray:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s): float32 factors, float64 running product (as
    torch.cumprod accumulates on CPU), each prefix rounded to float32."""
    alphas = np.float32(1.0) - betas_float32(config)
    return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


def _is_torch(x: Any) -> bool:
    """True for a torch.Tensor; never imports torch (the numpy runtime may run without it)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _sqrt(x: Any) -> Any:
    return x.sqrt() if _is_torch(x) else np.sqrt(x)


class DdimScheduler:
    """Deterministic DDIM sampling and the forward-process algebra the distillation needs."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.alphas_cumprod = alphas_cumprod_float32(self.config)
        one = np.float32(1.0)
        self.final_alpha_cumprod = one if self.config.set_alpha_to_one else self.alphas_cumprod[0]
        # Entry 0 is the alpha_bar of "before t = 0", so any t >= -1 indexes entry t + 1.
        self._table = np.concatenate([[self.final_alpha_cumprod], self.alphas_cumprod])
        self._torch_tables: dict[tuple[Any, Any], Any] = {}

    # ---- timesteps -------------------------------------------------------------------------

    def timesteps(self, num_steps: int | None = None) -> np.ndarray:
        """The num_steps timesteps to visit, descending, int64 (diffusers' set_timesteps)."""
        n = self._num_steps(num_steps)
        T = self.config.num_train_timesteps
        spacing = self.config.timestep_spacing
        if spacing == "leading":
            step = T // n
            values = [(n - 1 - i) * step + self.config.steps_offset for i in range(n)]
        elif spacing == "trailing":  # numpy.arange(T, 0, -T/n) rounded half-even, minus 1
            first, second = float(T), T - T / n
            delta = second - first  # numpy's arange fill: start + i * (second - start)
            points = [first, second] + [first + i * delta for i in range(2, n)]
            values = [round(p) - 1 for p in points[:n]]
        else:  # linspace: numpy.linspace(0, T - 1, n) rounded half-even, reversed
            step = (T - 1) / (n - 1) if n > 1 else 0.0
            points = [i * step for i in range(n)]
            if n > 1:
                points[-1] = float(T - 1)  # numpy sets the endpoint exactly
            values = [round(p) for p in reversed(points)]
        timesteps = np.array(values, dtype=np.int64)
        if timesteps.min() < 0 or timesteps.max() >= T:
            raise InputError(
                f"num_steps={n} with {spacing} spacing and steps_offset="
                f"{self.config.steps_offset} gives timesteps outside [0, {T})"
            )
        return timesteps

    def prev_timestep(self, timestep: Any, num_steps: int | None = None) -> Any:
        """t - T // num_steps, the DDIM rule for every spacing; negative means "final alpha"."""
        return timestep - self.config.num_train_timesteps // self._num_steps(num_steps)

    def _num_steps(self, num_steps: int | None) -> int:
        n = self.config.default_steps if num_steps is None else num_steps
        if isinstance(n, bool) or not isinstance(n, int | np.integer):
            raise InputError(f"num_steps must be an integer, got {n!r}")
        if not 1 <= n <= self.config.num_train_timesteps:
            raise InputError(
                f"num_steps={n} must be in [1, {self.config.num_train_timesteps}] "
                "(num_train_timesteps)"
            )
        return int(n)

    # ---- sampling --------------------------------------------------------------------------

    def step(
        self, model_output: Any, timestep: Any, sample: Any, num_steps: int | None = None
    ) -> Any:
        """One DDIM (eta = 0) step from `timestep` to prev_timestep(timestep, num_steps).

        num_steps must be the count given to timesteps() (both default to config.default_steps).
        """
        x0, eps = self.x0_eps_from_output(sample, model_output, timestep)
        if self.config.clip_sample:
            limit = self.config.clip_sample_range
            x0 = x0.clip(-limit, limit)
        t_prev = self.prev_timestep(timestep, num_steps)
        return self.ddim_step_to(sample, x0, eps, timestep, t_prev)

    def x0_eps_from_output(self, sample: Any, model_output: Any, t: Any) -> tuple[Any, Any]:
        """(x0, eps) predicted by a model output of config.prediction_type at timestep t."""
        if self.config.prediction_type == "epsilon":
            return self.x0_from_eps(sample, model_output, t), model_output
        return self.x0_from_v(sample, model_output, t), self.eps_from_v(sample, model_output, t)

    def ddim_step_to(self, x_t: Any, x0_pred: Any, eps_pred: Any, t: Any, t_prev: Any) -> Any:
        """x_{t_prev} = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps (DDIM, eta = 0), any t > t_prev.

        t_prev < 0 uses final_alpha_cumprod. eps_pred=None re-derives eps from (x_t, x0_pred, t).
        """
        if eps_pred is None:
            eps_pred = self.eps_from_x0(x_t, x0_pred, t)
        alpha_prev, sigma_prev = self._alpha_sigma(t_prev, x0_pred, allow_final=True)
        return alpha_prev * x0_pred + sigma_prev * eps_pred

    # ---- forward-process algebra (training) -----------------------------------------------

    def alpha_sigma(self, t: Any, allow_final: bool = False) -> tuple[Any, Any]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) in float32, shaped like t, numpy or torch.

        allow_final maps t < 0 to final_alpha_cumprod (where the last sampling step lands)."""
        torch = sys.modules.get("torch")
        if _is_torch(t):
            like = torch.empty((), dtype=torch.float32, device=t.device)
        else:
            like = np.empty((), dtype=np.float32)
        return self._alpha_sigma(t, like, allow_final)

    def add_noise(self, x0: Any, noise: Any, t: Any) -> Any:
        """x_t = alpha_t x0 + sigma_t noise (diffusers add_noise)."""
        alpha, sigma = self._alpha_sigma(t, x0)
        return alpha * x0 + sigma * noise

    def velocity(self, x0: Any, noise: Any, t: Any) -> Any:
        """v = alpha_t noise - sigma_t x0 (diffusers get_velocity)."""
        alpha, sigma = self._alpha_sigma(t, x0)
        return alpha * noise - sigma * x0

    def x0_from_eps(self, sample: Any, eps: Any, t: Any) -> Any:
        alpha, sigma = self._alpha_sigma(t, sample)
        return (sample - sigma * eps) / alpha

    def eps_from_x0(self, sample: Any, x0: Any, t: Any) -> Any:
        alpha, sigma = self._alpha_sigma(t, sample)
        return (sample - alpha * x0) / sigma

    def x0_from_v(self, sample: Any, v: Any, t: Any) -> Any:
        alpha, sigma = self._alpha_sigma(t, sample)
        return alpha * sample - sigma * v

    def eps_from_v(self, sample: Any, v: Any, t: Any) -> Any:
        alpha, sigma = self._alpha_sigma(t, sample)
        return alpha * v + sigma * sample

    def v_from_eps(self, sample: Any, eps: Any, t: Any) -> Any:
        """The v-prediction target an epsilon model's output implies at (x_t, t): v = alpha_t eps -
        sigma_t x0 with x0 = x0_from_eps(x_t, eps, t). For a v-prediction student distilled
        from an epsilon teacher (SD-1.5); 1/alpha_t amplifies the teacher's error near t = T."""
        return self.velocity(self.x0_from_eps(sample, eps, t), eps, t)

    def _alpha_sigma(self, t: Any, like: Any, allow_final: bool = False) -> tuple[Any, Any]:
        """sqrt(a), sqrt(1 - a) for a = alpha_bar_t in like's dtype (and device), shaped to
        broadcast against like: t [B] -> [B, 1, ...]. allow_final maps every t < 0 to
        final_alpha_cumprod (the step past t = 0)."""
        if _is_torch(like):
            torch = sys.modules["torch"]
            key = (like.device, like.dtype)
            if key not in self._torch_tables:
                self._torch_tables[key] = torch.from_numpy(self._table).to(like.device, like.dtype)
            index = torch.as_tensor(t, device=like.device).long()
            if index.device.type == "cpu":  # on an accelerator the check would cost a sync
                self._check_timesteps(index.numpy(), allow_final, t)
            a = self._torch_tables[key][index.clamp(min=-1) + 1]
        else:
            index = np.asarray(t)
            self._check_timesteps(index, allow_final, t)
            a = np.asarray(self._table.astype(like.dtype)[np.maximum(index, -1) + 1])
        a = a.reshape(tuple(a.shape) + (1,) * (like.ndim - a.ndim))
        return _sqrt(a), _sqrt(1 - a)

    def _check_timesteps(self, index: np.ndarray, allow_final: bool, t: Any) -> None:
        """Integer timesteps below num_train_timesteps, and >= 0 unless allow_final."""
        if index.dtype.kind not in "iu":
            raise InputError(f"timestep must be an integer, got {index.dtype} {t!r}")
        if index.size == 0:
            return
        lowest = index.min() if allow_final else 0
        if index.min() < lowest or index.max() >= len(self.alphas_cumprod):
            raise InputError(
                f"timestep {t!r} outside [0, {len(self.alphas_cumprod)}) (num_train_timesteps)"
            )
