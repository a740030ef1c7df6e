"""Gradients through the ops added for Hugging Face exports (issue 11).

* ``tensor.cumsum`` and the ``Where(IsNaN(x), 0, x)`` guard: the autodiff
  rules against central finite differences in float64 (the helper of
  ``tests/passes/test_gradient_rules.py``).
* 2-D Conv (lowered to patches and a matmul), GatherElements and GatherND
  (lowered to a gather of the flattened data), imported from ONNX with a weight
  as the data: the ``backward`` function of ``autodiff{loss=mse}`` against
  torch autograd of the same computation.

About a second in all (torch is already imported by the test session's other
files; here only small tensors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from frontends.onnx import import_onnx
from tests.passes.test_gradient_rules import check_gradients, rand
from transcode_ir import Interpreter, TensorType, verify_module
from transcode_ir.passes import get_pass


@pytest.mark.parametrize("attrs", [{"axis": 1}, {"axis": -1, "exclusive": True, "reverse": True},
                                   {"axis": 0, "reverse": True}])
def test_cumsum_gradient(attrs: dict) -> None:
    check_gradients({"a": rand(3, 4)}, lambda b, v: b.op(
        "arith.mul", b.op("tensor.cumsum", v["a"], **attrs), v["a"]))


def test_nan_guard_gradient() -> None:
    def build(b: Any, v: dict) -> Any:
        p = b.op("nn.softmax", v["a"])
        return b.op("arith.select", b.op("arith.isnan", p), b.constant(np.float64(0.0)), p)
    check_gradients({"a": rand(2, 5)}, build)


def _imported_gradients(nodes: list, x: np.ndarray, weights: dict[str, np.ndarray],
                        out_shape: tuple[int, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Weight gradients of mean((y - target)^2) for the one-input graph, through
    the importer and autodiff; also the target used."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(w, name) for name, w in weights.items()])
    module = import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    get_pass("autodiff", loss="mse", optimizer="sgd").apply(module)
    verify_module(module)
    target = np.random.default_rng(5).standard_normal(out_shape).astype(np.float32)
    results = Interpreter(module).run("backward", {"x": x, "target": target})
    names = module["backward"].result_names
    return {n[:-len(".grad")]: r for n, r in zip(names[1:], results[1:])}, target


def _torch_grad(fn: Any, x: np.ndarray, weight: np.ndarray, target: np.ndarray) -> np.ndarray:
    import torch

    w = torch.tensor(weight, requires_grad=True)
    y = fn(torch.tensor(x), w)
    ((y - torch.tensor(target)) ** 2).mean().backward()
    return w.grad.numpy()


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = float(np.max(np.abs(expected)))
    assert float(np.max(np.abs(actual - expected))) <= 1e-4 * scale


@pytest.mark.parametrize("attrs", [{"strides": [4, 4]},
                                   {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2]}])
def test_conv2d_gradient_matches_torch(attrs: dict) -> None:
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = (rng.standard_normal((5, 3, 4, 4)) * 0.2).astype(np.float32)
    pads = attrs.get("pads", [0, 0, 0, 0])

    def conv(xt: Any, wt: Any) -> Any:
        xt = torch.nn.functional.pad(xt, (pads[1], pads[3], pads[0], pads[2]))
        return torch.nn.functional.conv2d(xt, wt, stride=attrs["strides"],
                                          dilation=attrs.get("dilations", [1, 1]))

    out_shape = tuple(conv(torch.tensor(x), torch.tensor(w)).shape)
    grads, target = _imported_gradients(
        [helper.make_node("Conv", ["x", "conv.weight"], ["y"], **attrs)], x, {"conv.weight": w},
        out_shape)
    expected = _torch_grad(conv, x, w, target)
    # The IR holds the weight as the [C*KH*KW, M] matrix of the patch product.
    _close(grads["conv.weight_matrix"], expected.reshape(5, -1).T)


def test_gather_elements_and_gather_nd_gradients_match_torch() -> None:
    import torch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    table = rng.standard_normal((3, 6)).astype(np.float32)
    index = rng.integers(-6, 6, (3, 6)).astype(np.int64)                 # repeats accumulate
    points = np.array([[0, 1], [2, -1], [0, 1], [1, 3]], np.int64)
    nodes = [helper.make_node("Constant", [], ["index"], value=numpy_helper.from_array(index)),
             helper.make_node("Constant", [], ["points"], value=numpy_helper.from_array(points)),
             helper.make_node("GatherElements", ["table", "index"], ["picked"], axis=1),
             helper.make_node("GatherND", ["table", "points"], ["chosen"]),
             helper.make_node("Mul", ["picked", "x"], ["scaled"]),
             helper.make_node("ReduceSum", ["scaled"], ["rows"], keepdims=0, noop_with_empty_axes=0),
             helper.make_node("Add", ["rows", "chosen"], ["y"])]
    grads, target = _imported_gradients(nodes, x, {"table": table}, (4,))

    def fn(xt: Any, wt: Any) -> Any:
        wrapped = torch.tensor(np.where(index < 0, index + 6, index))
        picked = torch.gather(wt, 1, wrapped)
        chosen = wt[torch.tensor(points[:, 0]), torch.tensor(points[:, 1] % 6)]
        return (picked * xt).sum() + chosen

    _close(grads["table"], _torch_grad(fn, x, table, target))


def test_guarded_attention_gradient() -> None:
    """nn.attention with the SDPA NaN guard (finite scores: the guard changes nothing)."""
    check_gradients({"q": rand(2, 3, 4), "kt": rand(2, 4, 5), "v": rand(2, 5, 2), "m": rand(2, 1, 5)},
                    lambda b, v: b.op("nn.attention", v["q"], v["kt"], v["v"], v["m"], scale=0.5,
                                      nan_to_zero=True))


def test_fuse_absorbs_the_sdpa_nan_guard() -> None:
    """matmul(select(isnan(p), 0, p), v) with p = softmax(q @ kt * s + mask) fuses
    into one nn.attention {nan_to_zero} that computes the same, fully masked rows included."""
    from transcode_ir import Builder, Function, Module, run_function

    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((2, 3, 4)), TensorType((2, 4, 5)),
                                            TensorType((2, 5, 2)), TensorType((2, 3, 5))],
                                ["q", "kt", "v", "mask"], []))
    f.set_outputs([], [])
    b = Builder(f)
    q, kt, v, mask = f.args
    s = b.op("arith.add", b.op("arith.mul", b.op("tensor.matmul", q, kt),
                               b.constant(np.float32(0.5))), mask)
    p = b.op("nn.softmax", s, axis=-1)
    guarded = b.op("arith.select", b.op("arith.isnan", p), b.constant(np.float32(0.0)), p)
    f.set_outputs([b.op("tensor.matmul", guarded, v)], ["y"])
    rng = np.random.default_rng(2)
    feeds = {"q": rng.standard_normal((2, 3, 4)).astype(np.float32),
             "kt": rng.standard_normal((2, 4, 5)).astype(np.float32),
             "v": rng.standard_normal((2, 5, 2)).astype(np.float32),
             "mask": np.zeros((2, 3, 5), np.float32)}
    feeds["mask"][1, 1, :] = -np.inf
    (before,) = run_function(m, "forward", feeds)
    get_pass("fuse").apply(m)
    get_pass("dce").apply(m)
    kinds = [op.name for op in m["forward"]]
    assert kinds.count("nn.attention") == 1 and "arith.isnan" not in kinds, kinds
    (attention,) = [op for op in m["forward"] if op.name == "nn.attention"]
    assert attention.attributes["nan_to_zero"] is True
    (after,) = run_function(m, "forward", feeds)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    assert np.all(after[1, 1] == 0)


def test_tied_lm_head_gradient_sums_both_uses() -> None:
    """One parameter for the tied table: its gradient is the lookup's plus the head's."""
    import torch

    from tests.frontend.test_hf_ops import tied_head_model

    model, feeds = tied_head_model(True)
    module = import_onnx(model)
    get_pass("autodiff", loss="mse", optimizer="sgd").apply(module)
    verify_module(module)
    target = np.random.default_rng(4).standard_normal((2, 5, 12)).astype(np.float32)
    results = Interpreter(module).run("backward", {"ids": feeds["ids"], "target": target})
    grads = dict(zip(module["backward"].result_names[1:], results[1:]))
    matrix = module.params["lm_head.weight_transposed"].data
    w = torch.tensor(np.ascontiguousarray(matrix.T), requires_grad=True)    # the torch table [V, H]
    logits = torch.tanh(w[torch.tensor(feeds["ids"])]) @ w.T
    ((logits - torch.tensor(target)) ** 2).mean().backward()
    _close(grads["lm_head.weight_transposed.grad"], w.grad.numpy().T)
