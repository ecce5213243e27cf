"""The synthetic captioned-scene world (docs/scenes.md) and its reader.

Torch-free except torch_data.py, so the generator and analyser load without torch.
"""
