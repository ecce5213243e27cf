"""Evaluation of trained models: prompt adherence and FD-VAE on held-out scenes, decoder reports."""
