"""The training loop every stage shares: Trainer, resumable state, DDP helpers, EMA, run control."""
