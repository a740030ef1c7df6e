"""Issue 13: folding never materialises a tensor of the input's size.

A graph with the patterns of transformers' BERT export, by hand: the default
mask ``ConstantOfShape(Shape(input_ids))``, the ``token_type_ids`` buffer
sliced and expanded to the batch, and the mask lookup through the index grid
``arange(batch) * seq + arange(seq)``.  Imported at batch 1,000,000 x sequence
512 (an int64 tensor of that shape is 4.1 GB), the traced allocations of the
import stay below 64 MB; at batch 2 the module matches onnxruntime.  Well under
a second.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx.parser

from frontends.onnx import import_onnx
from tests.frontend.conftest import relative_error, run_onnxruntime
from transcode_ir import run_function, verify_module

MODEL = """
<ir_version: 8, opset_import: ["" : 17]>
main (int64[batch, sequence] input_ids, float[batch, sequence] x) => (float[batch, sequence, 4] y)
<int64[1, 512] token_type_ids = {%s}, float[2, 4] types = {0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 3.0, 0.125}>
{
  shape = Shape(input_ids)
  ones = ConstantOfShape <value = float[1] {1.0}> (shape)
  zero = Constant <value = int64[1] {0}> ()
  one = Constant <value = int64[1] {1}> ()
  seq = Gather <axis = 0> (shape, one)
  batch = Gather <axis = 0> (shape, zero)
  buffered = Slice(token_type_ids, zero, seq, one)
  token_types = Expand(buffered, shape)
  embedded = Gather <axis = 0> (types, token_types)
  z = Constant <value = int64 {0}> ()
  o = Constant <value = int64 {1}> ()
  b_scalar = Squeeze(batch, zero)
  s_scalar = Squeeze(seq, zero)
  rows = Range(z, b_scalar, o)
  cols = Range(z, s_scalar, o)
  row_col = Unsqueeze(rows, one)
  start = Mul(row_col, s_scalar)
  grid = Add(start, cols)
  flat = Flatten <axis = 0> (ones)
  flat1 = Squeeze(flat, zero)
  mask = Gather <axis = 0> (flat1, grid)
  masked = Mul(x, mask)
  scale = Unsqueeze(masked, one)
  scale2 = Transpose <perm = [0, 2, 1]> (scale)
  y = Mul(embedded, scale2)
}
""" % ", ".join("0" for _ in range(512))


def test_import_at_batch_one_million_allocates_no_batch_sized_tensor() -> None:
    model = onnx.parser.parse_model(MODEL)
    tracemalloc.start()
    try:
        module = import_onnx(model, {"input_ids": (1_000_000, 512), "x": (1_000_000, 512)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    verify_module(module)
    assert peak < 64 * 2**20, f"import allocated {peak / 2**20:.0f} MiB"
    assert all(p.type.numel < 2_000_000 for p in module.params.values())
    assert module["forward"].outputs[0].type.shape == (1_000_000, 512, 4)


def test_the_same_graph_matches_onnxruntime_at_batch_two() -> None:
    model = onnx.parser.parse_model(MODEL)
    feeds = {"input_ids": np.zeros((2, 7), np.int64),
             "x": np.random.default_rng(0).standard_normal((2, 7)).astype(np.float32)}
    module = import_onnx(model, {"input_ids": (2, 7), "x": (2, 7)})
    verify_module(module)
    (expected,) = run_onnxruntime(model, feeds)
    (actual,) = run_function(module, "forward", feeds)
    assert relative_error(actual, expected) <= 1e-6
