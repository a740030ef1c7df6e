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


@emits("arith.cast")
def emit_cast(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    return [ctx.node1("Cast", x, to=onnx_element_type(op.attributes["to"]))]


@emits("nn.gelu")
def emit_gelu(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    approximate = op.attr("approximate", "none")
    if ctx.opset >= 20:
        return [ctx.node1("Gelu", x, approximate=approximate)]
    dtype = _dtype(op)
    (v,) = x
    half, one = ctx.scalar(0.5, dtype), ctx.scalar(1.0, dtype)
    if approximate == "tanh":
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = ctx.node1("Mul", [ctx.node1("Mul", [v, v]), v])
        inner = ctx.node1("Add", [v, ctx.node1("Mul", [cube, ctx.scalar(0.044715, dtype)])])
        core = ctx.node1("Tanh", [ctx.node1("Mul", [inner, ctx.scalar(math.sqrt(2 / math.pi), dtype)])])
    else:
        # 0.5 x (1 + erf(x / sqrt 2))
        core = ctx.node1("Erf", [ctx.node1("Mul", [v, ctx.scalar(1 / math.sqrt(2), dtype)])])
    return [ctx.node1("Mul", [ctx.node1("Mul", [v, ctx.node1("Add", [core, one])]), half])]


@emits("nn.softmax")
def emit_softmax(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    # From opset 13 Softmax normalises along one axis, as the IR does.
    return [ctx.node1("Softmax", x, axis=op.attr("axis", -1))]


@emits("nn.layer_norm")
def emit_layer_norm(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    data = op.operands[0].type
    axis = op.attr("axis", -1) % data.rank
    epsilon = float(op.attr("epsilon", 1e-5))
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
    pads = op.attr("pads", (0, 0))
    return [ctx.node1("Conv", x, kernel_shape=[kernel], strides=[op.attr("stride", 1)],
                      pads=[pads[0], pads[1]], dilations=[op.attr("dilation", 1)],
                      group=op.attr("groups", 1))]


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
    return [ctx.node1("Gather", x, axis=op.attr("axis", 0))]


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


def _reduction(onnx_op: str) -> Emitter:
    def emit(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
        return [reduce(ctx, onnx_op, x[0], list(op.attributes["axes"]), op.attr("keepdims", True))]

    emit.__name__ = f"emit_{onnx_op}"
    return emit


emits("tensor.reduce_sum")(_reduction("ReduceSum"))
emits("tensor.reduce_mean")(_reduction("ReduceMean"))
emits("tensor.reduce_max")(_reduction("ReduceMax"))


@emits("tensor.constant")
def emit_constant(ctx: EmitContext, op: Op, x: list[str]) -> list[str]:
    array = np.ascontiguousarray(op.attributes["value"].array())
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
