"""The engine options every training command shares (`sfmobile train vae|teacher|unet|decoder`,
`sfmobile distill`): how the Trainer runs (checkpoints, logs, threads, device, precision,
accumulation, recomputation, data workers, early stop), as opposed to what a stage trains.

A command takes them all with one decorator and receives one EngineOptions:

    @train_app.command("vae")
    @user_errors_exit_2
    @engine_options(data_workers=False)
    def train_vae(out: Path = ..., ..., engine: EngineOptions = ENGINE) -> None:
        config = engine.train_config(out=out, steps=steps, ...)

The decorator appends the options, in the order of ENGINE_OPTIONS, after the command's own
(so `--help` lists them last), and collects them into `engine`. Torch-free: the runtime-only
install registers these commands too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from sfmobile.train.engine.train_config import TrainConfig


@dataclass(frozen=True)
class EngineOptions:
    """The TrainConfig fields the engine options set (train_config.TrainConfig says what each
    is); the defaults are the options'."""

    checkpoint_every: int = 200
    log_every: int = 10
    threads: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    grad_accumulation: int = 1
    gradient_checkpointing: bool = False
    data_workers: int = 0
    stop_after: int | None = None

    def train_config(self, **run: Any) -> TrainConfig:
        """The TrainConfig of a run: the stage's own settings `run` (out, steps, batch_size, lr,
        seed, ...) and these."""
        from sfmobile.train.engine.train_config import TrainConfig

        return TrainConfig(**run, **asdict(self))


ENGINE = EngineOptions()  # the `engine` parameter's default, replaced by the decorator

# One help text each; the defaults are EngineOptions'.
# GPU practice: engine/device.py, docs/training.md.
CHECKPOINT_EVERY = typer.Option(
    ENGINE.checkpoint_every, help="Write OUT/train_state.pt every this many steps."
)
LOG_EVERY = typer.Option(
    ENGINE.log_every, help="Append to OUT/metrics.jsonl every this many steps."
)
THREADS = typer.Option(ENGINE.threads, help="torch threads per process (default: torch's choice).")
DEVICE = typer.Option(
    ENGINE.device,
    help="cpu, cuda, cuda:N or auto; under torchrun, cuda is each process's LOCAL_RANK GPU.",
)
PRECISION = typer.Option(
    ENGINE.precision,
    help="fp32, or bf16 / fp16 autocast (weights, optimizer and EMA stay float32).",
)
GRAD_ACCUMULATION = typer.Option(
    ENGINE.grad_accumulation,
    help="Micro-batches of --batch-size per optimizer step (their mean gradient).",
)
GRADIENT_CHECKPOINTING = typer.Option(
    ENGINE.gradient_checkpointing,
    "--gradient-checkpointing",
    help="Recompute each UNet unit's activations in backward: less memory, more compute.",
)
DATA_WORKERS = typer.Option(
    ENGINE.data_workers,
    help="Processes decoding --data images, per training process (0: in the process).",
)
STOP_AFTER = typer.Option(
    ENGINE.stop_after, help="Stop with a checkpoint after this step, as an interruption would."
)

# EngineOptions field: (its type on the command line, its option), in --help order.
ENGINE_OPTIONS: dict[str, tuple[type, Any]] = {
    "checkpoint_every": (int, CHECKPOINT_EVERY),
    "log_every": (int, LOG_EVERY),
    "threads": (int, THREADS),
    "device": (str, DEVICE),
    "precision": (str, PRECISION),
    "grad_accumulation": (int, GRAD_ACCUMULATION),
    "gradient_checkpointing": (bool, GRADIENT_CHECKPOINTING),
    "data_workers": (int, DATA_WORKERS),
    "stop_after": (int, STOP_AFTER),
}


def engine_options(*, data_workers: bool) -> Callable[[Callable], Callable]:
    """Give a command the engine options (all of ENGINE_OPTIONS; --data-workers only with
    `data_workers`, for commands that read --data) in place of its `engine` parameter, which
    receives them as one EngineOptions."""
    names = [name for name in ENGINE_OPTIONS if data_workers or name != "data_workers"]

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command, eval_str=True)
        if "engine" not in own.parameters:
            raise TypeError(f"{command.__name__}: an engine_options command takes `engine`")
        kept = [p for p in own.parameters.values() if p.name != "engine"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
            for name, (kind, option) in ((n, ENGINE_OPTIONS[n]) for n in names)
        ]

        @wraps(command)
        def with_engine(**values: Any) -> Any:
            engine = EngineOptions(**{name: values.pop(name) for name in names})
            return command(**values, engine=engine)

        with_engine.__signature__ = own.replace(parameters=[*kept, *added])
        with_engine.__annotations__ = {
            **{p.name: p.annotation for p in kept},
            **{name: ENGINE_OPTIONS[name][0] for name in names},
            "return": own.return_annotation,
        }
        return with_engine

    return decorate
