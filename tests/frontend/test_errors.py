"""Bad input to the importer: each is a UserError with a one-paragraph message
that says what is wrong, where, and what would be accepted."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.parser
import pytest
from onnx import helper

from frontends.onnx import OnnxImportError, ShapeBindingError, import_onnx
from transcode_ir.errors import UserError


def parse(text: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(text)


def message_of(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(excinfo.value)
    assert isinstance(excinfo.value, UserError)
    assert "\n" not in message, f"not one paragraph: {message!r}"
    return message


MASK_MODEL = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[batch, 2, sequence, sequence] scores, int64[batch, sequence] mask, float[4, 3] fixed) => (float[batch, 2, sequence, sequence] y)
{
  y = Identity(scores)
}
""")


def saved(tmp_path: Path, model: onnx.ModelProto, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


# ----------------------------------------------------------------------------- files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(tmp_path / "absent.onnx")
    assert message_of(excinfo) == f"{tmp_path / 'absent.onnx'}: no such file"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(tmp_path)
    assert "is a directory" in message_of(excinfo)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(path)
    assert "empty, not an ONNX model" in message_of(excinfo)


@pytest.mark.parametrize("content", [
    b"this is a text file, not a model\n" * 3,
    b"\x08\x07\x12\x05hello\x3a\x02xx",  # valid protobuf framing, not a model
    bytes(range(256)) * 4,
])
def test_not_onnx(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(path)
    message = message_of(excinfo)
    assert message.startswith(f"{path}: not an ONNX model"), message


def _model_with_weights() -> onnx.ModelProto:
    import numpy as np
    from onnx import numpy_helper

    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "dense.weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "dense.weight"], ["y"], name="/dense/MatMul")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 64])],
        [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.99])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    path = saved(tmp_path, _model_with_weights())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(path)
    message = message_of(excinfo)
    assert "truncated" in message and str(path) in message


def test_the_full_file_imports(tmp_path: Path) -> None:
    module = import_onnx(saved(tmp_path, _model_with_weights()))
    assert module.params["dense.weight"].type.shape == (64, 64)


def test_checker_failure(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["nowhere"], ["y"], name="relu")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(saved(tmp_path, model))
    message = message_of(excinfo)
    assert "fails onnx.checker" in message and "nowhere" in message


def test_missing_external_data(tmp_path: Path) -> None:
    model = _model_with_weights()
    path = tmp_path / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="external.onnx.data",
              size_threshold=0)
    (tmp_path / "external.onnx.data").unlink()
    with pytest.raises(UserError) as excinfo:
        import_onnx(path)
    assert "external.onnx.data" in message_of(excinfo)


def test_external_data_imports(tmp_path: Path) -> None:
    model = _model_with_weights()
    path = tmp_path / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="external.onnx.data",
              size_threshold=0)
    module = import_onnx(path)
    assert float(module.params["dense.weight"].data.sum()) == 64 * 64


def test_opset_out_of_range() -> None:
    model = parse("""
<ir_version: 4, opset_import: ["" : 9]>
main (float[2] x) => (float[2] y) { y = Relu(x) }
""")
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    assert "opset 9 is not supported; the importer reads opsets 10 to 23" in message_of(excinfo)


# ----------------------------------------------------------------------------- operators


def test_unsupported_operator_lists_what_is_supported() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2, 3] x) => (float[2, 3] y)
{
  ["/encoder/mix/Hardmax"] y = Hardmax <axis = 1> (x)
}
""")
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    message = message_of(excinfo)
    assert "unsupported ONNX operator 'Hardmax'" in message
    assert "node '/encoder/mix/Hardmax' in encoder.mix" in message
    assert "the importer supports" in message and "MatMul" in message and "Softmax" in message


def test_unsupported_domain() -> None:
    graph = helper.make_graph(
        [helper.make_node("FastGelu", ["x"], ["y"], name="fast", domain="com.microsoft")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    assert "unsupported ONNX operator 'FastGelu' of domain 'com.microsoft' (node 'fast')" \
        in message_of(excinfo)


def test_conv3d_is_refused() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[1, 2, 5, 5, 5] x, float[3, 2, 3, 3, 3] w) => (float[1, 3, 3, 3, 3] y)
{
  ["/conv/Conv"] y = Conv(x, w)
}
""")
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    message = message_of(excinfo)
    assert "node '/conv/Conv' (Conv)" in message and "Conv with 3 spatial axes" in message
    assert "two ([N, C, H, W])" in message


def test_fold_only_operator_on_model_inputs() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[4] x) => (float[4] y)
{
  ["/round/Floor"] y = Floor(x)
}
""")
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    message = message_of(excinfo)
    assert "Floor is supported only when its inputs are known at import time" in message
    assert "'x' depends on the model's inputs" in message


def test_reshape_to_a_computed_shape() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2, 6] x, int64[2] shape) => (float[3, 4] y)
{
  ["/view/Reshape"] y = Reshape(x, shape)
}
""")
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    message = message_of(excinfo)
    assert "node '/view/Reshape' (Reshape)" in message
    assert "must be known at import time" in message


def test_shapes_that_do_not_broadcast() -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[batch, 3] x, float[batch, 4] z) => (float[batch, 3] y)
{
  ["/mix/Add"] y = Add(x, z)
}
""")
    with pytest.raises(UserError) as excinfo:
        import_onnx(model, {"x": (2, 3), "z": (5, 4)})
    # the shapes contradict each other through the shared symbol
    assert "'batch'" in message_of(excinfo)
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(model)
    message = message_of(excinfo)
    assert "node '/mix/Add' (Add)" in message and "do not broadcast" in message


# ----------------------------------------------------------------------------- shape bindings


@pytest.mark.parametrize("shapes,expected", [
    ({"input_ids": (1, 8)},
     ("input shape given for 'input_ids', which is not an input of the model; its inputs are "
     "scores [batch, 2, sequence, sequence], mask [batch, sequence], fixed [4, 3]")),
    ({"mask": (1, 8, 3)},
     ("input shape 1x8x3 for 'mask' has rank 3, but the model's input 'mask' has rank 2 "
     "(dims [batch, sequence])")),
    ({"fixed": (4, 5)},
     "input shape 4x5 for 'fixed' sets axis 1 to 5, but the model fixes it at 3 (dims [4, 3])"),
    ({"mask": (0, 8)},
     ("input shape for 'mask' must be a sequence of positive integers such as (4, 128), "
     "got (0, 8)")),
    ({"mask": "1x8"}, "input shape for 'mask' must be a sequence of positive integers"),
    ({"mask": (2, 8), "scores": (3, 2, 8, 8)},
     ("input shape 3x2x8x8 for 'scores' sets dimension 'batch' to 3, but the shape given for "
     "'mask' sets it to 2")),
])
def test_shape_binding_errors(shapes: dict, expected: str) -> None:
    with pytest.raises(ShapeBindingError) as excinfo:
        import_onnx(MASK_MODEL, shapes)
    assert expected in message_of(excinfo)


def test_shape_binding_by_symbol() -> None:
    module = import_onnx(MASK_MODEL, {"mask": (3, 7)})
    shapes = [a.type.shape for a in module["forward"].args]
    assert shapes == [(3, 2, 7, 7), (3, 7), (4, 3)]


def test_not_a_model_object() -> None:
    with pytest.raises(OnnxImportError) as excinfo:
        import_onnx(42)
    assert "expected a path to an .onnx file or an onnx.ModelProto, got int" in message_of(excinfo)
