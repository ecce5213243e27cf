"""Qualcomm QNN (Hexagon HTP) facts and ONNX Runtime's QNN plugin, shared by the exporter and the
runtime (floor below both: it imports neither export/ nor backends/)."""
