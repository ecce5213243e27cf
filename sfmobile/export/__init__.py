"""Conversion side: torch -> ONNX / TFLite bundles. The runtime never imports this package."""
