"""Behaviour of the importer beyond the golden cases: odd graphs, folding
fallbacks, dead code, old-style initializer inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
from onnx import helper, numpy_helper

from frontends.onnx import import_onnx
from tests.frontend.conftest import relative_error, run_onnxruntime
from transcode_ir import print_module, run_function, verify_module


def parse(text: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(text)


def test_initializers_listed_as_inputs_are_parameters() -> None:
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    module = import_onnx(model)
    assert [a.name for a in module["forward"].args] == ["x"]
    assert module.params["w"].kind == "weight"


def test_rare_ops_on_constants_fold_in_numpy() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[4] x) => (float[4] y)
{
  ones = Constant <value = float[4] {1.0, 1.0, 1.0, 1.0}> ()
  axis = Constant <value = int64 {0}> ()
  ramp = CumSum(ones, axis)
  y = Mul(x, ramp)
}
""")
    module = import_onnx(model)
    text = print_module(module)
    assert "dense<f32, [4], [1.0, 2.0, 3.0, 4.0]>" in text
    (y,) = run_function(module, "forward", {"x": np.ones(4, np.float32)})
    assert y.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_outputs_that_are_inputs_constants_or_weights() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2] x) => (float[2] same, int64[2] shape, float[3, 4] table)
<float[3, 4] table = {1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.}>
{
  same = Identity(x)
  shape = Constant <value = int64[2] {3, 4}> ()
}
""")
    module = import_onnx(model)
    verify_module(module)
    same, shape, table = run_function(module, "forward", {"x": np.array([1.0, 2.0], np.float32)})
    assert same.tolist() == [1.0, 2.0] and shape.tolist() == [3, 4]
    assert table.shape == (3, 4)
    assert module["forward"].result_names == ["same", "shape", "table"]


def test_dead_nodes_leave_nothing_behind() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2, 3] x) => (float[2, 3] y)
<float[3, 5] unused_weight = {1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.}>
{
  dead = MatMul(x, unused_weight)
  also_dead = Relu(dead)
  y = Relu(x)
}
""")
    module = import_onnx(model)
    assert [op.name for op in module["forward"]] == ["nn.relu", "func.return"]
    assert not module.params


def test_weights_feeding_computations_are_not_folded() -> None:
    """Autodiff needs weights as parameters: w * 2 stays an op on the weight."""
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2, 3] x) => (float[2, 3] y)
<float[3] scale = {1., 2., 3.}, float two = {2.0}>
{
  doubled = Mul(scale, two)
  y = Mul(x, doubled)
}
""")
    module = import_onnx(model)
    names = [op.name for op in module["forward"]]
    assert names.count("arith.mul") == 2
    assert module.params["scale"].kind == "weight"
    x = np.ones((2, 3), np.float32)
    (expected,) = run_onnxruntime(model, {"x": x})
    (actual,) = run_function(module, "forward", {"x": x})
    assert relative_error(actual, expected) == 0.0


def test_module_name_defaults_to_the_file_name(tmp_path) -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2] x) => (float[2] y) { y = Relu(x) }
""")
    path = tmp_path / "tiny-relu.onnx"
    onnx.save(model, str(path))
    assert import_onnx(path).name == "tiny-relu"
    assert import_onnx(model).name == "main"
    assert import_onnx(model, name="other").name == "other"
