"""Assembling trained parts into models: the shipped demo model, swapping in a trained VAE."""
