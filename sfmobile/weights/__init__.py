"""Checkpoint formats (diffusers folders, CompVis single files, our own) mapped onto our modules."""
