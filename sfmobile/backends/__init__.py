"""Runtimes behind one interface: PyTorch (reference), ONNX Runtime, LiteRT."""
