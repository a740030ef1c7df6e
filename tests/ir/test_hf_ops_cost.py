"""The ops added for Hugging Face exports have a cost in ELECTOR.

``arith.isnan``/``arith.isinf`` are elementwise and ``tensor.cumsum`` is a
scan (one add per element): both run on the MAC lanes (category ->
form ``lanes``).  A 2-D convolution imports as a matrix product whose
B·M·K·N is the convolution's (N, OH·OW, C·KH·KW, M).  An imported graph using
them compiles with the analytical simulator, every one of these ops taking
cycles and energy.  About a second.
"""

from __future__ import annotations

import numpy as np
import onnx.parser
from onnx import numpy_helper

from backends.elector.compile_pipeline import CompileOptions, compile_module
from backends.elector.tiling import default_unit
from frontends.onnx import import_onnx
from transcode_ir import Builder, Function, Module, TensorType
from transcode_ir.opdefs import matmul_dims, op_cost

MODEL = """
<ir_version: 8, opset_import: ["" : 18]>
main (float[2, 3, 16, 16] pixels, int64[2, 16] mask) => (float[2, 16, 8] y, int64[2, 16] positions)
{
  ["/patch/Conv"] patches = Conv <strides = [4, 4], kernel_shape = [4, 4]> (pixels, w)
  ["/flat/Reshape"] flat = Reshape(patches, shape)
  ["/flat/Transpose"] tokens = Transpose <perm = [0, 2, 1]> (flat)
  ["/attn/Softmax"] p = Softmax <axis = -1> (tokens)
  ["/attn/IsNaN"] bad = IsNaN(p)
  ["/attn/Where"] y = Where(bad, zero, p)
  ["/pos/CumSum"] positions = CumSum(mask, axis)
}
"""


def _model() -> onnx.ModelProto:
    model = onnx.parser.parse_model(MODEL)
    rng = np.random.default_rng(0)
    model.graph.initializer.extend([
        numpy_helper.from_array(rng.standard_normal((8, 3, 4, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([2, 8, 16], np.int64), "shape"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "axis")])
    return model


def test_new_op_kinds_cost_elementwise_work_on_the_lanes() -> None:
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((4, 6)), TensorType((4, 6), "i64")],
                                ["x", "ids"], []))
    f.set_outputs([], [])
    b = Builder(f)
    ops = [b.op("arith.isnan", f.args[0]), b.op("arith.isinf", f.args[0]),
           b.op("tensor.cumsum", f.args[1], axis=1)]
    f.set_outputs(ops, ["a", "b", "c"])
    for value in ops:
        cost = op_cost(value.owner)
        assert cost.ops == 24 and cost.macs == 0 and cost.bytes_in > 0 and cost.bytes_out > 0
        assert default_unit(value.owner) == "mac"


def test_conv2d_is_a_contraction_with_the_convolutions_dims() -> None:
    module = import_onnx(_model())
    (matmul,) = [op for op in module["forward"] if op.name == "tensor.matmul"]
    assert matmul_dims(matmul) == (2, 4 * 4, 3 * 4 * 4, 8)
    assert op_cost(matmul).macs == 2 * 16 * 48 * 8


def test_a_graph_with_the_new_ops_compiles() -> None:
    module = import_onnx(_model())
    outcome = compile_module(module, CompileOptions(hw="acceltran-edge", pipeline="canonicalize"))
    assert outcome.result.cycles > 0
    costed = {op.kind: result for op, result in zip(outcome.mapped.ops, outcome.result.ops)}
    for kind in ("arith.isnan", "tensor.cumsum", "tensor.matmul"):
        assert kind in costed, sorted(costed)
        assert costed[kind].end_cycle > costed[kind].start_cycle
        assert sum(costed[kind].dynamic_energy_nj.values()) > 0
