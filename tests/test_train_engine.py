"""GPU practice in the Trainer, tested on the CPU: --device, --precision (autocast),
--grad-accumulation, --gradient-checkpointing, and the speed and TensorBoard outputs.

References: a hand-written AdamW loop over the same batches and draws (the fp32 path, bit for
bit); one step over a batch of 4 (two accumulated micro-batches of 2); the UNet without
checkpointing (gradients); the loss before training (bf16 and fp16 runs)."""

import json
import math

import pytest
import tiny_models
import torch
from torch import nn
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import InputError
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.engine.checkpointing import checkpointing
from sfmobile.train.engine.device import resolve_device
from sfmobile.train.engine.loop import TrainConfig, Trainer, step_generator
from sfmobile.train.engine.train_state import METRICS_FILE, STATE_FILE, MetricsLog, load_state
from sfmobile.train.scenes.torch_data import SceneStream
from sfmobile.train.stages.robust import skippable_blocks, skipping
from sfmobile.train.stages.teacher import TeacherStage
from sfmobile.train.stages.vae import VaeStage, load_vae, save_vae

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_UNET = tiny_models.unet(16, 32)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae") / "vae"
    save_vae(AutoencoderKL(tiny_models.vae()), folder)
    return folder


def teacher(vae_dir, **kwargs) -> TeacherStage:
    return TeacherStage(load_vae(vae_dir), TINY_UNET, tiny_models.TEXT, **kwargs)


def config(out, **overrides) -> TrainConfig:
    settings = {"steps": 3, "batch_size": 2, "log_every": 1, "checkpoint_every": 100, "lr": 1e-3}
    return TrainConfig(out=out, **{**settings, **overrides})


def test_fp32_run_is_the_plain_adamw_loop_bit_for_bit(vae_dir, tmp_path):
    """--precision fp32 and --grad-accumulation 1 add nothing to the loop the Trainer always ran:
    forward, backward, clip, AdamW, with the (seed, rank, step) draws."""
    trained = teacher(vae_dir)
    Trainer(trained, config(tmp_path, precision="fp32")).run()

    stage = teacher(vae_dir)
    modules = stage.trainable()
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    scenes = iter(DataLoader(SceneStream("train", seed=0, size=64), batch_size=2))
    for step in range(3):
        loss, _ = stage.loss(modules, next(scenes), step, step_generator(0, 0, step))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    for name, module in modules.items():
        ours = trained.trainable()[name].state_dict()
        for key, tensor in module.state_dict().items():
            assert torch.equal(ours[key], tensor), f"{name}.{key}"


class Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class RegressionStage:
    """A deterministic per-sample loss (no draws), so batch composition alone sets the gradient:
    sample i is x_i = (i, 1, -i) / 8 with target (sin i, cos i)."""

    name = "regression"

    def __init__(self) -> None:
        self.model = Regression()

    def trainable(self):
        return {"model": self.model}

    def frozen(self):
        return {}

    def batches(self, start, batch_size, rank, world_size):
        index = start
        while True:
            i = torch.arange(index, index + batch_size, dtype=torch.float32)
            x = torch.stack([i, torch.ones_like(i), -i], dim=1) / 8
            yield {"x": x, "y": torch.stack([i.sin(), i.cos()], dim=1), "index": i.long()}
            index += batch_size

    def loss(self, models, batch, step, generator):
        return nn.functional.mse_loss(models["model"](batch["x"]), batch["y"]), {}

    def finish(self, out):
        pass


def test_two_accumulated_micro_batches_of_2_are_one_step_over_4(tmp_path):
    """Same weights and the same gradient as one batch of 4; summing the micro-batches' losses
    instead of averaging them would double the gradient (AdamW's first step alone barely
    notices, so the gradient and its logged norm are compared too)."""
    results = []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        stage = RegressionStage()
        out = tmp_path / f"b{batch_size}"
        run = config(out, steps=2, batch_size=batch_size, grad_accumulation=accumulation)
        Trainer(stage, run).run()
        grads = {k: p.grad.clone() for k, p in stage.model.named_parameters()}  # the last step's
        norms = [r["grad_norm"] for r in MetricsLog(out / METRICS_FILE).records()]
        results.append((stage.model.state_dict(), grads, norms))
    (weights4, grads4, norms4), (weights2, grads2, norms2) = results
    for key in weights4:
        torch.testing.assert_close(weights2[key], weights4[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(grads2[key], grads4[key], rtol=1e-5, atol=1e-7)
    assert norms2 == pytest.approx(norms4, rel=1e-5)


def test_resume_with_another_accumulation_is_refused(tmp_path):
    Trainer(RegressionStage(), config(tmp_path, grad_accumulation=2, stop_after=1)).run()
    with pytest.raises(InputError, match="grad_accumulation was 2, now the default"):
        Trainer(RegressionStage(), config(tmp_path)).run()


def fixed_batch_teacher(vae_dir, seen: list):
    """The teacher on one fixed batch with fixed draws (a deterministic objective), recording
    whether its loss ran under autocast and in which dtype."""
    stage = teacher(vae_dir, caption_dropout=0.0)
    scenes = next(iter(DataLoader(SceneStream("train", seed=0, size=64), batch_size=2)))
    stage.batches = lambda start, batch_size, rank, world_size: iter(lambda: scenes, None)
    loss = stage.loss

    def recorded(models, batch, step, generator):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return loss(models, batch, 0, torch.Generator().manual_seed(1))

    stage.loss = recorded
    return stage


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_autocast_trains_float32_weights(vae_dir, tmp_path, precision):
    seen = []
    stage = fixed_batch_teacher(vae_dir, seen)
    run = config(tmp_path, steps=8, precision=precision, ema_decay=0.9)
    Trainer(stage, run).run()
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert seen == [half] * 8
    losses = [r["loss"] for r in MetricsLog(tmp_path / METRICS_FILE).records()]
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < 0.9 * losses[0]
    for module in stage.trainable().values():  # master weights (here the EMA's) stay float32
        assert {p.dtype for p in module.parameters()} == {torch.float32}
    state = load_state(tmp_path / STATE_FILE)
    assert {t.dtype for m in state.ema.values() for t in m.values()} == {torch.float32}
    assert bool(state.scaler) == (precision == "fp16")  # fp16's loss scale resumes too


def unet_loss(unet: UNet, seed: int = 0) -> torch.Tensor:
    draws = torch.Generator().manual_seed(seed)
    sample = torch.randn(2, 4, 8, 8, generator=draws)
    text = torch.randn(2, 77, TINY_UNET.cross_attention_dim, generator=draws)
    target = torch.randn(2, 4, 8, 8, generator=draws)
    return nn.functional.mse_loss(unet(sample, torch.tensor([10.0, 500.0]), text), target)


def gradients(unet: UNet, names: list[str] = ()) -> tuple[dict[str, torch.Tensor], int]:
    """(the parameters' gradients, elements the forward pass kept for backward)."""
    unet.zero_grad(set_to_none=True)
    kept = []
    with (
        torch.autograd.graph.saved_tensors_hooks(
            lambda t: kept.append(t.numel()) or t, lambda t: t
        ),
        skipping(unet, list(names)),
    ):
        loss = unet_loss(unet)
    loss.backward()  # after the skips are undone, as in the Trainer
    grads = {k: p.grad.clone() for k, p in unet.named_parameters() if p.grad is not None}
    return grads, sum(kept)


@pytest.mark.parametrize("skipped", [False, True], ids=["all-blocks", "robust-skips"])
def test_gradient_checkpointing_gives_the_gradients_of_the_plain_unet(skipped):
    torch.manual_seed(0)
    unet = UNet(TINY_UNET)
    names = skippable_blocks(unet)[::2] if skipped else []
    plain, plain_kept = gradients(unet, names)
    with checkpointing({"unet": unet}) as count:
        checkpointed, checkpointed_kept = gradients(unet, names)
    assert checkpointed_kept < plain_kept / 2  # the units' activations were not kept
    assert count == sum(len(s.units) for s in [*TINY_UNET.down, TINY_UNET.mid, *TINY_UNET.up])
    assert all("forward" not in m.__dict__ for m in unet.modules())  # plain again after
    assert checkpointed.keys() == plain.keys()
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-5, atol=1e-7, msg=key)


def test_gradient_checkpointing_of_a_stage_without_a_unet_is_refused(tmp_path):
    with pytest.raises(InputError, match="--gradient-checkpointing: vae trains no UNet"):
        Trainer(VaeStage(tiny_models.vae()), config(tmp_path, gradient_checkpointing=True))


def test_gradient_checkpointing_run_ends_near_the_plain_run(vae_dir, tmp_path):
    for name, on in (("plain", False), ("checkpointed", True)):
        Trainer(teacher(vae_dir), config(tmp_path / name, gradient_checkpointing=on)).run()
    plain = load_state(tmp_path / "plain" / STATE_FILE).modules["unet"]
    checkpointed = load_state(tmp_path / "checkpointed" / STATE_FILE).modules["unet"]
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-4, atol=1e-5)


def test_cuda_without_a_gpu_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(InputError, match=f"--device {name}: torch sees no CUDA GPU"):
            resolve_device(name)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InputError, match="--device tpu"):
        resolve_device("tpu")
    _register_commands()
    outcome = CliRunner().invoke(
        app, ["train", "vae", "--out", str(tmp_path / "v"), "--device", "cuda", "--steps", "1"]
    )
    assert outcome.exit_code == 2 and "--device cuda: torch sees no CUDA GPU" in outcome.output
    assert not (tmp_path / "v" / STATE_FILE).exists()


def test_torchrun_processes_take_their_local_rank_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert resolve_device("cuda", distributed=True) == torch.device("cuda", 5)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # one process: the first GPU
    with pytest.raises(InputError, match="every process would use GPU 2"):
        resolve_device("cuda:2", distributed=True)
    monkeypatch.setenv("LOCAL_RANK", "8")
    with pytest.raises(InputError, match="GPU 8 asked, torch sees 8"):
        resolve_device("cuda", distributed=True)


def test_metrics_give_samples_per_second_of_all_micro_batches(tmp_path):
    Trainer(RegressionStage(), config(tmp_path, grad_accumulation=3, log_every=3)).run()
    (record,) = MetricsLog(tmp_path / METRICS_FILE).records()
    # 3 steps x 3 micro-batches x 2 samples in 3 x seconds_per_step seconds
    expected = 18 / (3 * record["seconds_per_step"])
    assert record["samples_per_second"] == pytest.approx(expected, rel=1e-6)


def test_cli_passes_the_gpu_options_to_the_trainer(vae_dir, tmp_path):
    _register_commands()
    args = ["train", "teacher", "--vae", str(vae_dir), "--out", str(tmp_path / "t"),
            "--steps", "2", "--batch-size", "1", "--threads", "1", "--log-every", "1",
            "--device", "cpu", "--precision", "bf16", "--grad-accumulation", "2",
            "--gradient-checkpointing"]  # fmt: skip
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    records = [
        json.loads(line) for line in (tmp_path / "t" / METRICS_FILE).read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [1, 2]
    assert load_state(tmp_path / "t" / STATE_FILE).run["grad_accumulation"] == 2
    bad = CliRunner().invoke(app, [*args[:6], "--precision", "fp8"])
    assert bad.exit_code == 2 and "--precision must be one of" in bad.output


def test_every_engine_option_reaches_the_train_config(monkeypatch, tmp_path):
    """The options the engine_options decorator adds land, each under its own name, in the
    TrainConfig the command runs (none at its default, so a dropped one shows)."""
    from sfmobile.cli import train_cmd

    ran = []
    monkeypatch.setattr(train_cmd, "run_stage", lambda stage, config, *_: ran.append(config))
    _register_commands()
    args = ["train", "vae", "--preset", "tiny", "--out", str(tmp_path), "--steps", "9",
            "--checkpoint-every", "4", "--log-every", "3", "--threads", "1", "--device", "auto",
            "--precision", "bf16", "--grad-accumulation", "2", "--gradient-checkpointing",
            "--stop-after", "5"]  # fmt: skip
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    (run,) = ran
    engine = {"checkpoint_every": 4, "log_every": 3, "threads": 1, "device": "auto",
              "precision": "bf16", "grad_accumulation": 2, "gradient_checkpointing": True,
              "stop_after": 5, "data_workers": 0}  # fmt: skip
    assert {name: getattr(run, name) for name in engine} == engine
    assert (run.out, run.steps, run.batch_size, run.lr_schedule) == (tmp_path, 9, 8, "cosine")


def test_data_workers_without_a_data_stream_are_refused(tmp_path):
    """--data-workers is for stages that decode --data images; the scenes and a stage's own
    batches without a stream would ignore it."""
    with pytest.raises(InputError, match="--data-workers 2: vae reads no --data images"):
        Trainer(VaeStage(tiny_models.vae()), config(tmp_path, data_workers=2))
    with pytest.raises(InputError, match="--data-workers 1: regression reads no --data images"):
        Trainer(RegressionStage(), config(tmp_path, data_workers=1))


def test_tensorboard_scalars_beside_metrics_when_installed(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(RegressionStage(), config(tmp_path)).run()
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    losses = [(e.step, e.value) for e in events.Scalars("loss")]
    expected = [(r["step"], r["loss"]) for r in MetricsLog(tmp_path / METRICS_FILE).records()]
    assert losses == [(step, pytest.approx(loss, rel=1e-6)) for step, loss in expected]
    assert "samples_per_second" in events.Tags()["scalars"]
