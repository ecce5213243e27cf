"""Training side, one sub-package per job.

- scenes/: the synthetic captioned-scene world (grammar, generator, captions, renderer, torch
  wrappers) and its reader (analyser, components) that checks what a picture shows.
- data/: real image-caption sources (folders, JSONL/CSV, WebDataset shards) and latent caches.
- stages/: what each stage trains and its loss (VAE, teacher, distillation, decoder) plus the
  stage contract and the decoder's teacher-latent pool.
- engine/: the loop every stage shares (Trainer, train state, DDP, EMA, progress and Ctrl-C).
- evaluation/: metrics and tables (prompt adherence, FD-VAE, decoder report).
- assembly/: putting trained parts together (the shipped demo model, VAE swaps).
- sampling.py: the pipeline's DDIM loop batched, shared by stages and evaluation.

Modules here may use numpy, PIL and torch freely; the runtime never imports them. In scenes/,
torch is imported only by torch_data.py, so the generator and analyser load without it.
"""
