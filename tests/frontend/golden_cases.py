"""Small ONNX models, written in ONNX's text syntax, for the importer's golden tests.

Each :class:`GoldenCase` is a model (``onnx.parser.parse_model`` text), the
input shapes to bind (or None for the defaults), how to make example inputs,
and optionally the torch-style ``pkg.torch.onnx.name_scopes`` metadata to put
on named nodes (the text syntax cannot express node metadata).  The expected
IR of case ``NAME`` is ``golden/NAME.tir``; see ``test_golden.py``.

Weights are generated from a seeded generator so that the text stays short
while having more than a handful of values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def values(count: int, seed: int, scale: float = 0.5) -> str:
    """``count`` deterministic floats in ONNX text form: ``{0.12, -0.3, ...}``."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(count) * scale
    return "{" + ", ".join(f"{v:.4f}" for v in data) + "}"


def header(opset: int, producer: str = "") -> str:
    producer_line = f', producer_name: "{producer}"' if producer else ""
    return f'<ir_version: 8, opset_import: ["" : {opset}]{producer_line}>\n'


@dataclass(frozen=True)
class GoldenCase:
    name: str
    text: str
    input_shapes: dict[str, tuple[int, ...]] | None = None
    # Input name -> ("int", low, high) / ("bool",) / ("float",); default float.
    input_kinds: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # Node name -> name_scopes list (dynamo-style metadata).
    node_scopes: dict[str, list[str]] = field(default_factory=dict)


CASES: list[GoldenCase] = []


def case(name: str, text: str, **kwargs: Any) -> None:
    CASES.append(GoldenCase(name, text, **kwargs))


# ----------------------------------------------------------------------------- matmul + add

case("matmul_add", header(17) + f"""
main (float[batch, 4] x) => (float[batch, 3] y)
<float[4, 3] w = {values(12, 1)}, float[3] b = {values(3, 2)}>
{{
  ["/dense/MatMul"] h = MatMul(x, w)
  ["/dense/Add"] y = Add(h, b)
}}
""", input_shapes={"x": (2, 4)})

# ----------------------------------------------------------------------------- GELU, TorchScript form

case("gelu_torchscript", header(17, "pytorch") + """
main (float[batch, sequence, 8] x) => (float[batch, sequence, 8] y)
{
  ["/encoder/layer.0/intermediate/Constant"] c_sqrt2 = Constant <value = float {1.4142135}> ()
  ["/encoder/layer.0/intermediate/Div"] d = Div(x, c_sqrt2)
  ["/encoder/layer.0/intermediate/Erf"] e = Erf(d)
  ["/encoder/layer.0/intermediate/Constant_1"] c_one = Constant <value = float {1.0}> ()
  ["/encoder/layer.0/intermediate/Add"] a = Add(e, c_one)
  ["/encoder/layer.0/intermediate/Mul"] m = Mul(x, a)
  ["/encoder/layer.0/intermediate/Constant_2"] c_half = Constant <value = float {0.5}> ()
  ["/encoder/layer.0/intermediate/Mul_1"] y = Mul(m, c_half)
}
""", input_shapes={"x": (2, 3, 8)})

# ----------------------------------------------------------------------------- GELU, dynamo form

_DYNAMO_SCOPE = ["", "encoder", "encoder.layer.0", "encoder.layer.0.intermediate"]
case("gelu_dynamo", header(18, "pytorch") + f"""
main (float[s0, s1, 4] x) => (float[s0, s1, 6] y)
<float[4, 6] val_7 = {values(24, 3)}, float[6] "encoder.layer.0.intermediate.dense.bias" = {values(6, 4)},
 float val_1 = {{0.70710677}}, float val_2 = {{1.0}}, float val_3 = {{0.5}}>
{{
  [node_MatMul_7] mm = MatMul(x, val_7)
  [node_linear] h = Add(mm, "encoder.layer.0.intermediate.dense.bias")
  [node_Mul_1] d = Mul(h, val_1)
  [node_Erf_2] e = Erf(d)
  [node_Add_3] a = Add(e, val_2)
  [node_Mul_4] half = Mul(val_3, a)
  [node_gelu] y = Mul(h, half)
}}
""", input_shapes={"x": (1, 5, 4)}, node_scopes={
    "node_MatMul_7": _DYNAMO_SCOPE + ["encoder.layer.0.intermediate.dense", "linear"],
    "node_linear": _DYNAMO_SCOPE + ["encoder.layer.0.intermediate.dense", "linear"],
    **{n: _DYNAMO_SCOPE + ["gelu"] for n in
       ("node_Mul_1", "node_Erf_2", "node_Add_3", "node_Mul_4", "node_gelu")},
})

# ----------------------------------------------------------------------------- GELU that must stay decomposed

case("gelu_shared_intermediate", header(17) + """
main (float[2, 8] x) => (float[2, 8] y, float[2, 8] e)
{
  c_sqrt2 = Constant <value = float {1.4142135}> ()
  d = Div(x, c_sqrt2)
  e = Erf(d)
  c_one = Constant <value = float {1.0}> ()
  a = Add(e, c_one)
  m = Mul(x, a)
  c_half = Constant <value = float {0.5}> ()
  y = Mul(m, c_half)
}
""")

# ----------------------------------------------------------------------------- shape chain (TorchScript head split)

case("shape_chain_reshape", header(17, "pytorch") + """
main (float[batch, sequence, 8] x) => (float[batch, 2, sequence, 4] y)
{
  ["/attention/Shape"] shape = Shape(x)
  ["/attention/Constant"] zero = Constant <value = int64 {0}> ()
  ["/attention/Gather"] batch = Gather <axis = 0> (shape, zero)
  ["/attention/Shape_1"] shape1 = Shape(x)
  ["/attention/Constant_1"] one = Constant <value = int64 {1}> ()
  ["/attention/Gather_1"] length = Gather <axis = 0> (shape1, one)
  ["Constant_9"] axes = Constant <value = int64[1] {0}> ()
  ["/attention/Unsqueeze"] batch1 = Unsqueeze(batch, axes)
  ["/attention/Unsqueeze_1"] length1 = Unsqueeze(length, axes)
  ["/attention/Constant_2"] heads = Constant <value = int64[1] {2}> ()
  ["/attention/Constant_3"] head_dim = Constant <value = int64[1] {-1}> ()
  ["/attention/Concat"] target = Concat <axis = 0> (batch1, length1, heads, head_dim)
  ["/attention/Reshape"] split = Reshape(x, target)
  ["/attention/Transpose"] y = Transpose <perm = [0, 2, 1, 3]> (split)
}
""", input_shapes={"x": (2, 5, 8)})

# ----------------------------------------------------------------------------- Gemm

case("gemm", header(13) + f"""
main (float[batch, 6] x, float[5, batch] z) => (float[batch, 4] y, float[batch, 3] w)
<float[4, 6] "pooler.dense.weight" = {values(24, 5)}, float[4] "pooler.dense.bias" = {values(4, 6)},
 float[5, 3] proj = {values(15, 7)}>
{{
  ["/pooler/dense/Gemm"] y = Gemm <alpha = 0.5, beta = 2.0, transB = 1> (x, "pooler.dense.weight", "pooler.dense.bias")
  ["/proj/Gemm"] w = Gemm <transA = 1> (z, proj)
}}
""", input_shapes={"x": (3, 6)})

# ----------------------------------------------------------------------------- Conv1d

case("conv1d", header(17, "pytorch") + f"""
main (float[batch, 4, length] x) => (float[batch, 4, length] y, float[batch, 2, half] z)
<float[4, 1, 3] "conv.weight" = {values(12, 8)}, float[4] "conv.bias" = {values(4, 9)},
 float[2, 4, 3] "down.weight" = {values(24, 10)}>
{{
  ["/conv/Conv"] y = Conv <group = 4, kernel_shape = [3], pads = [1, 1], strides = [1], dilations = [1]> (x, "conv.weight", "conv.bias")
  ["/down/Conv"] z = Conv <auto_pad = "SAME_UPPER", kernel_shape = [3], strides = [2]> (y, "down.weight")
}}
""", input_shapes={"x": (1, 4, 10)})

# ----------------------------------------------------------------------------- Softmax below and from opset 13

case("softmax_opset11", header(11) + """
main (float[2, 3, 4] x) => (float[2, 3, 4] y, float[2, 3, 4] z)
{
  y = Softmax <axis = 1> (x)
  z = LogSoftmax <axis = 2> (x)
}
""")

case("softmax_opset13", header(13) + """
main (float[2, 3, 4] x) => (float[2, 3, 4] y, float[2, 3, 4] z)
{
  y = Softmax <axis = 1> (x)
  z = Softmax (x)
}
""")

# ----------------------------------------------------------------------------- LayerNormalization

case("layer_norm", header(17, "pytorch") + f"""
main (float[batch, sequence, 8] x) => (float[batch, sequence, 8] y, float[batch, sequence, 8] z)
<float[8] "ln.weight" = {values(8, 11, 0.1)}, float[8] "ln.bias" = {values(8, 12, 0.1)},
 float[sequence_fixed, 8] "ln2.weight" = {values(24, 13, 0.1)}>
{{
  ["/ln/LayerNormalization"] y = LayerNormalization <axis = -1, epsilon = 1e-12> (x, "ln.weight", "ln.bias")
  ["/ln2/LayerNormalization"] z = LayerNormalization <axis = 1> (x, "ln2.weight")
}}
""".replace("sequence_fixed", "3"), input_shapes={"x": (2, 3, 8)})

# ----------------------------------------------------------------------------- Where/Equal masking

case("where_equal_mask", header(17, "pytorch") + """
main (float[batch, 2, sequence, sequence] scores, int64[batch, sequence] mask) => (float[batch, 2, sequence, sequence] probs)
<float fill = {-10000.0}, int64 zero = {0}, int64[4] minus_ones = {-1, -1, -1, -1}, int64[4] ones = {1, 1, 1, 1}>
{
  ["/Equal"] is_pad = Equal(mask, zero)
  ["/Constant"] axes = Constant <value = int64[2] {1, 2}> ()
  ["/Unsqueeze"] is_pad4 = Unsqueeze(is_pad, axes)
  ["/Shape"] shape = Shape(scores)
  ["/Equal_1"] unknown = Equal(shape, minus_ones)
  ["/Where"] target = Where(unknown, ones, shape)
  ["/Expand"] is_pad_full = Expand(is_pad4, target)
  ["/attention/Where"] masked = Where(is_pad_full, fill, scores)
  ["/attention/Softmax"] probs = Softmax <axis = -1> (masked)
}
""", input_shapes={"scores": (2, 2, 5, 5)}, input_kinds={"mask": ("int", 0, 2)})

# ----------------------------------------------------------------------------- Split, Slice, Concat

case("split_slice_concat", header(13) + """
main (float[batch, 12] x) => (float[batch, 10] y, float[batch, 4] first)
<int64[2] sizes = {4, 8}>
{
  first, second = Split <axis = 1> (x, sizes)
  starts = Constant <value = int64[1] {2}> ()
  ends = Constant <value = int64[1] {9223372036854775807}> ()
  axes = Constant <value = int64[1] {1}> ()
  tail = Slice(second, starts, ends, axes)
  back_starts = Constant <value = int64[1] {-1}> ()
  back_ends = Constant <value = int64[1] {-100}> ()
  back_steps = Constant <value = int64[1] {-1}> ()
  reversed = Slice(first, back_starts, back_ends, axes, back_steps)
  y = Concat <axis = -1> (reversed, tail)
}
""", input_shapes={"x": (2, 12)})

case("split_num_outputs", header(18) + """
main (float[2, 7] x) => (float[2, 3] a, float[2, 3] b, float[2, 1] c)
{
  a, b, c = Split <axis = 1, num_outputs = 3> (x)
}
""")

# ----------------------------------------------------------------------------- reshapes and friends

case("unsqueeze_squeeze_flatten_expand", header(13) + """
main (float[2, 3, 4, 5] x, float[1, 20] v) => (float[6, 20] flat, float[5, 4, 3, 2] reversed, float[3, 20] wide, float[2, 3, 4, 5] same)
{
  axes0 = Constant <value = int64[1] {0}> ()
  up = Unsqueeze(x, axes0)
  down = Squeeze(up, axes0)
  flat = Flatten <axis = 2> (down)
  reversed = Transpose(x)
  shape = Constant <value = int64[2] {3, 1}> ()
  wide = Expand(v, shape)
  same = Identity(down)
}
""")

# ----------------------------------------------------------------------------- reductions (axes as input, opset 18)

case("reductions", header(18) + """
main (float[3, 4, 5] x) => (float[3, 4, 1] mean, float[3, 5] total, float largest, float[1, 4, 5] smallest)
<int64[1] last = {-1}, int64[1] middle = {1}, int64[1] first = {0}>
{
  mean = ReduceMean <keepdims = 1> (x, last)
  total = ReduceSum <keepdims = 0> (x, middle)
  largest = ReduceMax <keepdims = 0> (x)
  smallest = ReduceMin (x, first)
}
""")

# ----------------------------------------------------------------------------- position ids from Range / ConstantOfShape

case("position_ids", header(17, "pytorch") + f"""
main (int64[batch, sequence] input_ids) => (float[batch, sequence, 4] embeddings)
<float[10, 4] "embeddings.word_embeddings.weight" = {values(40, 14)},
 float[16, 4] "embeddings.position_embeddings.weight" = {values(64, 15)},
 float[2, 4] "embeddings.token_type_embeddings.weight" = {values(8, 16)}>
{{
  ["/embeddings/word_embeddings/Gather"] words = Gather("embeddings.word_embeddings.weight", input_ids)
  ["/embeddings/Shape"] shape = Shape(input_ids)
  ["/embeddings/Constant"] one = Constant <value = int64 {{1}}> ()
  ["/embeddings/Gather"] length = Gather <axis = 0> (shape, one)
  ["/embeddings/Constant_1"] zero = Constant <value = int64 {{0}}> ()
  ["/embeddings/Range"] positions = Range(zero, length, one)
  ["/embeddings/Constant_2"] axes = Constant <value = int64[1] {{0}}> ()
  ["/embeddings/Unsqueeze"] position_ids = Unsqueeze(positions, axes)
  ["/embeddings/position_embeddings/Gather"] where = Gather("embeddings.position_embeddings.weight", position_ids)
  ["/ConstantOfShape"] token_types = ConstantOfShape <value = int64[1] {{0}}> (shape)
  ["/embeddings/token_type_embeddings/Gather"] kinds = Gather("embeddings.token_type_embeddings.weight", token_types)
  ["/embeddings/Add"] partial = Add(words, where)
  ["/embeddings/Add_1"] embeddings = Add(partial, kinds)
}}
""", input_shapes={"input_ids": (2, 6)}, input_kinds={"input_ids": ("int", 0, 10)})

# ----------------------------------------------------------------------------- Gelu (opset 20) and other elementwise ops

case("elementwise_opset20", header(20) + """
main (float[4, 5] x, float[4, 5] w, int32[4, 5] k) => (float[4, 5] exact, float[4, 5] tanh, float[4, 5] mixed, float[4, 5] clipped, float[4, 5] cast, bool[4, 5] order)
<float two = {2.0}, float low = {-0.5}, float high = {0.5}>
{
  exact = Gelu(x)
  tanh = Gelu <approximate = "tanh"> (x)
  squared = Pow(x, two)
  root = Sqrt(squared)
  inverse = Reciprocal(two)
  scaled = Mul(root, inverse)
  biggest = Max(scaled, w, x)
  mixed = Sum(biggest, w, tanh)
  clipped = Clip(x, low, high)
  cast = CastLike(k, x)
  order = LessOrEqual(x, w)
}
""", input_kinds={"k": ("int", -3, 4)})

# ----------------------------------------------------------------------------- which known arrays become which parameters

case("folded_parameters", header(17, "pytorch") + f"""
main (float[8, 16] x, int64[8] rows) => (float[8, 16] y, float[8, 16] picked, float[8, 16] turned, float[8, 70] scaled)
<float[16, 8] "proj.weight" = {values(128, 17)}, int64[80] table = {{{", ".join(str(i % 8) for i in range(80))}}}>
{{
  ["/Constant"] shape = Constant <value = int64[2] {{8, 16}}> ()
  ["/bias/ConstantOfShape"] quarter = ConstantOfShape <value = float[1] {{0.25}}> (shape)
  ["/bias/Add"] y = Add(x, quarter)
  ["/lookup/Gather"] picked_rows = Gather(table, rows)
  ["/lookup/Gather_1"] picked = Gather(x, picked_rows)
  ["/proj/Transpose"] proj_t = Transpose("proj.weight")
  ["/proj/Add"] turned = Add(proj_t, proj_t)
  ["/scale/Constant"] val_70 = Constant <value = float[70] {values(70, 18)}> ()
  ["/scale/Unsqueeze_axes"] axes = Constant <value = int64[1] {{0}}> ()
  ["/scale/Unsqueeze"] factors2 = Unsqueeze(val_70, axes)
  ["/scale/Slice_starts"] s0 = Constant <value = int64[1] {{0}}> ()
  ["/scale/Slice_ends"] s1 = Constant <value = int64[1] {{1}}> ()
  ["/scale/Slice_axes"] s2 = Constant <value = int64[1] {{1}}> ()
  ["/scale/Slice"] column = Slice(x, s0, s1, s2, s2)
  ["/scale/Mul"] scaled = Mul(column, factors2)
}}
""", input_kinds={"rows": ("int", 0, 80)})

# ----------------------------------------------------------------------------- Gemm-free dropout / identity / cast chain

case("dropout_identity_cast", header(13) + """
main (float[3, 4] x, int64[3, 4] m) => (float[3, 4] y, float[3, 4] z)
{
  kept = Dropout(x)
  alias = Identity(kept)
  mf = Cast <to = 1> (m)
  y = Mul(alias, mf)
  z = Cast <to = 1> (x)
}
""", input_kinds={"m": ("int", 0, 2)})


# ----------------------------------------------------------------------------- opset 11 forms and rarer ops

case("opset11_misc", header(11) + """
main (float[2, 3] x, bool[2, 3] p, bool[2, 3] q) => (float[2, 3] padded, float[4, 3] tiled, bool[2, 3] either, float[2, 3] average, float[2, 3] lowest, float[2, 3] chain, float[2] total, float[2, 3] squeezed, float[2, 1] left, float[2, 2] right, bool[2, 3] negated)
{
  pads = Constant <value = int64[4] {0, 1, 0, -1}> ()
  fill = Constant <value = float {0.5}> ()
  padded = Pad(x, pads, fill)
  repeats = Constant <value = int64[2] {2, 1}> ()
  tiled = Tile(x, repeats)
  either = Xor(p, q)
  leaky = LeakyRelu <alpha = 0.1> (x)
  average = Mean(x, leaky)
  lowest = Min(x, leaky)
  n = Neg(x)
  a = Abs(n)
  e = Exp(a)
  l = Log(e)
  c = Cos(l)
  s = Sin(c)
  chain = Sigmoid(s)
  total = ReduceSum <axes = [1], keepdims = 0> (x)
  up = Unsqueeze <axes = [0]> (x)
  squeezed = Squeeze(up)
  left, right = Split <axis = 1, split = [1, 2]> (x)
  negated = Not(p)
}
""", input_kinds={"p": ("bool",), "q": ("bool",)})


def make_inputs(case: GoldenCase, function: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Example inputs for the function imported from ``case``."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for arg in function.args:
        kind = case.input_kinds.get(arg.name, ("float",))
        shape = arg.type.shape
        if kind[0] == "int":
            array = rng.integers(kind[1], kind[2], size=shape)
        elif kind[0] == "bool":
            array = rng.random(shape) < 0.5
        else:
            array = rng.standard_normal(shape)
        from transcode_ir.types import numpy_dtype

        inputs[arg.name] = np.asarray(array).astype(numpy_dtype(arg.type.dtype))
    return inputs
