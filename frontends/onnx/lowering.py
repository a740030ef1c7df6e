"""Lowering rules: one function per ONNX op type, building IR ops.

A rule receives a :class:`NodeContext` for the node: its attributes, its
inputs (each either known at import time or an IR value), an ``emit`` that
creates IR ops with the node's source location, and ``output`` to bind the
node's results.  Rules run only for nodes with at least one input that depends
on the model's inputs or on a weight; nodes with known inputs are folded
before (see :mod:`frontends.onnx.importer`).

The IR op set is small (see the ``dialects`` package), so several ONNX ops
share IR ops: Unsqueeze, Squeeze and Flatten are reshapes; Gemm is matmul
(with transposes) and adds; Split is slices; Sum is adds; LessOrEqual is
``not(greater)``; ReduceMin is ``-reduce_max(-x)``; Conv with one spatial axis
is ``nn.conv1d``; Softmax below opset 13 reshapes to 2-D around the softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from frontends.onnx import folding
from transcode_ir.core import Value
from transcode_ir.types import numpy_dtype

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from frontends.onnx.importer import _Importer

__all__ = ["LOWERINGS", "LoweringError", "NodeContext", "lower_gelu"]


class LoweringError(ValueError):
    """A node the rule for its op type cannot express (reported with the node)."""


class NodeContext:
    """What a lowering rule sees of one ONNX node."""

    def __init__(self, importer: _Importer, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        self.importer = importer
        self.node = node
        self.attrs = attrs
        self.op_type = node.op_type
        self.opset = importer.opset

    # -- inputs
    @property
    def num_inputs(self) -> int:
        return len(self.node.input)

    def has(self, index: int) -> bool:
        return index < len(self.node.input) and self.node.input[index] != ""

    def is_known(self, index: int) -> bool:
        name = self.node.input[index]
        return name in self.importer.constants or name in self.importer.initializers

    def is_weight(self, index: int) -> bool:
        return self.node.input[index] in self.importer.weight_sources

    def known(self, index: int, what: str = "") -> np.ndarray:
        """An input that must be known at import time (a shape, axes, pads...)."""
        if not self.has(index):
            raise LoweringError(f"input {index} ({what or 'required'}) is missing")
        if not self.is_known(index):
            raise LoweringError(
                f"input {index} ({what or self.node.input[index]!r}) must be known at import "
                "time, but it depends on the model's inputs; the IR needs static shapes")
        return self.importer.known(self.node.input[index])

    def ints(self, index: int, what: str = "") -> list[int]:
        return [int(v) for v in np.asarray(self.known(index, what)).reshape(-1)]

    def value(self, index: int) -> Value:
        """An input as an IR value (known arrays become constants or parameters)."""
        if not self.has(index):
            raise LoweringError(f"input {index} is missing")
        return self.importer.materialize(self.node.input[index], self.op_type, index)

    def shape(self, index: int) -> tuple[int, ...]:
        name = self.node.input[index]
        if self.is_known(index):
            return tuple(self.importer.known(name).shape)
        return self.importer.values[name].type.shape if name in self.importer.values \
            else self.value(index).type.shape

    def dtype(self, index: int) -> str:
        name = self.node.input[index]
        if self.is_known(index):
            return self.importer._array_dtype(self.importer.known(name))
        return self.value(index).type.dtype

    def rank(self, index: int) -> int:
        return len(self.shape(index))

    def transposed_weight(self, index: int, perm: Sequence[int]) -> Value:
        """A known input, rearranged at import time (a weight keeps its kind and
        is named ``<initializer>_transposed``)."""
        importer = self.importer
        name = self.node.input[index]
        array = np.ascontiguousarray(np.transpose(importer.known(name), perm))
        derived = f"{name}::transposed{tuple(perm)}"
        if derived not in importer.constants:
            importer.constants[derived] = array
            if name in importer.weight_sources:
                root, suffix = importer.weight_sources[name]
                importer.weight_sources[derived] = (root, suffix + "_transposed")
            elif name in importer.constant_sources:
                importer.constant_sources[derived] = importer.constant_sources[name]
        return importer.materialize(derived, self.op_type, index)

    def derived_weight(self, index: int, transform: Callable[[np.ndarray], np.ndarray],
                       suffix: str) -> Value:
        """A known input transformed at import time (a convolution weight as a
        matrix); a weight keeps its kind and is named ``<initializer><suffix>``."""
        importer = self.importer
        name = self.node.input[index]
        derived = f"{name}::{suffix}"
        if derived not in importer.constants:
            importer.constants[derived] = np.ascontiguousarray(transform(importer.known(name)))
            if name in importer.weight_sources:
                root, old = importer.weight_sources[name]
                importer.weight_sources[derived] = (root, old + suffix)
            elif name in importer.constant_sources:
                importer.constant_sources[derived] = importer.constant_sources[name]
        return importer.materialize(derived, self.op_type, index)

    # -- building
    def emit(self, op_name: str, operands: Sequence[Value], **attributes: Any) -> Value:
        return self.importer.builder.create(op_name, operands, attributes).result

    def literal(self, array: Any, dtype: str) -> Value:
        """A constant computed by the rule (a scale, a fill value)."""
        return self.importer.new_constant(np.asarray(array, dtype=numpy_dtype(dtype)))

    # -- outputs
    @property
    def outputs(self) -> list[str]:
        return list(self.node.output)

    def output(self, value: Value, index: int = 0) -> None:
        name = self.node.output[index]
        if name:
            self.importer.values[name] = value


# --------------------------------------------------------------------------- helpers


def _same_type(ctx: NodeContext, value: Value, dtype: str) -> Value:
    if value.type.dtype == dtype:
        return value
    return ctx.emit("arith.cast", [value], to=dtype)


def _binary_operands(ctx: NodeContext, first: int = 0, second: int = 1) -> tuple[Value, Value]:
    lhs, rhs = ctx.value(first), ctx.value(second)
    return lhs, rhs


def _reshape(ctx: NodeContext, value: Value, shape: Sequence[int]) -> Value:
    shape = tuple(int(d) for d in shape)
    if value.type.shape == shape:
        return value
    return ctx.emit("tensor.reshape", [value], shape=shape)


def _normalize_axis(axis: int, rank: int) -> int:
    return folding.normalize_axis(int(axis), rank)


def _axes_input_or_attribute(ctx: NodeContext, index: int, name: str = "axes") -> list[int] | None:
    if ctx.has(index):
        return ctx.ints(index, name)
    value = ctx.attrs.get(name)
    return None if value is None else [int(v) for v in value]


# --------------------------------------------------------------------------- elementwise


LOWERINGS: dict[str, Callable[[NodeContext], None]] = {}


def _rule(*op_types: str) -> Callable[[Callable[[NodeContext], None]], Callable[[NodeContext], None]]:
    def register(fn: Callable[[NodeContext], None]) -> Callable[[NodeContext], None]:
        for op_type in op_types:
            LOWERINGS[op_type] = fn
        return fn
    return register


_BINARY = {"Add": "arith.add", "Sub": "arith.sub", "Mul": "arith.mul", "Div": "arith.div",
           "Equal": "arith.equal", "Less": "arith.less", "Greater": "arith.greater",
           "And": "arith.and", "Or": "arith.or"}


@_rule(*_BINARY)
def lower_binary(ctx: NodeContext) -> None:
    lhs, rhs = _binary_operands(ctx)
    ctx.output(ctx.emit(_BINARY[ctx.op_type], [lhs, rhs]))


@_rule("Pow")
def lower_pow(ctx: NodeContext) -> None:
    base = ctx.value(0)
    if ctx.is_known(1) and not ctx.is_weight(1):
        exponent_array = ctx.known(1)
        exponent = ctx.literal(exponent_array, base.type.dtype) \
            if exponent_array.dtype != numpy_dtype(base.type.dtype) else ctx.value(1)
    else:
        exponent = _same_type(ctx, ctx.value(1), base.type.dtype)
    ctx.output(ctx.emit("arith.pow", [base, exponent]))


@_rule("LessOrEqual", "GreaterOrEqual")
def lower_compare_or_equal(ctx: NodeContext) -> None:
    lhs, rhs = _binary_operands(ctx)
    strict = "arith.greater" if ctx.op_type == "LessOrEqual" else "arith.less"
    ctx.output(ctx.emit("arith.not", [ctx.emit(strict, [lhs, rhs])]))


@_rule("Xor")
def lower_xor(ctx: NodeContext) -> None:
    lhs, rhs = _binary_operands(ctx)
    either = ctx.emit("arith.or", [lhs, rhs])
    both = ctx.emit("arith.and", [lhs, rhs])
    ctx.output(ctx.emit("arith.and", [either, ctx.emit("arith.not", [both])]))


_VARIADIC = {"Sum": "arith.add", "Max": "arith.max", "Min": "arith.min", "Mean": "arith.add"}


@_rule(*_VARIADIC)
def lower_variadic(ctx: NodeContext) -> None:
    operands = [ctx.value(i) for i in range(ctx.num_inputs) if ctx.has(i)]
    if not operands:
        raise LoweringError(f"{ctx.op_type} needs at least one input")
    result = operands[0]
    for other in operands[1:]:
        result = ctx.emit(_VARIADIC[ctx.op_type], [result, other])
    if ctx.op_type == "Mean" and len(operands) > 1:
        result = ctx.emit("arith.div", [result, ctx.literal(len(operands), result.type.dtype)])
    ctx.output(result)


_UNARY = {"Neg": "arith.neg", "Abs": "arith.abs", "Sqrt": "arith.sqrt",
          "Reciprocal": "arith.reciprocal", "Exp": "arith.exp", "Log": "arith.log",
          "Erf": "arith.erf", "Tanh": "arith.tanh", "Sigmoid": "arith.sigmoid",
          "Sin": "arith.sin", "Cos": "arith.cos", "Not": "arith.not", "Relu": "nn.relu",
          "IsNaN": "arith.isnan"}


@_rule(*_UNARY)
def lower_unary(ctx: NodeContext) -> None:
    ctx.output(ctx.emit(_UNARY[ctx.op_type], [ctx.value(0)]))


@_rule("IsInf")
def lower_isinf(ctx: NodeContext) -> None:
    attributes = {}
    for name in ("detect_positive", "detect_negative"):
        if not ctx.attrs.get(name, 1):
            attributes[name] = False
    ctx.output(ctx.emit("arith.isinf", [ctx.value(0)], **attributes))


@_rule("Gelu")
def lower_gelu_node(ctx: NodeContext) -> None:
    approximate = ctx.attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise LoweringError(f"Gelu approximate={approximate!r}; expected 'none' or 'tanh'")
    attributes = {"approximate": approximate} if approximate != "none" else {}
    ctx.output(ctx.emit("nn.gelu", [ctx.value(0)], **attributes))


def lower_gelu(ctx: NodeContext, x: str, approximate: str = "none") -> None:
    """The root of a recognised GELU subgraph (see :mod:`frontends.onnx.patterns`)."""
    importer = ctx.importer
    if x in importer.constants or x in importer.initializers:
        from dialects.nn import gelu

        array = importer.known(x)
        importer.constants[ctx.node.output[0]] = gelu(array, approximate)
        return
    value = importer.materialize(x, "Gelu", 0)
    attributes = {"approximate": approximate} if approximate != "none" else {}
    ctx.output(ctx.emit("nn.gelu", [value], **attributes))


@_rule("LeakyRelu")
def lower_leaky_relu(ctx: NodeContext) -> None:
    x = ctx.value(0)
    alpha = ctx.attrs.get("alpha", 0.01)
    positive = ctx.emit("arith.greater", [x, ctx.literal(0, x.type.dtype)])
    scaled = ctx.emit("arith.mul", [x, ctx.literal(alpha, x.type.dtype)])
    ctx.output(ctx.emit("arith.select", [positive, x, scaled]))


@_rule("Clip")
def lower_clip(ctx: NodeContext) -> None:
    x = ctx.value(0)
    result = x
    if ctx.opset < 11:
        low, high = ctx.attrs.get("min"), ctx.attrs.get("max")
        if low is not None:
            result = ctx.emit("arith.max", [result, ctx.literal(low, x.type.dtype)])
        if high is not None:
            result = ctx.emit("arith.min", [result, ctx.literal(high, x.type.dtype)])
    else:
        if ctx.has(1):
            result = ctx.emit("arith.max", [result, ctx.value(1)])
        if ctx.has(2):
            result = ctx.emit("arith.min", [result, ctx.value(2)])
    ctx.output(result)


@_rule("Where")
def lower_where(ctx: NodeContext) -> None:
    condition = ctx.value(0)
    if condition.type.dtype != "bool":
        condition = ctx.emit("arith.cast", [condition], to="bool")
    ctx.output(ctx.emit("arith.select", [condition, ctx.value(1), ctx.value(2)]))


@_rule("Cast")
def lower_cast(ctx: NodeContext) -> None:
    x = ctx.value(0)
    target = ctx.importer._ir_dtype(ctx.attrs["to"], f"Cast node {ctx.node.name!r}'s target")
    ctx.output(_same_type(ctx, x, target))


@_rule("CastLike")
def lower_cast_like(ctx: NodeContext) -> None:
    ctx.output(_same_type(ctx, ctx.value(0), ctx.dtype(1)))


# --------------------------------------------------------------------------- matrix products


@_rule("MatMul")
def lower_matmul(ctx: NodeContext) -> None:
    lhs, rhs = _binary_operands(ctx)
    ctx.output(ctx.emit("tensor.matmul", [lhs, rhs]))


@_rule("Gemm")
def lower_gemm(ctx: NodeContext) -> None:
    def operand(index: int, transpose: bool) -> Value:
        if not transpose:
            return ctx.value(index)
        if ctx.is_known(index):
            return ctx.transposed_weight(index, (1, 0))
        return ctx.emit("tensor.transpose", [ctx.value(index)], perm=(1, 0))

    a = operand(0, bool(ctx.attrs.get("transA", 0)))
    b = operand(1, bool(ctx.attrs.get("transB", 0)))
    result = ctx.emit("tensor.matmul", [a, b])
    dtype = result.type.dtype
    alpha = float(ctx.attrs.get("alpha", 1.0))
    beta = float(ctx.attrs.get("beta", 1.0))
    if alpha != 1.0:
        result = ctx.emit("arith.mul", [result, ctx.literal(alpha, dtype)])
    if ctx.has(2) and beta != 0.0:
        bias = ctx.value(2)
        if beta != 1.0:
            bias = ctx.emit("arith.mul", [bias, ctx.literal(beta, dtype)])
        result = ctx.emit("arith.add", [result, bias])
    ctx.output(result)


def _conv_pads(ctx: NodeContext, sizes: Sequence[int], kernel: Sequence[int],
               strides: Sequence[int], dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(begin, end) padding of each spatial axis of a Conv, auto_pad resolved."""
    auto_pad = ctx.attrs.get("auto_pad", "NOTSET")
    rank = len(sizes)
    if auto_pad in ("NOTSET", ""):
        pads = [int(p) for p in ctx.attrs.get("pads", [0] * (2 * rank))]
        return [(pads[i], pads[i + rank]) for i in range(rank)]
    if auto_pad == "VALID":
        return [(0, 0)] * rank
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, stride, dilation in zip(sizes, kernel, strides, dilations):
            out_size = -(-size // stride)
            total = max((out_size - 1) * stride + (k - 1) * dilation + 1 - size, 0)
            small, large = total // 2, total - total // 2
            out.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
        return out
    raise LoweringError(f"Conv auto_pad={auto_pad!r} is not an ONNX value")


@_rule("Conv")
def lower_conv(ctx: NodeContext) -> None:
    x_rank = ctx.rank(0)
    if x_rank == 4:
        lower_conv2d(ctx)
        return
    if x_rank != 3:
        raise LoweringError(f"Conv with {x_rank - 2} spatial axes; the importer reads Conv with "
                            "one spatial axis (input [N, C, L]) or two ([N, C, H, W])")
    weight_shape = ctx.shape(1)
    kernel = int(ctx.attrs.get("kernel_shape", weight_shape[2:])[0])
    stride = int(ctx.attrs.get("strides", [1])[0])
    dilation = int(ctx.attrs.get("dilations", [1])[0])
    groups = int(ctx.attrs.get("group", 1))
    auto_pad = ctx.attrs.get("auto_pad", "NOTSET")
    length = ctx.shape(0)[2]
    if auto_pad in ("NOTSET", ""):
        pads = tuple(int(p) for p in ctx.attrs.get("pads", [0, 0]))
    elif auto_pad == "VALID":
        pads = (0, 0)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_length = -(-length // stride)
        total = max((out_length - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
        small, large = total // 2, total - total // 2
        pads = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    else:
        raise LoweringError(f"Conv auto_pad={auto_pad!r} is not an ONNX value")
    operands = [ctx.value(0), ctx.value(1)]
    if ctx.has(2):
        operands.append(ctx.value(2))
    ctx.output(ctx.emit("nn.conv1d", operands, stride=stride, pads=pads, dilation=dilation,
                        groups=groups))


def lower_conv2d(ctx: NodeContext) -> None:
    """A 2-D Conv as a matrix product over patches (im2col).

    Patches ``[N, OH·OW, C·KH·KW]`` times the weight as ``[C·KH·KW, M]`` (per
    group): one ``tensor.matmul`` whose B·M·K·N is the convolution's
    (N·OH·OW rows, C·KH·KW deep, M wide), which is how the cost model and the
    autodiff pass see it.  A patch embedding (stride = kernel, no padding or
    dilation: ViT) takes its patches by reshape and transpose; any other
    convolution gathers them with a constant index (padding by concatenating
    zeros first).  The weight keeps its torch name (``<name>_matrix``: the
    ``[C·KH·KW, M]`` layout).
    """
    n, channels, height, width = ctx.shape(0)
    w_shape = ctx.shape(1)
    if len(w_shape) != 4:
        raise LoweringError(f"Conv weight {list(w_shape)} for a 2-D input; expected [M, C/group, KH, KW]")
    m, cg, kh, kw = w_shape
    kernel = [int(k) for k in ctx.attrs.get("kernel_shape", (kh, kw))]
    strides = [int(s) for s in ctx.attrs.get("strides", (1, 1))]
    dilations = [int(d) for d in ctx.attrs.get("dilations", (1, 1))]
    groups = int(ctx.attrs.get("group", 1))
    if tuple(kernel) != (kh, kw):
        raise LoweringError(f"Conv kernel_shape {kernel} differs from the weight's {[kh, kw]}")
    if channels % groups or m % groups or cg != channels // groups:
        raise LoweringError(f"Conv with {channels} channels, {m} filters and group={groups} does "
                            f"not fit weight {list(w_shape)}")
    pads = _conv_pads(ctx, (height, width), kernel, strides, dilations)
    padded = (height + pads[0][0] + pads[0][1], width + pads[1][0] + pads[1][1])
    out_h, out_w = ((size - d * (k - 1) - 1) // s + 1
                    for size, k, s, d in zip(padded, kernel, strides, dilations))
    if out_h <= 0 or out_w <= 0:
        raise LoweringError(f"Conv output would be empty ({out_h}x{out_w})")
    x = ctx.value(0)
    dtype = x.type.dtype
    rows, depth = out_h * out_w, cg * kh * kw
    if not any(p for pair in pads for p in pair) and dilations == [1, 1] \
            and strides == [kh, kw]:
        # Non-overlapping patches: crop, then [N, C, OH, KH, OW, KW] -> [N, OH, OW, C, KH, KW].
        x = _slice(ctx, x, [(2, 0, out_h * kh, 1), (3, 0, out_w * kw, 1)])
        x = _reshape(ctx, x, (n, channels, out_h, kh, out_w, kw))
        x = ctx.emit("tensor.transpose", [x], perm=(0, 2, 4, 1, 3, 5))
        patches = _reshape(ctx, x, (n, rows, channels * kh * kw))
    else:
        for axis, (before, after) in ((2, pads[0]), (3, pads[1])):
            parts = []
            for count in (before, after):
                shape = list(x.type.shape)
                shape[axis] = count
                parts.append(ctx.literal(np.zeros(shape), dtype) if count else None)
            if parts[0] is not None or parts[1] is not None:
                x = ctx.emit("tensor.concat", [p for p in (parts[0], x, parts[1]) if p is not None],
                             axis=axis)
        flat = _reshape(ctx, x, (n, channels, padded[0] * padded[1]))
        oy, ox = np.meshgrid(np.arange(out_h) * strides[0], np.arange(out_w) * strides[1],
                             indexing="ij")
        ky, kx = np.meshgrid(np.arange(kh) * dilations[0], np.arange(kw) * dilations[1],
                             indexing="ij")
        index = ((oy.reshape(-1, 1) + ky.reshape(1, -1)) * padded[1]
                 + ox.reshape(-1, 1) + kx.reshape(1, -1)).astype(np.int64)    # [rows, KH*KW]
        windows = ctx.emit("tensor.gather", [flat, ctx.importer.new_constant(index, "patches")],
                           axis=2)                                              # [N, C, rows, KK]
        windows = ctx.emit("tensor.transpose", [windows], perm=(0, 2, 1, 3))
        patches = _reshape(ctx, windows, (n, rows, channels * kh * kw))
    # Weight [M, C/g, KH, KW] -> [g, C/g*KH*KW, M/g] (or [C*KH*KW, M] when g = 1).
    mg = m // groups
    if ctx.is_known(1):
        matrix_shape = (depth, m) if groups == 1 else (groups, depth, mg)
        weight = ctx.derived_weight(
            1, lambda w: w.reshape(groups, mg, depth).transpose(0, 2, 1).reshape(matrix_shape),
            "_matrix")
    else:
        weight = _reshape(ctx, ctx.value(1), (groups, mg, depth))
        weight = ctx.emit("tensor.transpose", [weight], perm=(0, 2, 1))
        if groups == 1:
            weight = _reshape(ctx, weight, (depth, m))
    if groups == 1:
        y = ctx.emit("tensor.matmul", [patches, weight])                     # [N, rows, M]
    else:
        grouped = _reshape(ctx, patches, (n, rows, groups, depth))
        grouped = ctx.emit("tensor.transpose", [grouped], perm=(0, 2, 1, 3))  # [N, g, rows, depth]
        y = ctx.emit("tensor.matmul", [grouped, weight])                     # [N, g, rows, M/g]
        y = ctx.emit("tensor.transpose", [y], perm=(0, 2, 1, 3))
        y = _reshape(ctx, y, (n, rows, m))
    if ctx.has(2):
        y = ctx.emit("arith.add", [y, ctx.value(2)])
    y = ctx.emit("tensor.transpose", [y], perm=(0, 2, 1))
    ctx.output(_reshape(ctx, y, (n, m, out_h, out_w)))


# --------------------------------------------------------------------------- data movement


@_rule("Reshape")
def lower_reshape(ctx: NodeContext) -> None:
    if ctx.opset < 5:  # pragma: no cover - MIN_OPSET is above this
        target = list(ctx.attrs["shape"])
    else:
        target = ctx.ints(1, "shape")
    x = ctx.value(0)
    shape = folding.reshape_target(x.type.shape, target, bool(ctx.attrs.get("allowzero", 0)))
    ctx.output(_reshape(ctx, x, shape))


@_rule("Flatten")
def lower_flatten(ctx: NodeContext) -> None:
    x = ctx.value(0)
    ctx.output(_reshape(ctx, x, folding.flatten_shape(x.type.shape, ctx.attrs.get("axis", 1))))


@_rule("Unsqueeze")
def lower_unsqueeze(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axes = _axes_input_or_attribute(ctx, 1)
    if axes is None:
        raise LoweringError("Unsqueeze needs axes")
    ctx.output(_reshape(ctx, x, folding.unsqueeze_shape(x.type.shape, axes)))


@_rule("Squeeze")
def lower_squeeze(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axes = _axes_input_or_attribute(ctx, 1)
    ctx.output(_reshape(ctx, x, folding.squeeze_shape(x.type.shape, axes)))


@_rule("Transpose")
def lower_transpose(ctx: NodeContext) -> None:
    x = ctx.value(0)
    rank = x.type.rank
    perm = ctx.attrs.get("perm")
    perm = tuple(int(p) for p in perm) if perm is not None else tuple(reversed(range(rank)))
    if perm == tuple(range(rank)):
        ctx.output(x)
        return
    ctx.output(ctx.emit("tensor.transpose", [x], perm=perm))


@_rule("Gather")
def lower_gather(ctx: NodeContext) -> None:
    data_shape = ctx.shape(0)
    axis = _normalize_axis(ctx.attrs.get("axis", 0), len(data_shape))
    if ctx.is_known(1) and not ctx.is_weight(1):
        indices = ctx.known(1)
        core = folding.compact(indices)   # an index broadcast over the batch stays broadcast
        if np.any(core < 0):
            core = np.where(core < 0, core + data_shape[axis], core)
            index_value = ctx.importer.new_constant(folding.broadcast(core, indices.shape))
        else:
            index_value = ctx.value(1)
    else:
        index_value = ctx.value(1)
    tied = ctx.importer.tied_tables.get(ctx.node.input[0]) if axis == 0 else None
    if tied is not None:
        # A tied LM head: one parameter, in the layout of the head's matrix product
        # ([hidden, vocab], named as the head's weight); the lookup gathers its
        # columns and moves the hidden axis last (a transpose of activations only).
        matrix = ctx.importer.materialize_for(tied[0], tied[1], "MatMul", 1)
        columns = ctx.emit("tensor.gather", [matrix, index_value], axis=1)
        rank = columns.type.rank
        ctx.output(ctx.emit("tensor.transpose", [columns], perm=tuple(range(1, rank)) + (0,)))
        return
    ctx.output(ctx.emit("tensor.gather", [ctx.value(0), index_value], axis=axis))


def _strides(shape: Sequence[int]) -> list[int]:
    """Element strides of a C-ordered array of ``shape``."""
    out, step = [], 1
    for dim in reversed(shape):
        out.append(step)
        step *= int(dim)
    return out[::-1]


def _index_value(ctx: NodeContext, index: int, dims: Any) -> Value:
    """A run-time index input as i64 with negative entries wrapped by ``dims``
    (a number, or a vector along the last axis for GatherND)."""
    value = _same_type(ctx, ctx.value(index), "i64")
    limit = ctx.literal(np.asarray(dims, dtype=np.int64), "i64")
    negative = ctx.emit("arith.less", [value, ctx.literal(0, "i64")])
    return ctx.emit("arith.select", [negative, ctx.emit("arith.add", [value, limit]), value])


def _flat_gather(ctx: NodeContext, data: Value, lead: int, flat_index: Value | np.ndarray) -> Value:
    """``data`` with its first ``lead`` axes merged into one, gathered along it
    by ``flat_index`` (known or run time)."""
    shape = data.type.shape
    merged = _reshape(ctx, data, (math.prod(shape[:lead]),) + tuple(shape[lead:]))
    if isinstance(flat_index, np.ndarray):
        flat_index = ctx.importer.new_constant(flat_index.astype(np.int64), "indices")
    return ctx.emit("tensor.gather", [merged, flat_index], axis=0)


@_rule("GatherElements")
def lower_gather_elements(ctx: NodeContext) -> None:
    """``out[..i..] = data[..index[..i..] on axis..]`` as a ``tensor.gather`` of
    the flattened data at flat positions: offsets of the other axes (known)
    plus index × stride of the axis (folded when the index is known)."""
    data_shape, index_shape = ctx.shape(0), ctx.shape(1)
    rank = len(data_shape)
    if len(index_shape) != rank:
        raise LoweringError(f"GatherElements indices {list(index_shape)} and data "
                            f"{list(data_shape)} differ in rank")
    axis = _normalize_axis(ctx.attrs.get("axis", 0), rank)
    if any(i != axis and n > d for i, (n, d) in enumerate(zip(index_shape, data_shape))):
        raise LoweringError(f"GatherElements indices {list(index_shape)} exceed data "
                            f"{list(data_shape)}")
    known = ctx.is_known(1) and not ctx.is_weight(1)
    lead = 0
    if known:
        # Leading axes the known index repeats along (DeBERTa's relative positions,
        # expanded over batch and heads) stay axes of the gather: the flat index
        # covers the other axes only, so its size does not grow with them.
        core = folding.compact(ctx.known(1))
        while lead < axis and core.shape[lead] == 1 and index_shape[lead] == data_shape[lead]:
            lead += 1
    inner_data, inner_index = data_shape[lead:], index_shape[lead:]
    strides = _strides(inner_data)
    inner_axis = axis - lead
    offsets = np.zeros([1 if i == inner_axis else n for i, n in enumerate(inner_index)], np.int64)
    for i, n in enumerate(inner_index):
        if i != inner_axis:
            shape = [1] * len(inner_index)
            shape[i] = n
            offsets = offsets + np.arange(n, dtype=np.int64).reshape(shape) * strides[i]
    if known:
        index = folding.wrap_indices(core.reshape(core.shape[lead:]), data_shape[axis],
                                      "GatherElements")
        flat: Value | np.ndarray = np.ascontiguousarray(
            np.broadcast_to(offsets + index * strides[inner_axis], inner_index))
        if lead:
            rows = math.prod(data_shape[:lead])
            data = _reshape(ctx, ctx.value(0), (rows, math.prod(inner_data)))
            picked = ctx.emit("tensor.gather", [data, ctx.importer.new_constant(flat, "indices")],
                              axis=1)
            ctx.output(_reshape(ctx, picked, index_shape))
            return
    else:
        scaled = ctx.emit("arith.mul", [_index_value(ctx, 1, data_shape[axis]),
                                        ctx.literal(strides[axis], "i64")])
        flat = ctx.emit("arith.add", [scaled, ctx.importer.new_constant(offsets, "offsets")])
    ctx.output(_flat_gather(ctx, ctx.value(0), rank, flat))


@_rule("GatherND")
def lower_gather_nd(ctx: NodeContext) -> None:
    """GatherND as a ``tensor.gather`` of the data with its batch and indexed
    axes merged: the flat position is Σ index[..., j] × stride_j plus the
    batch offset (folded when the index is known)."""
    data_shape, index_shape = ctx.shape(0), ctx.shape(1)
    b = int(ctx.attrs.get("batch_dims", 0))
    k = index_shape[-1] if index_shape else 0
    if not index_shape or b + k > len(data_shape) or tuple(data_shape[:b]) != tuple(index_shape[:b]):
        raise LoweringError(f"GatherND indices {list(index_shape)} (batch_dims={b}) do not fit "
                            f"data {list(data_shape)}")
    lead = data_shape[:b + k]
    strides = _strides(lead)
    batch_offsets = np.zeros([1] * (len(index_shape) - 1), np.int64)
    for i in range(b):
        shape = [1] * (len(index_shape) - 1)
        shape[i] = index_shape[i]
        batch_offsets = batch_offsets + np.arange(index_shape[i], dtype=np.int64).reshape(shape) \
            * strides[i]
    index_strides = np.array(strides[b:b + k], dtype=np.int64)
    if ctx.is_known(1) and not ctx.is_weight(1):
        index = folding.wrap_indices(ctx.known(1), data_shape[b:b + k], "GatherND")
        flat: Value | np.ndarray = np.ascontiguousarray(np.broadcast_to(
            batch_offsets + (index * index_strides).sum(axis=-1), index_shape[:-1]))
    else:
        wrapped = _index_value(ctx, 1, data_shape[b:b + k])
        scaled = ctx.emit("arith.mul", [wrapped, ctx.literal(index_strides, "i64")])
        flat = ctx.emit("tensor.reduce_sum", [scaled], axes=(len(index_shape) - 1,), keepdims=False)
        if b:
            flat = ctx.emit("arith.add", [flat, ctx.importer.new_constant(batch_offsets, "offsets")])
    ctx.output(_flat_gather(ctx, ctx.value(0), b + k, flat))


@_rule("CumSum")
def lower_cumsum(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axis = _normalize_axis(ctx.ints(1, "axis")[0], x.type.rank)
    attributes = {}
    if ctx.attrs.get("exclusive", 0):
        attributes["exclusive"] = True
    if ctx.attrs.get("reverse", 0):
        attributes["reverse"] = True
    ctx.output(ctx.emit("tensor.cumsum", [x], axis=axis, **attributes))


@_rule("Trilu")
def lower_trilu(ctx: NodeContext) -> None:
    """Trilu of a run-time tensor: a select with the (known) triangle."""
    x = ctx.value(0)
    if x.type.rank < 2:
        raise LoweringError(f"Trilu needs rank >= 2, got {list(x.type.shape)}")
    k = ctx.ints(1, "k")[0] if ctx.has(1) else 0
    rows, cols = x.type.shape[-2:]
    keep = folding.trilu(np.ones((rows, cols), dtype=bool), k, bool(ctx.attrs.get("upper", 1)))
    zero = ctx.literal(0, x.type.dtype)
    ctx.output(ctx.emit("arith.select", [ctx.importer.new_constant(keep, "triangle"), x, zero]))


@_rule("Concat")
def lower_concat(ctx: NodeContext) -> None:
    operands = [ctx.value(i) for i in range(ctx.num_inputs) if ctx.has(i)]
    axis = _normalize_axis(ctx.attrs["axis"], operands[0].type.rank)
    if len(operands) == 1:
        ctx.output(operands[0])
        return
    ctx.output(ctx.emit("tensor.concat", operands, axis=axis))


def _slice(ctx: NodeContext, x: Value, ranges: list[tuple[int, int, int, int]]) -> Value:
    shape = x.type.shape
    kept = [(a, s, e, st) for a, s, e, st in ranges
            if not (st == 1 and s == 0 and e >= shape[a])]
    if not kept:
        return x
    axes, starts, ends, steps = (tuple(r[i] for r in kept) for i in range(4))
    ends = tuple(min(e, shape[a]) if st > 0 else e for a, e, st in zip(axes, ends, steps))
    return ctx.emit("tensor.slice", [x], starts=starts, ends=ends, axes=axes, steps=steps)


@_rule("Slice")
def lower_slice(ctx: NodeContext) -> None:
    x = ctx.value(0)
    if ctx.opset < 10:
        starts, ends = ctx.attrs["starts"], ctx.attrs["ends"]
        axes, steps = ctx.attrs.get("axes"), None
    else:
        starts, ends = ctx.ints(1, "starts"), ctx.ints(2, "ends")
        axes = ctx.ints(3, "axes") if ctx.has(3) else None
        steps = ctx.ints(4, "steps") if ctx.has(4) else None
    ranges = folding.slice_ranges(x.type.shape, starts, ends, axes, steps)
    ctx.output(_slice(ctx, x, ranges))


@_rule("Split")
def lower_split(ctx: NodeContext) -> None:
    x = ctx.value(0)
    rank = x.type.rank
    axis = _normalize_axis(ctx.attrs.get("axis", 0), rank)
    split = ctx.ints(1, "split") if ctx.has(1) else ctx.attrs.get("split")
    sizes = folding.split_sizes(x.type.shape[axis], len(ctx.outputs), split)
    start = 0
    for index, size in enumerate(sizes):
        if ctx.outputs[index]:
            ctx.output(_slice(ctx, x, [(axis, start, start + size, 1)]), index)
        start += size


@_rule("Expand")
def lower_expand(ctx: NodeContext) -> None:
    x = ctx.value(0)
    target = ctx.ints(1, "shape")
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(x.type.shape, tuple(target)))
    except ValueError:
        raise LoweringError(f"cannot expand {list(x.type.shape)} to {target}") from None
    if shape == x.type.shape:
        ctx.output(x)
        return
    ctx.output(ctx.emit("tensor.expand", [x], shape=shape))


@_rule("Tile")
def lower_tile(ctx: NodeContext) -> None:
    x = ctx.value(0)
    repeats = ctx.ints(1, "repeats")
    if len(repeats) != x.type.rank:
        raise LoweringError(f"Tile repeats {repeats} do not match rank {x.type.rank}")
    result = x
    for axis, count in enumerate(repeats):
        if count != 1:
            result = ctx.emit("tensor.concat", [result] * count, axis=axis)
    ctx.output(result)


@_rule("Pad")
def lower_pad(ctx: NodeContext) -> None:
    x = ctx.value(0)
    mode = ctx.attrs.get("mode", "constant")
    if mode != "constant":
        raise LoweringError(f"Pad mode {mode!r}; the importer lowers mode 'constant' only")
    rank = x.type.rank
    pads = ctx.ints(1, "pads") if ctx.opset >= 11 else list(ctx.attrs.get("pads", []))
    fill = 0.0
    if ctx.opset >= 11 and ctx.has(2):
        fill = ctx.known(2, "constant_value").reshape(-1)[0]
    elif ctx.opset < 11:
        fill = ctx.attrs.get("value", 0.0)
    axes = ctx.ints(3, "axes") if ctx.opset >= 18 and ctx.has(3) else list(range(rank))
    axes = [_normalize_axis(a, rank) for a in axes]
    begins, ends = pads[:len(axes)], pads[len(axes):]
    result = x
    for axis, before, after in zip(axes, begins, ends):
        if before < 0 or after < 0:
            size = result.type.shape[axis]
            result = _slice(ctx, result, [(axis, max(-before, 0), size - max(-after, 0), 1)])
            before, after = max(before, 0), max(after, 0)
        parts = []
        for count in (before, 0, after):
            if count == 0:
                parts.append(None)
                continue
            shape = list(result.type.shape)
            shape[axis] = count
            parts.append(ctx.literal(np.full(shape, fill), result.type.dtype))
        if parts[0] is None and parts[2] is None:
            continue
        operands = [p for p in (parts[0], result, parts[2]) if p is not None]
        result = ctx.emit("tensor.concat", operands, axis=axis)
    ctx.output(result)


# --------------------------------------------------------------------------- reductions, normalisation


_REDUCE = {"ReduceSum": "tensor.reduce_sum", "ReduceMean": "tensor.reduce_mean",
           "ReduceMax": "tensor.reduce_max", "ReduceMin": "tensor.reduce_max"}


@_rule(*_REDUCE)
def lower_reduce(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axes = _axes_input_or_attribute(ctx, 1)
    keepdims = bool(ctx.attrs.get("keepdims", 1))
    if not axes:
        if ctx.attrs.get("noop_with_empty_axes", 0):
            ctx.output(x)
            return
        axes = list(range(x.type.rank))
    axes = sorted(_normalize_axis(a, x.type.rank) for a in axes)
    if ctx.op_type == "ReduceMin":
        negated = ctx.emit("arith.neg", [x])
        reduced = ctx.emit("tensor.reduce_max", [negated], axes=tuple(axes), keepdims=keepdims)
        ctx.output(ctx.emit("arith.neg", [reduced]))
        return
    ctx.output(ctx.emit(_REDUCE[ctx.op_type], [x], axes=tuple(axes), keepdims=keepdims))


@_rule("LayerNormalization")
def lower_layer_norm(ctx: NodeContext) -> None:
    for index in (1, 2):
        if index < len(ctx.outputs) and ctx.outputs[index] and \
                ctx.importer._output_used(ctx.outputs[index]):
            raise LoweringError("LayerNormalization's Mean and InvStdDev outputs are not "
                                "supported (only training graphs use them)")
    x = ctx.value(0)
    axis = _normalize_axis(ctx.attrs.get("axis", -1), x.type.rank)
    operands = [x, ctx.value(1)]
    if ctx.has(2):
        operands.append(ctx.value(2))
    epsilon = float(ctx.attrs.get("epsilon", 1e-5))
    axis_attr = axis - x.type.rank  # canonical: negative, as torch writes it
    ctx.output(ctx.emit("nn.layer_norm", operands, axis=axis_attr, epsilon=epsilon))


@_rule("Softmax", "LogSoftmax")
def lower_softmax(ctx: NodeContext) -> None:
    x = ctx.value(0)
    rank = x.type.rank
    if ctx.opset >= 13:
        axis = _normalize_axis(ctx.attrs.get("axis", -1), rank)
        result = ctx.emit("nn.softmax", [x], axis=axis - rank)
    else:
        # Before opset 13: softmax over the flattened trailing axes from 'axis'.
        axis = _normalize_axis(ctx.attrs.get("axis", 1), rank)
        if axis == rank - 1:
            result = ctx.emit("nn.softmax", [x], axis=-1)
        else:
            outer, inner = math.prod(x.type.shape[:axis]), math.prod(x.type.shape[axis:])
            flat = _reshape(ctx, x, (outer, inner))
            result = _reshape(ctx, ctx.emit("nn.softmax", [flat], axis=-1), x.type.shape)
    if ctx.op_type == "LogSoftmax":
        result = ctx.emit("arith.log", [result])
    ctx.output(result)
