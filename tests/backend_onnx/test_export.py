"""The exporter's contract: names, source locations, parameter writes, large
models, and errors a user can act on."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import backends.onnx.exporter as exporter_module
from backends.onnx import NOT_EXPORTABLE, OnnxExportError, export_function, max_opset, save_onnx
from tests.backend_onnx.checks import assert_close, check_against_interpreter, run_onnx
from transcode_ir import Builder, Function, Interpreter, Module, Op, TensorType


def encoder_block() -> Module:
    """A small attention-free block with locs, as the ONNX importer would make it."""
    rng = np.random.default_rng(0)
    m = Module("block")
    m.add_param("dense.weight", rng.standard_normal((8, 8)).astype(np.float32))
    m.add_param("dense.bias", rng.standard_normal((8,)).astype(np.float32))
    m.add_param("norm.weight", rng.standard_normal((8,)).astype(np.float32))
    f = m.add_function(Function("forward", [TensorType((2, 5, 8))], ["hidden"], ["out"]))
    f.set_outputs([f.args[0]], ["out"])
    b = Builder(f)
    h = b.op("tensor.matmul", f.args[0], b.param("dense.weight", loc="dense"), loc="dense")
    h = b.op("arith.add", h, b.param("dense.bias", loc="dense"), loc="dense")
    h = b.op("nn.gelu", h, loc="act")
    h = b.op("arith.add", h, f.args[0], loc="residual")
    h = b.op("nn.layer_norm", h, b.param("norm.weight"), epsilon=1e-12, loc="norm")
    f.set_outputs([h], ["last_hidden_state"])
    return m


def hidden_input() -> dict[str, np.ndarray]:
    return {"hidden": np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)}


def test_names_follow_the_function_and_the_locs():
    model = export_function(encoder_block(), opset=20)  # one node per op (Gelu from 20)
    graph = model.graph
    assert [i.name for i in graph.input] == ["hidden"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    assert {t.name for t in graph.initializer} == {"dense.weight", "dense.bias", "norm.weight"}
    names = [n.name for n in graph.node]
    assert names == ["dense#1", "dense#3", "act#4", "residual#5", "norm#7"]
    dense = graph.node[0]
    props = {p.key: p.value for p in dense.metadata_props}
    assert props == {"transcode.op": "tensor.matmul", "transcode.loc": "dense",
                     "transcode.index": "1"}
    assert 'loc("dense")' in dense.doc_string
    # IR result %N is tensor vN, typed as in the IR.
    infos = {v.name: v for v in graph.value_info}
    assert list(dense.output) == ["v1"]
    assert [d.dim_value for d in infos["v1"].type.tensor_type.shape.dim] == [2, 5, 8]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {"transcode.module": "block", "transcode.function": "forward"}


def test_pass_annotations_become_node_metadata():
    m = encoder_block()
    matmul = next(op for op in m["forward"] if op.name == "tensor.matmul")
    matmul.set_attr("tile:x", 16)
    matmul.set_attr("elector:module", "pe_array")
    props = {p.key: p.value for p in export_function(m).graph.node[0].metadata_props}
    assert props["transcode.tile:x"] == "16"
    assert props["transcode.elector:module"] == '"pe_array"'


def test_opset_and_ir_version():
    model = export_function(encoder_block(), opset=17)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version >= 10  # node metadata_props
    onnx.checker.check_model(model, full_check=True)


def test_multi_node_emissions_share_the_op_name():
    model = export_function(encoder_block(), opset=13)  # Gelu and LayerNormalization decomposed
    gelu_nodes = [n for n in model.graph.node if n.name.startswith("act#4")]
    assert len(gelu_nodes) > 1
    assert gelu_nodes[0].name == "act#4/0.Mul"
    assert all({p.key: p.value for p in n.metadata_props}["transcode.loc"] == "act"
               for n in gelu_nodes)
    check_against_interpreter(encoder_block(), model, hidden_input())


def test_function_other_than_forward_and_parameter_writes():
    m = Module("train")
    m.add_param("w", np.arange(4, dtype=np.float32))
    f = m.add_function(Function("step", [TensorType((4,))], ["grad"], []))
    f.set_outputs([], [])
    b = Builder(f)
    w = b.param("w")
    new = b.op("arith.sub", w, b.op("arith.mul", f.args[0], b.constant(np.float32(0.5))))
    b.create("tensor.assign", [new], {"name": "w"}, loc="optimizer")
    loss = b.op("tensor.reduce_sum", new, axes=(0,))
    f.set_outputs([loss], ["loss"])
    model = export_function(m, "step")
    assert [o.name for o in model.graph.output] == ["loss", "w.updated"]
    grad = np.ones(4, np.float32)
    loss_onnx, w_onnx = run_onnx(model, {"grad": grad})
    interpreter = Interpreter(m)
    (loss_ref,) = interpreter.run("step", {"grad": grad})
    assert_close(loss_onnx, loss_ref)
    assert_close(w_onnx, interpreter.last_updates["w"])


def test_same_value_returned_twice_and_arguments_returned():
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((3,))], ["x"], []))
    f.set_outputs([], [])
    y = Builder(f).op("arith.exp", f.args[0])
    f.set_outputs([y, y, f.args[0], f.args[0]], ["a", "b", "x", "x_again"])
    model = export_function(m)
    x = np.array([0.0, 1.0, -1.0], np.float32)
    outs = check_against_interpreter(m, model, {"x": x})
    assert [o.name for o in model.graph.output] == ["a", "b", "x", "x_again"]
    np.testing.assert_array_equal(outs[2], x)


def test_save_onnx_large_model_uses_external_data(tmp_path, monkeypatch):
    m = Module("wide")
    m.add_param("w", np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32))
    f = m.add_function(Function("forward", [TensorType((2, 32))], ["x"], []))
    f.set_outputs([], [])
    f.set_outputs([Builder(f).op("tensor.matmul", f.args[0], Builder(f).param("w"))], ["y"])
    monkeypatch.setattr(exporter_module, "_PROTOBUF_LIMIT", 1024)  # pretend 1 KiB is "2 GiB"
    path = save_onnx(m, tmp_path / "wide.onnx")
    assert (tmp_path / "wide.onnx.data").stat().st_size == 32 * 32 * 4
    x = np.random.default_rng(1).standard_normal((2, 32)).astype(np.float32)
    check_against_interpreter(m, str(path), {"x": x})


def test_save_onnx_small_model_is_one_file(tmp_path):
    path = save_onnx(encoder_block(), tmp_path / "block.onnx", opset=max_opset())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block.onnx"]
    check_against_interpreter(encoder_block(), str(path), hidden_input())


# --------------------------------------------------------------------------- errors


def _with_foreign_op(kind: str) -> Module:
    m = encoder_block()
    f = m["forward"]
    gelu = next(op for op in f if op.name == "nn.gelu")
    foreign = Op(kind, [gelu.operands[0]], [gelu.result.type], loc="encoder.layer.0.mystery")
    f.insert_before(foreign, gelu)
    gelu.set_operand(0, foreign.result)
    return m


def test_unsupported_op_kind_names_op_position_and_supported_list():
    with pytest.raises(OnnxExportError) as err:
        export_function(_with_foreign_op("test.mystery"))
    message = str(err.value)
    assert "op #4 'test.mystery'" in message
    assert 'loc "encoder.layer.0.mystery"' in message
    assert "supported op kinds:" in message and "tensor.matmul" in message and "nn.gelu" in message


def test_not_exportable_op_kind_gives_its_reason(monkeypatch):
    monkeypatch.setitem(NOT_EXPORTABLE, "test.mystery", "mysteries have no ONNX counterpart")
    with pytest.raises(OnnxExportError, match="op #4 'test.mystery'.*mysteries have no ONNX"):
        export_function(_with_foreign_op("test.mystery"))


def test_parameter_without_data():
    m = encoder_block()
    m.params["dense.bias"].data = None
    with pytest.raises(OnnxExportError, match="parameter 'dense.bias' has no data.*npz"):
        export_function(m)


@pytest.mark.parametrize("opset", [12, max_opset() + 1])
def test_unsupported_opset(opset):
    with pytest.raises(OnnxExportError, match=f"opset {opset}: supported opsets are 13 to"):
        export_function(encoder_block(), opset=opset)


def test_unknown_function():
    with pytest.raises(OnnxExportError, match="no function @backward; it has @forward"):
        export_function(encoder_block(), "backward")


def test_result_name_clashing_with_an_argument():
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((3,))], ["x"], []))
    f.set_outputs([], [])
    y = Builder(f).op("arith.exp", f.args[0])
    f.set_outputs([y], ["x"])
    with pytest.raises(OnnxExportError, match="result name 'x'.*name of an argument"):
        export_function(m)


# --------------------------------------------------------------------------- decomposition fallback


def _swish_opdef(decompose):
    from transcode_ir.opdefs import OpDef, Operand

    opdef = OpDef("test.swish", operands=(Operand("x"),), infer=lambda types, attrs: [types[0]],
                  evaluate=lambda op, x, ctx: [(x[0] / (1 + np.exp(-x[0]))).astype(x[0].dtype)],
                  category="nonlinear", doc="x * sigmoid(x), for the tests")
    opdef.decompose = decompose  # what a fused op definition exposes
    return opdef


def _swish_module() -> Module:
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((2, 3))], ["x"], []))
    f.set_outputs([], [])
    b = Builder(f)
    y = b.op("test.swish", f.args[0], loc="act")
    f.set_outputs([b.op("arith.neg", y)], ["y"])
    return m


def test_op_kind_without_emitter_exports_through_its_decomposition(monkeypatch):
    from transcode_ir import opdefs

    def decompose(b, op):
        x = op.operands[0]
        return [b.op("arith.mul", x, b.op("arith.sigmoid", x))]

    monkeypatch.setitem(opdefs._REGISTRY, "test.swish", _swish_opdef(decompose))
    m = _swish_module()
    model = export_function(m)
    assert [n.name for n in model.graph.node] == ["act#0/0.Sigmoid", "act#0/1.Mul", "arith.neg#1"]
    assert {p.key: p.value for p in model.graph.node[0].metadata_props}["transcode.op"] == "test.swish"
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    check_against_interpreter(m, model, {"x": x})


def test_decomposition_into_an_unsupported_op_kind_is_an_error(monkeypatch):
    from transcode_ir import opdefs

    def decompose(b, op):
        return [b.create("test.nowhere", [op.operands[0]], {}, [op.operands[0].type]).result]

    monkeypatch.setitem(opdefs._REGISTRY, "test.swish", _swish_opdef(decompose))
    with pytest.raises(OnnxExportError, match=r"op #0 'test.swish'.*decomposition uses "
                                              r"'test.nowhere'"):
        export_function(_swish_module())


def test_sparsity_encoding_is_documented_on_the_value():
    from tests.backend_onnx.op_cases import CASES, build_case

    module, _ = build_case(next(c for c in CASES if c.id == "nn.prune"))
    model = export_function(module)
    assert model.graph.output[0].doc_string == "density 0.6 (measured) after DynaProp pruning"
