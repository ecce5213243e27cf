"""Real image-caption data: folders, JSONL/CSV indexes and WebDataset shards opened as one
stream (source.py), and latents cached once from a model's VAE and text encoder."""
