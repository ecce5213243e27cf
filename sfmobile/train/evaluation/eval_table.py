"""SnapFusion-style evaluation tables: rows model/steps, columns guidance scales, each cell
adherence / FD / seconds per picture, with the analyser's ceiling and per-attribute rates below.

Every cell uses the same held-out prompts, noise seeds, real renders and feature extractor (by
default the first model's VAE), so the numbers of one table compare with each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sfmobile.train.evaluation.evaluate import (
    ALL,
    AdherenceScore,
    EvalConfig,
    EvalResult,
    RealReference,
    evaluate,
    round_trip_adherence,
)
from sfmobile.train.evaluation.frechet import VaeFeatures
from sfmobile.train.scenes.generator import heldout_prompts
from sfmobile.weights.strict import first_difference

ATTRIBUTE_ORDER = (ALL, "objects", "colour", "shape", "size", "position", "relation", "background")


@dataclass(frozen=True)
class ModelSpec:
    """A table row: `label`, the model folder or file at `path` (weights.load_model), sampled
    with `steps` (None: the checkpoint's scheduler default_steps) and `spacing` (None: the
    checkpoint's timestep spacing; otherwise it replaces it, so a trailing-spacing model can be
    sampled the way SD-1.5's DDIM samples, as the paper's naive few-step baseline was)."""

    label: str
    path: Path
    steps: int | None = None
    spacing: str | None = None

    @property
    def row_label(self) -> str:
        """The label in the table: with the spacing when it replaces the model's."""
        return self.label if self.spacing is None else f"{self.label} ({self.spacing})"


@dataclass(frozen=True)
class EvalTable:
    config: EvalConfig
    fd_name: str
    fd_description: str
    fd_source: str
    ceiling: AdherenceScore
    results: tuple[EvalResult, ...]
    # (label, score): the analyser on real renders through each distinct VAE of the rows
    round_trips: tuple[tuple[str, AdherenceScore], ...] = ()

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "feature_extractor": {
                "name": self.fd_name,
                "description": self.fd_description,
                "source": self.fd_source,
            },
            "ceiling": asdict(self.ceiling),
            "vae_round_trip_ceilings": {label: asdict(score) for label, score in self.round_trips},
            "results": [result.to_dict() for result in self.results],
        }

    def to_markdown(self) -> str:
        return "\n".join([*_summary(self), "", *_main_table(self), "", *_attribute_table(self)])


def run_table(
    specs: Sequence[ModelSpec],
    config: EvalConfig,
    extractor: VaeFeatures | None = None,
    on_batch: Callable[[str, int], None] | None = None,
) -> EvalTable:
    """Evaluate every spec at every guidance scale of `config`; models load one at a time.

    on_batch(cell, count) is called after each sampled batch (for a progress bar)."""
    from sfmobile.weights import load_model

    prompts = heldout_prompts(config.prompts, config.prompt_seed)
    reference, results, round_trips, vaes_seen = None, [], [], []
    for spec in specs:
        model = load_model(spec.path).eval()
        if spec.spacing is not None:
            model.scheduler = replace(model.scheduler, timestep_spacing=spec.spacing)
        if extractor is None:
            extractor = VaeFeatures(model.vae, f"{spec.path} (VAE of {spec.label})")
        if reference is None:
            reference = RealReference.build(prompts, config.image_size, extractor)
        if all(first_difference(model.vae, seen) for seen in vaes_seen):
            vaes_seen.append(model.vae)
            round_trips.append((spec.label, round_trip_adherence(model, reference)))
        steps = spec.steps or model.scheduler.default_steps
        for guidance in config.guidance:
            cell = f"{spec.row_label} {steps} steps w={guidance:g}"
            results.append(
                evaluate(
                    model,
                    steps,
                    guidance,
                    prompts,
                    config.seed,
                    extractor,
                    label=spec.row_label,
                    image_size=config.image_size,
                    batch_size=config.batch_size,
                    reference=reference,
                    on_batch=(lambda count, cell=cell: on_batch(cell, count)) if on_batch else None,
                )
            )
        del model
    return EvalTable(
        config,
        extractor.name,
        extractor.description(),
        extractor.source,
        reference.adherence,
        tuple(results),
        tuple(round_trips),
    )


def _summary(table: EvalTable) -> list[str]:
    c = table.config
    threads = table.results[0].threads if table.results else "?"
    return [
        f"{c.prompts} held-out prompts (heldout_prompts seed {c.prompt_seed}), noise seeds "
        f"{c.seed}..{c.seed + c.prompts - 1}, {c.image_size}x{c.image_size} pictures.",
        f"Each cell: adherence / {table.fd_name} / seconds per picture (sampling + decoding, "
        f"batches of {c.batch_size}, torch threads: {threads}) / UNet calls per picture.",
    ]


def _main_table(table: EvalTable) -> list[str]:
    guidance = table.config.guidance
    lines = [
        "| model | steps | " + " | ".join(f"w = {w:g}" for w in guidance) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in guidance) + " |",
    ]
    cells = {(r.label, r.steps, r.guidance): r for r in table.results}
    for label, steps in dict.fromkeys((r.label, r.steps) for r in table.results):
        row = [_cell(cells.get((label, steps, float(w)))) for w in guidance]
        lines.append(f"| {label} | {steps} | " + " | ".join(row) + " |")
    lines += [
        "",
        f"Analyser ceiling (real renders of the same scenes): {_percent(table.ceiling.rate)} "
        "adhere.",
        *(
            f"Autoencoder ceiling (those renders encoded and decoded by {label}'s VAE): "
            f"{_percent(score.rate)} adhere."
            for label, score in table.round_trips
        ),
        f"{table.fd_name}: {table.fd_description}; extractor {table.fd_source}.",
    ]
    return lines


def _cell(result: EvalResult | None) -> str:
    if result is None:
        return "-"
    return (
        f"{_percent(result.adherence.rate)} / {result.fd:.3g} / "
        f"{result.seconds_per_image:.3g} s / {result.unet_calls_per_image}"
    )


def _attribute_table(table: EvalTable) -> list[str]:
    present = {key for r in table.results for key in r.adherence.attributes}
    present |= set(table.ceiling.attributes)
    keys = [k for k in ATTRIBUTE_ORDER if k in present] + sorted(present - set(ATTRIBUTE_ORDER))
    counts = ", ".join(f"{k} {table.ceiling.counts.get(k, 0)}" for k in keys)
    lines = [
        f"Per attribute: share of the prompts stating it that show it (prompts stating: {counts}).",
        "",
        "| pictures | steps | w | " + " | ".join(keys) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in keys) + " |",
        "| real renders | - | - | " + _rates(table.ceiling, keys) + " |",
    ]
    for label, score in table.round_trips:
        lines.append(f"| real renders through {label}'s VAE | - | - | {_rates(score, keys)} |")
    for r in table.results:
        lines.append(f"| {r.label} | {r.steps} | {r.guidance:g} | {_rates(r.adherence, keys)} |")
    return lines


def _rates(score: AdherenceScore, keys: Sequence[str]) -> str:
    return " | ".join(_percent(score.attributes[k]) if k in score.attributes else "-" for k in keys)


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"
