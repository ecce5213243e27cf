"""external_data.py: models whose weights live in side files, rewritten without loading them,
checked against onnx's own loader (numpy_helper.to_array over onnx.load)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sfmobile.export.external_data import (
    ALIGNMENT,
    gather_external_data,
    hide_weights,
    restore_weights,
)


def two_layer_model() -> onnx.ModelProto:
    """x -> MatMul(w1) -> Add(bias) -> MatMul(w2) -> Reshape: float weights of 128, 2 and 32
    KiB, and a 16-byte int64 shape constant that must stay inline."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 512)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((512, 16)).astype(np.float32), "w2")
    bias = numpy_helper.from_array(rng.standard_normal(512).astype(np.float32), "bias")
    shape = numpy_helper.from_array(np.array([2, 16], np.int64), "shape")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["hb"]),
        helper.make_node("MatMul", ["hb", "w2"], ["y0"]),
        helper.make_node("Reshape", ["y0", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])],
        [w1, w2, bias, shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def arrays(path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_gather_copies_tensors_from_several_files_into_one_aligned_side_file(tmp_path):
    model = two_layer_model()
    expected = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    source = tmp_path / "source"
    source.mkdir()
    # w1 and w2 each in their own file (as torch's exporter writes them), bias inline.
    onnx.save_model(
        model,
        str(source / "m.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=4096,
    )
    assert sorted(p.name for p in source.iterdir()) == ["m.onnx", "w1", "w2"]
    gather_external_data(source / "m.onnx", tmp_path / "unet.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source", "unet.onnx", "unet.onnx.data"]
    gathered = onnx.load(str(tmp_path / "unet.onnx"), load_external_data=False).graph
    places = {
        t.name: {e.key: e.value for e in t.external_data}
        for t in gathered.initializer
        if t.data_location == TensorProto.EXTERNAL
    }
    assert sorted(places) == ["bias", "w1", "w2"]  # the 16-byte shape stays inline
    assert {p["location"] for p in places.values()} == {"unet.onnx.data"}
    assert all(int(p["offset"]) % ALIGNMENT == 0 for p in places.values())
    found = arrays(tmp_path / "unet.onnx")
    assert found.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(found[name], array)


def test_hidden_weights_are_graph_inputs_and_come_back_unchanged(tmp_path):
    model = two_layer_model()
    onnx.save_model(
        model,
        str(tmp_path / "m.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    hidden = hide_weights(tmp_path / "m.onnx", tmp_path / "visible.onnx", ("MatMul",))
    visible = onnx.load(str(tmp_path / "visible.onnx"), load_external_data=False).graph
    # bias (read by Add only) is hidden; the MatMul weights and the int64 shape are not.
    assert [t.name for t in hidden] == ["bias"]
    assert sorted(t.name for t in visible.initializer) == ["shape", "w1", "w2"]
    assert [i.name for i in visible.input] == ["x", "bias"]
    onnx.checker.check_model(
        onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "visible.onnx")))
    )
    restore_weights(tmp_path / "visible.onnx", hidden, tmp_path / "restored.onnx")
    restored = onnx.load(str(tmp_path / "restored.onnx"))
    assert [i.name for i in restored.graph.input] == ["x"]
    expected = {t.name: numpy_helper.to_array(t) for t in two_layer_model().graph.initializer}
    found = arrays(tmp_path / "restored.onnx")
    assert found.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(found[name], array)
