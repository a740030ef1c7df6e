"""The one table of the ONNX backend: IR op kind -> emitter.

An emitter turns one IR op into ONNX nodes::

    Emitter = Callable[[EmitContext, Op, list[str]], list[str]]

It receives the tensor names of the op's operands and returns the tensor
names that hold the op's results, in order.  It adds nodes with
``ctx.node(...)`` / ``ctx.node1(...)`` and small constant inputs (shapes, axes,
scalars) with ``ctx.ints(...)`` / ``ctx.scalar(...)``; it may also return an
existing name (an operand, a parameter initializer) when the op needs no node.
Final tensor and node names, ``loc`` metadata and value types are the
exporter's business, not the emitter's.

Emitters may depend on ``ctx.opset`` (13 and up): ``ReduceMean`` and
``ReduceMax`` take their axes as an input from opset 18 (``ReduceSum`` from
13), ``Gelu`` exists from opset 20 and ``LayerNormalization`` from opset 17;
below those, the op is decomposed into the arithmetic that defines it.

Sections, in order: elementwise ``arith`` and ``nn.relu``; ``nn``
(activations, softmax, layer norm, conv1d); ``tensor`` (matmul, data
movement, reductions, constants, parameters, ``tensor.assign`` -- a parameter
write becomes an extra graph output ``<param>.updated`` -- and
``func.return``); fused ops (:mod:`dialects.fused`); training ops
(:mod:`dialects.training`); DynaProp prune ops
(:mod:`dialects.sparsity`).

:data:`EMITTERS` lists every op kind that exports.  :data:`NOT_EXPORTABLE`
lists op kinds that deliberately do not, each with the reason.  A test checks
that every op kind known to :func:`transcode_ir.opdefs.all_opdefs` is in one of
them (or decomposes into ops that are, see :mod:`backends.onnx.exporter`), so
a new op kind without an emitter is noticed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from onnx import numpy_helper

from backends.onnx.context import EmitContext, OnnxExportError, onnx_element_type
from transcode_ir.core import Op
from transcode_ir.types import numpy_dtype

__all__ = ["EMITTERS", "NOT_EXPORTABLE", "Emitter", "emits", "supported_op_kinds"]

Emitter = Callable[[EmitContext, Op, list[str]], list[str]]

#: Op kind -> emitter.  Filled by :func:`emits` below; read by the exporter.
EMITTERS: dict[str, Emitter] = {}

#: Op kind -> why it does not export.  Empty today: every op kind of the core
#: exports.  An entry here is a deliberate decision, checked by the tests.
NOT_EXPORTABLE: dict[str, str] = {}


def emits(*op_kinds: str) -> Callable[[Emitter], Emitter]:
    """Register an emitter for one or more op kinds."""

    def register(emitter: Emitter) -> Emitter:
        for kind in op_kinds:
            if kind in EMITTERS:
                raise ValueError(f"two ONNX emitters for {kind}")
            EMITTERS[kind] = emitter
        return emitter

    return register


def supported_op_kinds() -> list[str]:
    """Op kinds with an emitter, sorted."""
    return sorted(EMITTERS)


# --------------------------------------------------------------------------- helpers


def _dtype(op: Op, operand: int = 0) -> str:
    return op.operands[operand].type.dtype


_AXES_AS_INPUT_SINCE = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18}


def reduce(ctx: EmitContext, onnx_op: str, x: str, axes: list[int], keepdims: bool) -> str:
    """A Reduce* node with axes as an input or an attribute, as the opset wants.

    Empty ``axes`` reduce nothing in the IR (numpy's ``axis=()``), whereas ONNX
    would reduce everything, so they give ``x`` back unchanged.
    """
    if not axes:
        return x
    keep = int(bool(keepdims))
    if ctx.opset >= _AXES_AS_INPUT_SINCE[onnx_op]:
        return ctx.node1(onnx_op, [x, ctx.ints(axes, "axes")], keepdims=keep)
    return ctx.node1(onnx_op, [x], axes=list(axes), keepdims=keep)


# --------------------------------------------------------------------------- arith and nn: elementwise

_ELEMENTWISE: dict[str, str] = {
    # binary, numpy broadcasting = ONNX multidirectional broadcasting
    "arith.add": "Add", "arith.sub": "Sub", "arith.mul": "Mul", "arith.div": "Div",
    "arith.pow": "Pow", "arith.max": "Max", "arith.min": "Min",
    "arith.equal": "Equal", "arith.less": "Less", "arith.greater": "Greater",
    "arith.and": "And", "arith.or": "Or",
    # unary
    "arith.neg": "Neg", "arith.abs": "Abs", "arith.sqrt": "Sqrt",
    "arith.reciprocal": "Reciprocal", "arith.exp": "Exp", "arith.log": "Log",
    "arith.erf": "Erf", "arith.tanh": "Tanh", "arith.sigmoid": "Sigmoid",
    "arith.sin": "Sin", "arith.cos": "Cos", "arith.not": "Not",
    "nn.relu": "Relu",
    # ternary
    "arith.select": "Where",
}


def _elementwise(onnx_op: str) -> Emitter:
    def emit(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
        return [ctx.node1(onnx_op, x)]

    emit.__name__ = f"emit_{onnx_op}"
    return emit


for _kind, _onnx_op in _ELEMENTWISE.items():
    emits(_kind)(_elementwise(_onnx_op))


def _never(ctx: EmitContext, x: str) -> str:
    """All-false of x's shape: NaN and infinity tests of an integer tensor."""
    return ctx.node1("Not", [ctx.node1("Equal", [x, x])])


@emits("arith.isnan")
def emit_isnan(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    if _dtype(op) not in ("f16", "f32", "f64"):
        return [_never(ctx, x[0])]
    return [ctx.node1("IsNaN", x)]


@emits("arith.isinf")
def emit_isinf(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    if _dtype(op) not in ("f16", "f32", "f64"):
        return [_never(ctx, x[0])]
    return [ctx.node1("IsInf", x, detect_positive=int(op.attr("detect_positive")),
                      detect_negative=int(op.attr("detect_negative")))]


@emits("arith.cast")
def emit_cast(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.node1("Cast", x, to=onnx_element_type(op.attributes["to"]))]


@emits("nn.gelu")
def emit_gelu(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [gelu(ctx, x[0], _dtype(op), op.attr("approximate"))]


def gelu(ctx: EmitContext, x: str, dtype: str, approximate: str) -> str:
    """GELU of tensor ``x``: the Gelu node from opset 20, its formula before."""
    if ctx.opset >= 20:
        return ctx.node1("Gelu", [x], approximate=approximate)
    half, one = ctx.scalar(0.5, dtype), ctx.scalar(1.0, dtype)
    if approximate == "tanh":
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = ctx.node1("Mul", [ctx.node1("Mul", [x, x]), x])
        inner = ctx.node1("Add", [x, ctx.node1("Mul", [cube, ctx.scalar(0.044715, dtype)])])
        core = ctx.node1("Tanh", [ctx.node1("Mul", [inner, ctx.scalar(math.sqrt(2 / math.pi), dtype)])])
    else:
        # 0.5 x (1 + erf(x / sqrt 2))
        core = ctx.node1("Erf", [ctx.node1("Mul", [x, ctx.scalar(1 / math.sqrt(2), dtype)])])
    return ctx.node1("Mul", [ctx.node1("Mul", [x, ctx.node1("Add", [core, one])]), half])


@emits("nn.softmax")
def emit_softmax(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    # From opset 13 Softmax normalises along one axis, as the IR does.
    return [ctx.node1("Softmax", x, axis=op.attr("axis"))]


@emits("nn.layer_norm")
def emit_layer_norm(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    data = op.operands[0].type
    axis = op.attr("axis") % data.rank
    epsilon = float(op.attr("epsilon"))
    normalized = list(data.shape[axis:])
    # The IR lets scale and bias broadcast to the normalized shape; ONNX wants them whole.
    params = [name if op.operands[i].type.shape == tuple(normalized)
              else ctx.node1("Expand", [name, ctx.ints(normalized, "shape")])
              for i, name in enumerate(x[1:], start=1)]
    if ctx.opset >= 17:
        return [ctx.node1("LayerNormalization", [x[0], *params], axis=axis, epsilon=epsilon)]
    axes = list(range(axis, data.rank))
    mean = reduce(ctx, "ReduceMean", x[0], axes, True)
    centred = ctx.node1("Sub", [x[0], mean])
    variance = reduce(ctx, "ReduceMean", ctx.node1("Mul", [centred, centred]), axes, True)
    std = ctx.node1("Sqrt", [ctx.node1("Add", [variance, ctx.scalar(epsilon, data.dtype)])])
    y = ctx.node1("Mul", [ctx.node1("Div", [centred, std]), params[0]])
    if len(params) > 1:
        y = ctx.node1("Add", [y, params[1]])
    return [y]


@emits("nn.conv1d")
def emit_conv1d(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    kernel = op.operands[1].type.shape[2]
    pads = op.attr("pads")
    return [ctx.node1("Conv", x, kernel_shape=[kernel], strides=[op.attr("stride")],
                      pads=[pads[0], pads[1]], dilations=[op.attr("dilation")],
                      group=op.attr("groups"))]


# --------------------------------------------------------------------------- tensor


@emits("tensor.matmul")
def emit_matmul(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.node1("MatMul", x)]


@emits("tensor.reshape")
def emit_reshape(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    shape = list(op.attributes["shape"])
    if 0 in shape:
        # ONNX Reshape reads 0 as "copy this dimension" unless allowzero=1 (opset 14).
        if ctx.opset < 14:
            raise OnnxExportError(f"{ctx.where()}: reshape to a shape with a zero dimension "
                                  f"{shape} needs opset 14 or later (allowzero)")
        return [ctx.node1("Reshape", [x[0], ctx.ints(shape, "shape")], allowzero=1)]
    return [ctx.node1("Reshape", [x[0], ctx.ints(shape, "shape")])]


@emits("tensor.transpose")
def emit_transpose(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.node1("Transpose", x, perm=list(op.attributes["perm"]))]


@emits("tensor.gather")
def emit_gather(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    # ONNX Gather accepts negative indices, as the IR does.
    return [ctx.node1("Gather", x, axis=op.attr("axis"))]


@emits("tensor.concat")
def emit_concat(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.node1("Concat", x, axis=op.attributes["axis"])]


_INT64 = np.iinfo(np.int64)


def _clamp64(values: tuple[int, ...]) -> list[int]:
    return [min(max(v, _INT64.min), _INT64.max) for v in values]


@emits("tensor.slice")
def emit_slice(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    # ONNX Slice clamps starts and ends like Python slices do, negative steps included.
    a = op.attributes
    inputs = [x[0], ctx.ints(_clamp64(a["starts"]), "starts"), ctx.ints(_clamp64(a["ends"]), "ends"),
              ctx.ints(list(a["axes"]), "axes"), ctx.ints(list(a["steps"]), "steps")]
    return [ctx.node1("Slice", inputs)]


@emits("tensor.expand")
def emit_expand(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.node1("Expand", [x[0], ctx.ints(list(op.attributes["shape"]), "shape")])]


@emits("tensor.cumsum")
def emit_cumsum(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    axis = ctx.constant(np.int64(op.attributes["axis"]), hint="axis")
    return [ctx.node1("CumSum", [x[0], axis], exclusive=int(op.attr("exclusive")),
                      reverse=int(op.attr("reverse")))]


def _reduction(onnx_op: str) -> Emitter:
    def emit(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
        return [reduce(ctx, onnx_op, x[0], list(op.attributes["axes"]), op.attr("keepdims"))]

    emit.__name__ = f"emit_{onnx_op}"
    return emit


emits("tensor.reduce_sum")(_reduction("ReduceSum"))
emits("tensor.reduce_mean")(_reduction("ReduceMean"))
emits("tensor.reduce_max")(_reduction("ReduceMax"))


@emits("tensor.constant")
def emit_constant(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    array = np.asarray(op.attributes["value"].array(), order="C")
    return [ctx.node1("Constant", [], value=numpy_helper.from_array(array))]


@emits("tensor.param")
def emit_param(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.parameter(op.attributes["name"])]


@emits("tensor.assign")
def emit_assign(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """ONNX graphs are pure: a write to parameter ``P`` becomes an extra graph
    output ``P.updated`` holding the new value, after the function's results."""
    name = op.attributes["name"]
    ctx.add_output(ctx.fresh(f"{name}.updated"), x[0], op.operands[0].type, after_results=True)
    return []


@emits("func.return")
def emit_return(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    for value, source, name in zip(op.operands, x, ctx.result_names):
        ctx.add_output(name, source, value.type)
    return []


# --------------------------------------------------------------------------- fused ops (dialects.fused)


def reshape(ctx: EmitContext, x: str, shape: list[int] | tuple[int, ...]) -> str:
    """Reshape to a static shape (no zero dimensions)."""
    return ctx.node1("Reshape", [x, ctx.ints(list(shape), "shape")])


_LINEAR_ACTIVATIONS = {"none": None, "relu": "relu", "gelu": "none", "gelu_tanh": "tanh"}


@emits("nn.linear")
def emit_linear(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """act(x @ w + bias): MatMul, Add, then Relu or GELU."""
    y = ctx.node1("MatMul", x[:2])
    if len(x) > 2:
        y = ctx.node1("Add", [y, x[2]])
    activation = op.attr("activation")
    if activation == "relu":
        y = ctx.node1("Relu", [y])
    elif activation in ("gelu", "gelu_tanh"):
        y = gelu(ctx, y, _dtype(op), _LINEAR_ACTIVATIONS[activation])
    return [y]


@emits("nn.attention")
def emit_attention(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """softmax(q @ kt * scale + mask, axis=-1) @ v, in the interpreter's order."""
    scores = ctx.node1("MatMul", x[:2])
    scale = float(op.attr("scale"))
    if scale != 1.0:
        scores = ctx.node1("Mul", [scores, ctx.scalar(scale, _dtype(op))])
    if len(x) > 3:
        scores = ctx.node1("Add", [scores, x[3]])
    tau = float(op.attr("tau"))
    if tau > 0.0:   # DynaProp inside the job (dialects/fused.py): prune scores and probabilities
        scores = _prune_node(ctx, scores, tau, _dtype(op))
        probs = _prune_node(ctx, ctx.node1("Softmax", [scores], axis=-1), tau, _dtype(op))
    else:
        probs = ctx.node1("Softmax", [scores], axis=-1)
    if op.attr("nan_to_zero"):   # the SDPA export's guard of fully masked rows
        probs = ctx.node1("Where", [ctx.node1("IsNaN", [probs]), ctx.scalar(0.0, _dtype(op)), probs])
    return [ctx.node1("MatMul", [probs, x[2]])]


# --------------------------------------------------------------------------- training (dialects.training)
#
# Losses, backward kernels and optimizer updates, written out in ONNX
# arithmetic so that a whole ``train_step`` exports and runs.


def _flat_labels(ctx: EmitContext, op: Op, logits: str, labels: str,
                 logits_index: int) -> tuple[str, str, int, int]:
    """Logits as [N, C] and int64 labels as [N] (classes on the last axis)."""
    shape = op.operands[logits_index].type.shape
    classes = shape[-1]
    rows = math.prod(shape[:-1])
    flat = reshape(ctx, logits, [rows, classes])
    lab = reshape(ctx, labels, [rows])
    if op.operands[logits_index + 1].type.dtype != "i64":
        lab = ctx.node1("Cast", [lab], to=onnx_element_type("i64"))
    return flat, lab, rows, classes


@emits("loss.cross_entropy")
def emit_cross_entropy(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    flat, lab, _, _ = _flat_labels(ctx, op, x[0], x[1], 0)
    return [ctx.node1("SoftmaxCrossEntropyLoss", [flat, lab], reduction="mean",
                      ignore_index=op.attr("ignore_index"))]


@emits("grad.cross_entropy")
def emit_cross_entropy_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """dloss * (softmax(logits) - onehot(labels)) / count, zero on ignored rows."""
    dtype = _dtype(op, 1)
    flat, lab, rows, classes = _flat_labels(ctx, op, x[1], x[2], 1)
    ignore = ctx.constant(np.int64(op.attr("ignore_index")), hint="ignore_index")
    keep = ctx.node1("Not", [ctx.node1("Equal", [lab, ignore])])
    keep_f = reshape(ctx, ctx.node1("Cast", [keep], to=onnx_element_type(dtype)), [rows, 1])
    onehot = ctx.node1("Equal", [reshape(ctx, lab, [rows, 1]),
                                 ctx.constant(np.arange(classes, dtype=np.int64), hint="classes")])
    onehot_f = ctx.node1("Cast", [onehot], to=onnx_element_type(dtype))
    count = ctx.node1("Max", [reduce(ctx, "ReduceSum", keep_f, [0, 1], False),
                              ctx.scalar(1.0, dtype)])
    scale = ctx.node1("Div", [x[0], count])
    diff = ctx.node1("Sub", [ctx.node1("Softmax", [flat], axis=-1), onehot_f])
    grad = ctx.node1("Mul", [ctx.node1("Mul", [diff, keep_f]), scale])
    return [reshape(ctx, grad, op.operands[1].type.shape)]


@emits("loss.mse")
def emit_mse(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    diff = ctx.node1("Sub", x)
    rank = op.operands[0].type.rank
    return [reduce(ctx, "ReduceMean", ctx.node1("Mul", [diff, diff]), list(range(rank)), False)]


@emits("grad.mse")
def emit_mse_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """(prediction - target) * 2 dloss / size."""
    size = max(op.operands[1].type.numel, 1)
    factor = ctx.node1("Mul", [x[0], ctx.scalar(2.0 / size, _dtype(op, 1))])
    return [ctx.node1("Mul", [ctx.node1("Sub", [x[1], x[2]]), factor])]


@emits("grad.gelu")
def emit_gelu_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """dy * gelu'(x), exact or tanh form."""
    dy, v = x
    dtype = _dtype(op, 1)

    def c(value: float) -> str:
        return ctx.scalar(value, dtype)

    def mul(*names: str) -> str:
        out = names[0]
        for name in names[1:]:
            out = ctx.node1("Mul", [out, name])
        return out

    if op.attr("approximate") == "tanh":
        # 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 * 0.044715 x^2),  t = tanh(k (x + 0.044715 x^3))
        k = math.sqrt(2.0 / math.pi)
        square = mul(v, v)
        inner = mul(ctx.node1("Add", [v, mul(square, v, c(0.044715))]), c(k))
        t = ctx.node1("Tanh", [inner])
        left = mul(ctx.node1("Add", [t, c(1.0)]), c(0.5))
        slope = ctx.node1("Add", [mul(square, c(3 * 0.044715)), c(1.0)])
        right = mul(v, ctx.node1("Sub", [c(1.0), mul(t, t)]), slope, c(0.5 * k))
        derivative = ctx.node1("Add", [left, right])
    else:
        # Phi(x) + x phi(x)
        cdf = mul(ctx.node1("Add", [ctx.node1("Erf", [mul(v, c(1 / math.sqrt(2.0)))]), c(1.0)]),
                  c(0.5))
        pdf = mul(ctx.node1("Exp", [mul(v, v, c(-0.5))]), c(1 / math.sqrt(2.0 * math.pi)))
        derivative = ctx.node1("Add", [cdf, mul(v, pdf)])
    return [mul(dy, derivative)]


@emits("grad.softmax")
def emit_softmax_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """y * (dy - sum(dy * y, axis))."""
    dy, y = x
    axis = op.attr("axis") % op.operands[1].type.rank
    total = reduce(ctx, "ReduceSum", ctx.node1("Mul", [dy, y]), [axis], True)
    return [ctx.node1("Mul", [y, ctx.node1("Sub", [dy, total])])]


@emits("grad.layer_norm")
def emit_layer_norm_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """(dx, dscale, dbias) of layer norm over the axes from ``axis``."""
    dy, v, scale = x
    data = op.operands[1].type
    axis = op.attr("axis") % data.rank
    axes, lead = list(range(axis, data.rank)), list(range(axis))
    count = ctx.scalar(float(math.prod(data.shape[axis:])), data.dtype)
    mean = reduce(ctx, "ReduceMean", v, axes, True)
    centred = ctx.node1("Sub", [v, mean])
    variance = reduce(ctx, "ReduceMean", ctx.node1("Mul", [centred, centred]), axes, True)
    epsilon = ctx.scalar(float(op.attr("epsilon")), data.dtype)
    inv = ctx.node1("Reciprocal", [ctx.node1("Sqrt", [ctx.node1("Add", [variance, epsilon])])])
    xhat = ctx.node1("Mul", [centred, inv])
    dxhat = ctx.node1("Mul", [dy, scale])
    mean_dxhat = ctx.node1("Div", [reduce(ctx, "ReduceSum", dxhat, axes, True), count])
    mean_dxhat_xhat = ctx.node1(
        "Div", [reduce(ctx, "ReduceSum", ctx.node1("Mul", [dxhat, xhat]), axes, True), count])
    inner = ctx.node1("Sub", [ctx.node1("Sub", [dxhat, mean_dxhat]),
                              ctx.node1("Mul", [xhat, mean_dxhat_xhat])])
    dx = ctx.node1("Mul", [inv, inner])
    dscale = reduce(ctx, "ReduceSum", ctx.node1("Mul", [dy, xhat]), lead, False)
    dbias = reduce(ctx, "ReduceSum", dy, lead, False)
    return [dx, dscale, dbias]


@emits("grad.gather")
def emit_gather_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """Scatter-add dy into zeros of the gathered tensor's shape.

    The indexed axes of dy move to the front and flatten to ``[M, P]``; the
    rows are summed into ``[size, P]`` by ScatterND with ``reduction="add"``
    (opset 16 on) or by a one-hot matrix product (before); then the result
    moves back into place.
    """
    dy, indices = x
    dy_type, idx_type = op.operands[0].type, op.operands[1].type
    out_type = op.results[0].type
    size = op.attributes["size"]
    axis = op.attr("axis") % out_type.rank
    r = idx_type.rank
    pre, post = dy_type.shape[:axis], dy_type.shape[axis + r:]
    rows, width = idx_type.numel, math.prod(pre) * math.prod(post)
    # Indices: int64, negatives wrapped, flattened to [M].
    idx = reshape(ctx, indices, [rows])
    if idx_type.dtype != "i64":
        idx = ctx.node1("Cast", [idx], to=onnx_element_type("i64"))
    idx = ctx.node1("Where", [ctx.node1("Less", [idx, ctx.constant(np.int64(0), hint="zero")]),
                              ctx.node1("Add", [idx, ctx.constant(np.int64(size), hint="size")]),
                              idx])
    # dy: the indexed axes to the front, then [M, P].
    front = list(range(axis, axis + r)) + list(range(axis)) + list(range(axis + r, dy_type.rank))
    moved = dy if front == list(range(dy_type.rank)) else ctx.node1("Transpose", [dy], perm=front)
    updates = reshape(ctx, moved, [rows, width])
    if ctx.opset >= 16:
        zeros = ctx.node1("ConstantOfShape", [ctx.ints([size, width], "shape")],
                          value=numpy_helper.from_array(np.zeros(1, dtype=numpy_dtype(dy_type.dtype))))
        summed = ctx.node1("ScatterND", [zeros, reshape(ctx, idx, [rows, 1]), updates],
                           reduction="add")
    else:
        onehot = ctx.node1("Equal", [reshape(ctx, idx, [1, rows]),
                                     ctx.constant(np.arange(size, dtype=np.int64).reshape(size, 1),
                                                  hint="rows")])
        summed = ctx.node1("MatMul", [ctx.node1("Cast", [onehot], to=onnx_element_type(dy_type.dtype)),
                                      updates])
    # [size, P] -> [size, *pre, *post] -> [*pre, size, *post]
    unflat = reshape(ctx, summed, [size, *pre, *post])
    back = list(range(1, axis + 1)) + [0] + list(range(axis + 1, out_type.rank))
    return [unflat if back == list(range(out_type.rank))
            else ctx.node1("Transpose", [unflat], perm=back)]


@emits("grad.slice")
def emit_slice_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """dy placed into zeros of the sliced tensor's shape: a Pad when every
    step is 1, else a ScatterND at the (static) positions the slice read."""
    a = op.attributes
    shape = tuple(a["shape"])
    rank = len(shape)
    index: list[slice] = [slice(None)] * rank
    for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        index[axis % rank] = slice(start, end, step)
    ranges = [range(*s.indices(dim)) for s, dim in zip(index, shape)]
    if all(r.step == 1 for r in ranges):
        before = [r.start if len(r) else 0 for r in ranges]
        after = [dim - b - len(r) for dim, b, r in zip(shape, before, ranges)]
        pads = ctx.ints(before + after, "pads")
        return [ctx.node1("Pad", [x[0], pads])]
    positions = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)[tuple(index)]
    zeros = ctx.node1("ConstantOfShape", [ctx.ints([math.prod(shape)], "shape")],
                      value=numpy_helper.from_array(np.zeros(1, numpy_dtype(_dtype(op)))))
    flat = ctx.node1("ScatterND", [zeros, ctx.constant(positions.reshape(-1, 1), hint="positions"),
                                   reshape(ctx, x[0], [positions.size])])
    return [reshape(ctx, flat, shape)]


@emits("grad.conv1d_input")
def emit_conv1d_input_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """A ConvTranspose with the forward conv's weight, stride, pads,
    dilation and groups; output_padding restores the input length."""
    dy_len = op.operands[0].type.shape[2]
    kernel = op.operands[1].type.shape[2]
    stride, dilation = op.attr("stride"), op.attr("dilation")
    pads = tuple(op.attr("pads"))
    length = op.attributes["length"]
    natural = stride * (dy_len - 1) + dilation * (kernel - 1) + 1 - pads[0] - pads[1]
    extra = length - natural
    if not 0 <= extra < max(stride, dilation):
        raise OnnxExportError(f"{ctx.where()}: input length {length} cannot come back from a "
                              f"transposed convolution of length {dy_len} (kernel {kernel}, "
                              f"stride {stride}, pads {list(pads)}, dilation {dilation})")
    return [ctx.node1("ConvTranspose", x, kernel_shape=[kernel], strides=[stride],
                      pads=list(pads), dilations=[dilation], group=op.attr("groups"),
                      output_padding=[extra] if extra else None)]


@emits("grad.conv1d_weight")
def emit_conv1d_weight_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """dW[m, c, k] = sum over n, l of dy[n, m, l] * x_padded[n, c, l * stride + k * dilation]:
    the windows of x gathered by a static index, then one Einsum per group."""
    dy, v = x
    n, m, out_len = op.operands[0].type.shape
    _, channels, length = op.operands[1].type.shape
    kernel, groups = op.attributes["kernel"], op.attr("groups")
    stride, dilation = op.attr("stride"), op.attr("dilation")
    pads = tuple(op.attr("pads"))
    if any(pads):
        v = ctx.node1("Pad", [v, ctx.ints([0, 0, pads[0], 0, 0, pads[1]], "pads")])
    positions = (np.arange(out_len)[:, None] * stride
                 + np.arange(kernel)[None, :] * dilation).astype(np.int64)
    windows = ctx.node1("Gather", [v, ctx.constant(positions, hint="windows")], axis=2)  # n c l k
    cg, mg = channels // groups, m // groups
    windows = reshape(ctx, windows, [n, groups, cg, out_len, kernel])
    grads = reshape(ctx, dy, [n, groups, mg, out_len])
    summed = ctx.node1("Einsum", [windows, grads], equation="ngclk,ngml->gmck")
    return [reshape(ctx, summed, [m, cg, kernel])]


@emits("optim.sgd")
def emit_sgd(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    lr = ctx.scalar(float(op.attributes["lr"]), _dtype(op))
    return [ctx.node1("Sub", [x[0], ctx.node1("Mul", [lr, x[1]])])]


@emits("optim.adam")
def emit_adam(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """Adam with bias correction, as torch.optim.Adam: returns (param', m', v')."""
    param, grad, m, v, step = x
    dtype = _dtype(op)
    a = op.attributes
    beta1, beta2 = float(a.get("beta1", 0.9)), float(a.get("beta2", 0.999))
    lr, epsilon = float(a["lr"]), float(a.get("epsilon", 1e-8))

    def c(value: float) -> str:
        return ctx.scalar(value, dtype)

    def mul(p: str, q: str) -> str:
        return ctx.node1("Mul", [p, q])

    m_new = ctx.node1("Add", [mul(m, c(beta1)), mul(grad, c(1 - beta1))])
    v_new = ctx.node1("Add", [mul(v, c(beta2)), mul(mul(grad, grad), c(1 - beta2))])
    t = ctx.node1("Cast", [step], to=onnx_element_type(dtype))
    bias1 = ctx.node1("Sub", [c(1.0), ctx.node1("Pow", [c(beta1), t])])
    bias2 = ctx.node1("Sub", [c(1.0), ctx.node1("Pow", [c(beta2), t])])
    denom = ctx.node1("Add", [ctx.node1("Div", [ctx.node1("Sqrt", [v_new]),
                                                ctx.node1("Sqrt", [bias2])]), c(epsilon)])
    update = ctx.node1("Div", [mul(ctx.node1("Div", [c(lr), bias1]), m_new), denom])
    return [ctx.node1("Sub", [param, update]), m_new, v_new]


# --------------------------------------------------------------------------- DynaProp (dialects.sparsity)


def _prune_node(ctx: EmitContext, x: str, tau: float, dtype: str) -> str:
    pruned = ctx.node1("LessOrEqual", [ctx.node1("Abs", [x]), ctx.scalar(tau, dtype)])
    return ctx.node1("Where", [pruned, ctx.scalar(0.0, dtype), x])


@emits("nn.prune")
def emit_prune(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """Where(Abs(x) <= tau, 0, x): tau in x's element type, as the interpreter
    compares it; NaN is kept (its comparison is false)."""
    return [_prune_node(ctx, x[0], float(op.attributes["tau"]), _dtype(op))]


@emits("grad.prune")
def emit_prune_grad(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    """Where(y == 0, 0, dy): the gradient survives where the pruned value did."""
    zero = ctx.scalar(0.0, _dtype(op))
    return [ctx.node1("Where", [ctx.node1("Equal", [x[1], zero]), zero, x[0]])]
