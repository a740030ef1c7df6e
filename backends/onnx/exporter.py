"""Export one function of an IR module as an ONNX model.

:func:`export_function` walks the function's ops in order and hands each to
its emitter in :data:`backends.onnx.emitters.EMITTERS`.  An op kind without
an emitter whose definition knows how to decompose itself (fused ops) is
emitted as its decomposition, under the fused op's name and ``loc``.  Any
other op kind is a :class:`~backends.onnx.context.OnnxExportError` naming the
op, its position and the supported op kinds.

Names (see :mod:`backends.onnx.context`): graph inputs are the function's
argument names, graph outputs its result names (plus ``P.updated`` for every
write to parameter ``P``), module parameters are initializers under their own
names, the IR result ``%N`` is tensor ``vN`` and carries its IR type as
``value_info``, and node ``<loc>#<index>`` comes from op ``#index``.

The model is checked with ``onnx.checker.check_model(full_check=True)``
(which also runs strict shape inference against the IR's types) unless
``check=False``; the check runs on the model without its parameter data (see
:func:`check_without_data`), so it is quick for large models too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from backends.onnx.context import EmitContext, OnnxExportError, op_position, value_info
from backends.onnx.emitters import EMITTERS, NOT_EXPORTABLE, supported_op_kinds
from transcode_ir.core import Builder, Function, Module, Op, Value
from transcode_ir.opdefs import get_opdef

__all__ = ["MIN_OPSET", "check_without_data", "decomposition_of", "export_function",
           "initializer_bytes", "max_opset", "save_onnx"]

#: The oldest ONNX opset emitted: Softmax normalises along one axis from 13 on.
MIN_OPSET = 13

#: Protobuf cannot serialise a message of 2 GiB or more; bigger models keep
#: their initializers in an external data file beside the .onnx.
_PROTOBUF_LIMIT = 2**31 - 2**20


def max_opset() -> int:
    """The newest default-domain opset the installed onnx package knows."""
    return onnx.defs.onnx_opset_version()


def export_function(module: Module, func_name: str = "forward", opset: int = 18, *,
                    check: bool = True) -> onnx.ModelProto:
    """Emit ``module``'s function ``func_name`` as an ONNX model of ``opset``.

    Every parameter the function reads must have data (load the ``.npz``
    beside the ``.tir``).  Raises :class:`OnnxExportError` for an unknown
    function, an unsupported opset, an op kind that does not export, or
    result names that ONNX cannot represent.
    """
    if not MIN_OPSET <= opset <= max_opset():
        raise OnnxExportError(f"cannot export to ONNX opset {opset}: supported opsets are "
                              f"{MIN_OPSET} to {max_opset()}")
    try:
        func = module.function(func_name)
    except KeyError as err:
        raise OnnxExportError(f"cannot export to ONNX: {err.args[0]}") from None
    _check_exportable(func)

    ctx = EmitContext(module, func, opset)
    _declare_inputs(ctx, func)
    claimed = _claim_output_names(ctx, func)
    result_number = 0
    for index, op in enumerate(func):
        prefix = f"v{result_number}" if op.results else f"op{index}"
        ctx.begin_op(op, index, prefix)
        names = emit_op(ctx, op, [ctx.name_of(v) for v in op.operands])
        if len(names) != len(op.results):
            raise AssertionError(f"the ONNX emitter of {op.name} returned {len(names)} name(s) "
                                 f"for {len(op.results)} result(s)")
        for result, name in zip(op.results, names):
            _bind_result(ctx, result, name, claimed.get(id(result)), f"v{result_number}")
            result_number += 1
        ctx.finish_op()

    model = ctx.model
    _fill_model(model, ctx, parameters_as_inputs=False)
    if check:
        check_without_data(ctx)
    return model


def save_onnx(module: Module, path: str | Path, func_name: str = "forward", opset: int = 18, *,
              check: bool = True) -> Path:
    """Export like :func:`export_function` and write the model to ``path``.

    Models of 2 GiB or more keep their parameters in ``<path>.data`` beside
    the file (ONNX external data), as protobuf cannot hold them.
    """
    path = Path(path)
    model = export_function(module, func_name, opset, check=check)
    if initializer_bytes(model) >= _PROTOBUF_LIMIT:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data")
    else:
        onnx.save_model(model, path)
    return path


def initializer_bytes(model: onnx.ModelProto) -> int:
    """Bytes of a model's initializers, from their types (reads no data)."""
    return sum(math.prod(t.dims) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in model.graph.initializer)


# --------------------------------------------------------------------------- assembly and checking


def _fill_model(model: onnx.ModelProto, ctx: EmitContext, parameters_as_inputs: bool) -> None:
    """Write everything but parameter data into ``model``.

    With ``parameters_as_inputs`` the parameters become graph inputs of the
    same types instead of initializers: a model to check, without the data.
    """
    module, func = ctx.module, ctx.func
    opset_import = helper.make_opsetid("", ctx.opset)
    model.opset_import.append(opset_import)
    # IR version 10 is the first with metadata_props on nodes (where `loc` goes).
    model.ir_version = max(10, helper.find_min_ir_version_for([opset_import]))
    model.producer_name, model.producer_version = "transcode", _version()
    model.doc_string = f"TransCODE export of @{module.name}::@{func.name}"
    helper.set_model_props(model, {"transcode.module": module.name,
                                   "transcode.function": func.name})
    graph = model.graph
    graph.name = f"{module.name}.{func.name}"
    graph.doc_string = f"@{func.name} of IR module @{module.name}"
    graph.node.extend(ctx.nodes)
    graph.input.extend(ctx.inputs + (ctx.parameter_infos if parameters_as_inputs else []))
    graph.output.extend(ctx.outputs + ctx.extra_outputs)
    graph.value_info.extend(ctx.value_infos)
    graph.initializer.extend(ctx.initializers)


def check_without_data(ctx: EmitContext) -> None:
    """``onnx.checker.check_model(full_check=True)`` on the model minus its
    parameter data.

    The parameters become graph inputs of the same types, so strict shape
    inference sees exactly what it would see in the real model (parameters
    never determine shapes; the small constant initializers that do are kept).
    What is skipped is serialising and re-reading hundreds of megabytes, and
    the 2 GiB protobuf limit.  The parameter tensors themselves are made by
    :meth:`EmitContext.parameter` from arrays of the declared type and shape.
    """
    skeleton = onnx.ModelProto()
    _fill_model(skeleton, ctx, parameters_as_inputs=True)
    onnx.checker.check_model(skeleton, full_check=True)


# --------------------------------------------------------------------------- decomposition


def decomposition_of(op: Op) -> Any:
    """The callable that decomposes ``op`` into simpler ops, or None.

    Fused op definitions expose it as ``OpDef.decompose(builder, op) ->
    list[Value]``: it builds, with ``builder``, the ops that compute the
    fused op's results from its operands and returns the results.
    """
    try:
        opdef = get_opdef(op.name)
    except KeyError:
        return None
    return getattr(opdef, "decompose", None)


def emit_op(ctx: EmitContext, op: Op, inputs: list[str]) -> list[str]:
    """Emit one op through its emitter, or through its decomposition."""
    emitter = EMITTERS.get(op.name)
    if emitter is not None:
        return emitter(ctx, op, inputs)
    decompose = decomposition_of(op)
    if decompose is None:  # _check_exportable ran first; this is a nested op
        raise OnnxExportError(f"{ctx.where()}: its decomposition uses '{op.name}', which has "
                              f"no ONNX emitter")
    return _emit_decomposition(ctx, op, inputs, decompose)


def _emit_decomposition(ctx: EmitContext, op: Op, inputs: list[str], decompose: Any) -> list[str]:
    """Build the decomposition of ``op`` in a scratch function over the same
    module and emit its ops; all their nodes belong to ``op``."""
    scratch = Function(f"{op.name}.decomposition", [v.type for v in op.operands])
    scratch.module = ctx.module
    scratch.set_outputs([], [])
    results = decompose(Builder(scratch, loc=op.loc), _rebind(op, scratch.args))
    names: dict[int, str] = {id(arg): name for arg, name in zip(scratch.args, inputs)}
    for inner in scratch:
        if inner.name == "func.return":
            continue
        outs = emit_op(ctx, inner, [names[id(v)] for v in inner.operands])
        names.update((id(r), n) for r, n in zip(inner.results, outs))
    return [names[id(r)] for r in results]


def _rebind(op: Op, operands: list[Value]) -> Op:
    """A detached copy of ``op`` reading ``operands`` (for a decomposition)."""
    return Op(op.name, operands, [r.type for r in op.results], op.attributes, op.loc)


# --------------------------------------------------------------------------- helpers


def _check_exportable(func: Function) -> None:
    """Refuse up front, naming the first op kind that does not export."""
    for index, op in enumerate(func):
        if op.name in EMITTERS:
            continue
        where = op_position(func, index, op)
        if op.name in NOT_EXPORTABLE:
            raise OnnxExportError(f"cannot export @{func.name} to ONNX: {where} is not "
                                  f"exportable: {NOT_EXPORTABLE[op.name]}")
        if decomposition_of(op) is not None:
            continue
        raise OnnxExportError(
            f"cannot export @{func.name} to ONNX: {where} has no ONNX emitter and no "
            f"decomposition; supported op kinds: {', '.join(supported_op_kinds())}")


def _declare_inputs(ctx: EmitContext, func: Function) -> None:
    for i, arg in enumerate(func.args):
        name = arg.name or f"arg{i}"
        if ctx.is_used(name):
            raise OnnxExportError(f"cannot export @{func.name} to ONNX: two arguments are "
                                  f"named {name!r}")
        ctx.reserve(name)
        ctx.bind(arg, name)
        ctx.inputs.append(value_info(name, arg.type))


def _claim_output_names(ctx: EmitContext, func: Function) -> dict[int, str]:
    """Reserve the result names; map each returned op result (first
    occurrence) to the graph output name it will be written under."""
    outputs = func.outputs
    names = func.result_names if len(func.result_names) == len(outputs) else \
        [f"out{i}" for i in range(len(outputs))]
    claimed: dict[int, str] = {}
    for value, name in zip(outputs, names):
        if value.is_argument and ctx.name_of(value) == name:
            continue  # an argument returned under its own name: input and output coincide
        if ctx.is_used(name):
            raise OnnxExportError(
                f"cannot export @{func.name} to ONNX: result name {name!r} is used twice or "
                f"is also the name of an argument; ONNX needs distinct tensor names")
        ctx.reserve(name)
        if not value.is_argument:
            claimed.setdefault(id(value), name)
    ctx.result_names = list(names)
    return claimed


def _bind_result(ctx: EmitContext, result: Value, name: str, output_name: str | None,
                 default_name: str) -> None:
    """Give the tensor an op produced its final name and record its type.

    A tensor that a node of this op made is renamed to the graph output name
    (when the result is returned) or ``vN``.  A name the op merely passed
    through (an operand, an initializer) is reused, unless the result is a
    graph output, which then gets an Identity node.
    """
    if ctx.produced_by_current_op(name):
        final = output_name or ctx.fresh(default_name)
        ctx.rename(name, final)
        if output_name is None:
            ctx.value_infos.append(value_info(final, result.type))
    elif output_name is not None:
        ctx.nodes.append(helper.make_node("Identity", [name], [output_name]))
        final = output_name
    else:
        final = name
    ctx.bind(result, final)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("transcode")
    except Exception:  # not installed as a distribution
        return "0"
