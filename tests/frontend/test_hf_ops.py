"""The ONNX ops that stock Hugging Face exports contain (issue 11), one small
graph each, built with ``onnx.helper``: the imported module's interpreter
against onnxruntime (max-abs-error / max-abs-reference <= 1e-4), with the op's
inputs known at import time (folded in numpy) and at run time (lowered to IR
ops), and the lowered module exported back to ONNX and run again.

Cases: IsNaN / IsInf (and the ``Where(IsNaN(softmax))`` guard of torch's SDPA
export), GatherElements (with the >64-entry ``token_type_ids`` gather that
broke ``onnx.reference``), GatherND (batch_dims 0 and 1, the dynamo mask
lookup on a bool mask), CumSum, Trilu, 2-D Conv (patch embedding and a general
one with pads, strides, dilations, groups), and the fold-only ops with numpy
folders.  All run in well under a second each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.onnx import export_function
from frontends.onnx import import_onnx
from tests.frontend.conftest import relative_error, run_onnxruntime
from transcode_ir import Module, print_module, run_function, verify_module

BOUND = 1e-4
_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
          np.dtype(np.int32): TensorProto.INT32, np.dtype(bool): TensorProto.BOOL}


def _graph(op: str, inputs: Sequence[tuple[str, np.ndarray | None]], runtime: set[str],
           opset: int, outputs: int = 1, **attrs: Any) -> tuple[onnx.ModelProto, dict]:
    """One ``op`` node; inputs named in ``runtime`` are graph inputs, the others
    Constant nodes (known at import time); ``None`` is a missing optional input."""
    nodes, graph_inputs, feeds, names = [], [], {}, []
    for name, array in inputs:
        if array is None:
            names.append("")
            continue
        names.append(name)
        if name in runtime:
            graph_inputs.append(helper.make_tensor_value_info(name, _TYPES[array.dtype], array.shape))
            feeds[name] = array
        else:
            nodes.append(helper.make_node("Constant", [], [name],
                                          value=numpy_helper.from_array(array, name)))
    out_names = [f"y{i}" for i in range(outputs)]
    nodes.append(helper.make_node(op, names, out_names, name=f"/block/{op}", **attrs))
    graph = helper.make_graph(nodes, "g", graph_inputs,
                              [helper.make_empty_tensor_value_info(n) for n in out_names])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    _type_outputs(model)
    return model, feeds


def _type_outputs(model: onnx.ModelProto) -> None:
    """Give the graph outputs the types shape inference finds."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {i.name: i for i in list(inferred.graph.value_info) + list(inferred.graph.output)
             if i.type.tensor_type.elem_type}
    for output in model.graph.output:
        output.type.CopyFrom(infos[output.name].type)


def check(model: onnx.ModelProto, feeds: dict, round_trip: bool = True) -> Module:
    """Import, verify, run against onnxruntime; export the module and run that too."""
    module = import_onnx(model)
    verify_module(module)
    expected = run_onnxruntime(model, feeds)
    actual = run_function(module, "forward", feeds)
    for e, a in zip(expected, actual):
        assert a.dtype == e.dtype and relative_error(a, e) <= BOUND, print_module(module)
    if round_trip:
        exported = export_function(module)
        again = run_onnxruntime(exported, feeds)
        for e, a in zip(expected, again):
            assert relative_error(a, e) <= BOUND
    return module


def op_names(module: Module) -> set[str]:
    return {op.name for op in module["forward"]}


RNG = np.random.default_rng(11)
OPSETS = (17, 20)


def _specials(shape: tuple[int, ...]) -> np.ndarray:
    x = RNG.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, np.nan]
    return x


# ----------------------------------------------------------------------------- IsNaN, IsInf


@pytest.mark.parametrize("attrs,opset", [({}, 17), ({"detect_negative": 0}, 20),
                                         ({"detect_positive": 0}, 18)])
def test_isinf_and_isnan(opset: int, attrs: dict) -> None:
    x = _specials((3, 5))
    module = check(*_graph("IsInf", [("x", x)], {"x"}, opset, **attrs))
    assert "arith.isinf" in op_names(module)
    module = check(*_graph("IsNaN", [("x", x)], {"x"}, opset))
    assert "arith.isnan" in op_names(module)
    folded = check(*_graph("IsNaN", [("x", x)], set(), opset), round_trip=False)
    assert op_names(folded) <= {"tensor.constant", "func.return"}


@pytest.mark.parametrize("opset", OPSETS)
def test_sdpa_nan_guard(opset: int) -> None:
    """TorchScript's SDPA export: Where(IsNaN(softmax(s)), 0, softmax(s)); a
    fully masked row (all -inf) gives NaN, which the guard turns into zeros."""
    scores = RNG.standard_normal((2, 4, 4)).astype(np.float32)
    scores[1, 2, :] = -np.inf
    zero = np.array(0.0, np.float32)
    nodes = [helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("IsNaN", ["p"], ["nan"]),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(zero)),
             helper.make_node("Where", ["nan", "zero", "p"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    module = check(model, {"s": scores})
    (y,) = run_function(module, "forward", {"s": scores})
    assert np.all(y[1, 2] == 0) and not np.isnan(y).any()


# ----------------------------------------------------------------------------- GatherElements


@pytest.mark.parametrize("runtime", [set(), {"data"}, {"data", "index"}, {"index"}])
@pytest.mark.parametrize("axis,opset", [(0, 17), (-1, 20)])
def test_gather_elements(opset: int, runtime: set, axis: int) -> None:
    data = RNG.standard_normal((4, 70)).astype(np.float32)
    index_shape = (6, 50) if axis == 0 else (3, 90)
    size = data.shape[axis]
    index = RNG.integers(-size, size, index_shape).astype(np.int64)
    module = check(*_graph("GatherElements", [("data", data), ("index", index)], runtime, opset,
                           axis=axis))
    if runtime:
        assert "tensor.gather" in op_names(module)


def test_gather_elements_with_an_index_repeated_over_batch_and_heads() -> None:
    """DeBERTa's c2p/p2c: relative positions [S, S'] expanded to [B, H, S, S']
    pick from run-time scores [B, H, S, 2K]; the index stays [S, S'] in the IR."""
    relative = RNG.integers(-8, 8, (1, 1, 5, 6)).astype(np.int64)
    const = lambda name, a: helper.make_node("Constant", [], [name],  # noqa: E731
                                             value=numpy_helper.from_array(a, name))
    nodes = [const("relative", relative), const("shape", np.array([2, 3, 5, 6], np.int64)),
             helper.make_node("Expand", ["relative", "shape"], ["index"]),
             helper.make_node("GatherElements", ["scores", "index"], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [2, 3, 5, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    module = check(model, {"scores": RNG.standard_normal((2, 3, 5, 8)).astype(np.float32)})
    (gather,) = [op for op in module["forward"] if op.name == "tensor.gather"]
    assert gather.operands[1].type.shape == (5, 6)


def test_gather_elements_on_a_buffer_longer_than_64() -> None:
    """BERT's embeddings: the token_type_ids buffer [1, 512] expanded and
    gathered at the position ids [1, 128], then looked up in the token-type
    table.  onnx.reference failed on it (axis of more than 64 entries); the
    numpy folder gives zeros of [1, 128] and the lookup is a gather."""
    buffer = np.zeros((1, 512), np.int64)
    table = RNG.standard_normal((2, 8)).astype(np.float32)
    positions = np.arange(128, dtype=np.int64).reshape(1, 128)
    const = lambda name, a: helper.make_node("Constant", [], [name],  # noqa: E731
                                             value=numpy_helper.from_array(a, name))
    nodes = [const("shape", np.array([1, 512], np.int64)), const("positions", positions),
             helper.make_node("Expand", ["token_type_ids", "shape"], ["expanded"]),
             helper.make_node("GatherElements", ["expanded", "positions"], ["types"], axis=1,
                              name="/embeddings/GatherElements"),
             helper.make_node("Gather", ["token_type_embeddings.weight", "types"], ["emb"]),
             helper.make_node("Add", ["emb", "x"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 8])],
        [numpy_helper.from_array(buffer, "token_type_ids"),
         numpy_helper.from_array(table, "token_type_embeddings.weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    module = check(model, {"x": RNG.standard_normal((1, 128, 8)).astype(np.float32)})
    assert "tensor.gather" in op_names(module)
    assert module.params["token_type_embeddings.weight"].kind == "weight"


# ----------------------------------------------------------------------------- GatherND


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("runtime", [set(), {"data"}, {"data", "index"}])
def test_gather_nd(opset: int, runtime: set) -> None:
    data = RNG.standard_normal((3, 4, 5, 2)).astype(np.float32)
    index = np.stack([RNG.integers(-3, 3, (6, 2)), RNG.integers(-4, 4, (6, 2))], -1)  # [6, 2, 2]
    check(*_graph("GatherND", [("data", data), ("index", index.astype(np.int64))], runtime, opset))
    batched = RNG.integers(-5, 5, (3, 7, 1)).astype(np.int64)                         # batch_dims 1
    check(*_graph("GatherND", [("data", data[:, 0]), ("index", batched)], runtime, opset,
                  batch_dims=1))


def test_gather_nd_mask_lookup() -> None:
    """The dynamo export of transformers' mask code: the run-time 2-D mask,
    cast to bool, indexed by a constant [1, 1, 1, S, 2] grid."""
    seq = 16
    grid = np.stack(np.meshgrid(np.zeros(1, np.int64), np.arange(seq), indexing="ij"), -1)
    index = grid.reshape(1, 1, 1, seq, 2).astype(np.int64)
    nodes = [helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.BOOL),
             helper.make_node("Constant", [], ["index"], value=numpy_helper.from_array(index)),
             helper.make_node("GatherND", ["mask", "index"], ["y"], batch_dims=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, seq])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, [1, 1, 1, seq])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    mask = np.ones((1, seq), np.int64)
    mask[0, -5:] = 0
    check(model, {"attention_mask": mask})


# ----------------------------------------------------------------------------- CumSum, Trilu


@pytest.mark.parametrize("runtime", [set(), {"x"}])
@pytest.mark.parametrize("attrs,opset", [({}, 17), ({"exclusive": 1}, 20), ({"reverse": 1}, 18),
                                         ({"exclusive": 1, "reverse": 1}, 17)])
def test_cumsum(opset: int, runtime: set, attrs: dict) -> None:
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    module = check(*_graph("CumSum", [("x", x), ("axis", np.array(-2, np.int64))], runtime, opset,
                           **attrs))
    assert ("tensor.cumsum" in op_names(module)) == bool(runtime)
    # RoBERTa's position ids: the running count of a run-time int64 mask.
    mask = (RNG.random((2, 9)) < 0.7).astype(np.int64)
    check(*_graph("CumSum", [("x", mask), ("axis", np.array(1, np.int32))], runtime, opset, **attrs))


@pytest.mark.parametrize("runtime", [set(), {"x"}])
@pytest.mark.parametrize("upper,k,opset", [(1, None, 17), (1, 1, 20), (0, -1, 18), (0, None, 17)])
def test_trilu(opset: int, runtime: set, upper: int, k: int | None) -> None:
    x = RNG.standard_normal((2, 4, 6)).astype(np.float32)
    inputs = [("x", x)] + ([("k", np.array(k, np.int64))] if k is not None else [])
    check(*_graph("Trilu", inputs, runtime, opset, upper=upper))


# ----------------------------------------------------------------------------- 2-D Conv


def _conv(x_shape: tuple, w_shape: tuple, bias: bool, opset: int = 17, **attrs: Any
          ) -> tuple[onnx.ModelProto, dict]:
    w = (RNG.standard_normal(w_shape) * 0.3).astype(np.float32)
    inits = [numpy_helper.from_array(w, "conv.weight")]
    inputs = ["x", "conv.weight"]
    if bias:
        inits.append(numpy_helper.from_array(RNG.standard_normal(w_shape[0]).astype(np.float32),
                                             "conv.bias"))
        inputs.append("conv.bias")
    node = helper.make_node("Conv", inputs, ["y"], name="/conv/Conv", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_empty_tensor_value_info("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    _type_outputs(model)
    return model, {"x": RNG.standard_normal(x_shape).astype(np.float32)}


@pytest.mark.parametrize("opset", OPSETS)
def test_conv2d_patch_embedding(opset: int) -> None:
    """ViT's patch embedding (kernel = stride, no padding): patches by reshape
    and transpose, then one matmul [N, patches, C*KH*KW] x [C*KH*KW, M]."""
    module = check(*_conv((2, 3, 32, 30), (16, 3, 8, 8), True, opset, strides=[8, 8],
                          kernel_shape=[8, 8]))
    names = op_names(module)
    assert "tensor.matmul" in names and "tensor.gather" not in names
    (matmul,) = [op for op in module["forward"] if op.name == "tensor.matmul"]
    assert matmul.operands[0].type.shape == (2, 4 * 3, 3 * 8 * 8)     # crop 30 -> 24: 4 x 3 patches
    assert module.params["conv.weight_matrix"].type.shape == (192, 16)
    assert module.params["conv.weight_matrix"].kind == "weight"


@pytest.mark.parametrize("attrs", [
    {"pads": [1, 0, 2, 1], "strides": [2, 1], "dilations": [1, 2], "group": 2},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "group": 4},
    {"auto_pad": "VALID", "dilations": [2, 1]},
])
def test_conv2d_general(attrs: dict) -> None:
    cg = 4 // attrs.get("group", 1)
    module = check(*_conv((2, 4, 9, 7), (8, cg, 3, 3), "group" not in attrs, **attrs))
    assert "tensor.matmul" in op_names(module)


# ----------------------------------------------------------------------------- fold-only ops


FOLD_CASES = {
    "ScatterND": ([("data", np.arange(12, dtype=np.float32).reshape(3, 4)),
                   ("index", np.array([[2], [0]], np.int64)),
                   ("updates", -np.ones((2, 4), np.float32))], {}),
    "ScatterElements": ([("data", np.zeros((3, 4), np.float32)),
                         ("index", np.array([[1, 0, 2, 1], [1, 1, 0, 0]], np.int64)),
                         ("updates", np.arange(8, dtype=np.float32).reshape(2, 4))],
                        {"axis": 0, "reduction": "add"}),
    "OneHot": ([("index", np.array([[0, 2], [-1, 1]], np.int64)), ("depth", np.array(3, np.int64)),
                ("values", np.array([0.5, 2.0], np.float32))], {"axis": 1}),
    "Einsum": ([("a", np.arange(6, dtype=np.float32).reshape(2, 3)),
                ("b", np.arange(12, dtype=np.float32).reshape(3, 4))], {"equation": "ij,jk->ki"}),
    "ArgMax": ([("x", np.array([[1, 3, 3], [2, 2, 0]], np.float32))],
               {"axis": 1, "keepdims": 0, "select_last_index": 1}),
    "NonZero": ([("x", np.array([[0, 1, 0], [2, 0, 3]], np.int64))], {}),
    "Softmax": ([("x", np.arange(6, dtype=np.float32).reshape(2, 3))], {"axis": 0}),
    "Pad": ([("x", np.arange(6, dtype=np.float32).reshape(2, 3)),
             ("pads", np.array([1, 2, 0, 1], np.int64))], {"mode": "reflect"}),
    "Range": ([("start", np.array(2, np.int64)), ("limit", np.array(11, np.int64)),
               ("delta", np.array(3, np.int64))], {}),
}


@pytest.mark.parametrize("op", sorted(FOLD_CASES))
def test_fold_only_ops_match_onnxruntime(op: str) -> None:
    inputs, attrs = FOLD_CASES[op]
    model, feeds = _graph(op, inputs, set(), 18, **attrs)
    module = check(model, feeds, round_trip=False)
    assert op_names(module) <= {"tensor.constant", "tensor.param", "func.return"}


# ----------------------------------------------------------------------------- tied LM head


def tied_head_model(transposed_initializer: bool) -> tuple[onnx.ModelProto, dict]:
    """GPT-2's tied embedding: Gather(table, ids) ... MatMul(h, tableᵀ), the
    transpose written as a second initializer (TorchScript, dynamo's optimizer)
    or as a Transpose node (dynamo with dynamic shapes)."""
    table = RNG.standard_normal((12, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(table, "wte.weight")]
    nodes = [helper.make_node("Gather", ["wte.weight", "ids"], ["h"], name="/wte/Gather"),
             helper.make_node("Tanh", ["h"], ["t"])]
    if transposed_initializer:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(table.T), "onnx::MatMul_9"))
        nodes.append(helper.make_node("MatMul", ["t", "onnx::MatMul_9"], ["logits"],
                                      name="/lm_head/MatMul"))
    else:
        nodes += [helper.make_node("Transpose", ["wte.weight"], ["wte_t"], perm=[1, 0]),
                  helper.make_node("MatMul", ["t", "wte_t"], ["logits"], name="/lm_head/MatMul")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 5])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 5, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = "pytorch"
    return model, {"ids": RNG.integers(0, 12, (2, 5)).astype(np.int64)}


@pytest.mark.parametrize("transposed_initializer", [True, False])
def test_tied_lm_head_is_one_parameter(transposed_initializer: bool) -> None:
    module = check(*tied_head_model(transposed_initializer))
    weights = {name: p.type.shape for name, p in module.params.items() if p.kind == "weight"}
    # Named as the head's weight (a made-up initializer name) or as the table's transpose.
    name = "lm_head.weight_transposed" if transposed_initializer else "wte.weight_transposed"
    assert weights == {name: (4, 12)}
