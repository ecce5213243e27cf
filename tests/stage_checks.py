"""Checks shared by the training-stage tests."""

from __future__ import annotations

import torch


def assert_loss_falls(stage, batch: dict, parameters, lr: float, steps: int, seed: int) -> None:
    """A few Adam steps of `stage.loss` on one fixed batch (same noise draw every time) take the
    loss below 70% of where it started, finite all the way: the stage's gradients point
    somewhere useful."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    models = stage.trainable()

    def loss_now() -> torch.Tensor:
        return stage.loss(models, batch, 0, torch.Generator().manual_seed(seed))[0]

    first = loss_now().item()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_now()
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    assert loss_now().item() < 0.7 * first
