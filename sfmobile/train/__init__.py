"""Training side: synthetic captioned scenes (data.py), their reader (scene_analyser.py).

Modules here may use numpy, PIL and torch freely; the runtime never imports them. torch is
imported only by torch_data.py, so the generator and analyser load without it.
"""
