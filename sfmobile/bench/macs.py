"""Multiply-accumulates of an ONNX graph, counted from its own shapes (onnx shape inference),
so the share of the CPU's peak is computed from the model actually timed, not from a quoted
figure. Counted: convolutions and matrix products (float and integer forms), which hold
nearly all of a diffusion model's arithmetic; elementwise ops, norms and softmax are not.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import shape_inference

# op type -> (index of the data input, index of the weight / second operand)
CONVS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1)}
MATMULS = {
    "MatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "MatMulIntegerToFloat": (0, 1),
    "Gemm": (0, 1),
}


@dataclass
class MacCount:
    """total: MACs of one call; by_op: per op type; unresolved: counted ops whose shapes
    inference could not resolve (their MACs are missing from total)."""

    total: int = 0
    by_op: Counter = field(default_factory=Counter)
    unresolved: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"macs": self.total, "macs_by_op": dict(self.by_op), "unresolved": self.unresolved}


def _shapes(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    graph = model.graph
    shapes: dict[str, list[int] | None] = {t.name: list(t.dims) for t in graph.initializer}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        known = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        shapes[info.name] = None if None in known else known
    return shapes


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def node_macs(node: onnx.NodeProto, shapes: dict[str, list[int] | None]) -> int | None:
    """MACs of one node (None: shapes unknown); 0 for node types that are not counted."""
    if node.op_type in CONVS:
        x_index, w_index = CONVS[node.op_type]
        weight, out = shapes.get(node.input[w_index]), shapes.get(node.output[0])
        x = shapes.get(node.input[x_index])
        if weight is None or out is None or x is None:
            return None
        if node.op_type == "ConvTranspose":  # every input pixel scatters C_out/group x kernel
            return math.prod(x) * math.prod(weight[1:])
        return math.prod(out) * math.prod(weight[1:])  # per output: C_in/group x kernel
    if node.op_type in MATMULS:
        a_index, _ = MATMULS[node.op_type]
        a, out = shapes.get(node.input[a_index]), shapes.get(node.output[0])
        if a is None or out is None:
            return None
        inner = a[-1]
        if node.op_type == "Gemm" and _attribute(node, "transA", 0):
            inner = a[0]
        return math.prod(out) * inner
    return 0


def count_macs(model: onnx.ModelProto | Path) -> MacCount:
    """MACs of one run of `model` (a loaded graph or a file; external weights are not read)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    # data_prop: shapes computed in the graph (Shape -> Concat -> Reshape) become known too
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes = _shapes(inferred)
    count = MacCount()
    for node in inferred.graph.node:
        macs = node_macs(node, shapes)
        if macs is None:
            count.unresolved.append(node.name or node.op_type)
        elif macs:
            count.total += macs
            count.by_op[node.op_type] += macs
    return count
