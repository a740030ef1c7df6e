"""The state an emitter writes into while one IR function becomes one ONNX graph.

:class:`EmitContext` owns the graph under construction: its nodes, its
initializers (module parameters and the small constants that ONNX wants as
inputs, such as the shape of a ``Reshape``), the tensor names in use, and the
mapping from IR values to ONNX tensor names.  Emitters (see
:mod:`backends.onnx.emitters`) call :meth:`EmitContext.node` and
:meth:`EmitContext.constant` and return the names of their results; they never
pick final names themselves.  The exporter renames each op's results
afterwards, so that

* function arguments keep their names (graph inputs),
* function results carry the function's result names (graph outputs),
* every other IR result ``%N`` of the ``.tir`` text becomes tensor ``vN``,
* helper tensors inside a multi-node emission are called ``vN.<hint>``,
* every node is named after the op's ``loc`` (or its kind) and its position
  ``#index`` in the function, and carries the op kind and ``loc`` as
  ``metadata_props`` (``transcode.op``, ``transcode.loc``, ``transcode.index``)
  and in its ``doc_string``; annotations that passes put on the op
  (attributes with a dialect prefix, ``tile:x = 16``) become
  ``transcode.tile:x = "16"``.

The context imports onnx, so it is only loaded when an export runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from transcode_ir.core import Function, Module, Op, Value
from transcode_ir.errors import UserError
from transcode_ir.printer import format_attribute
from transcode_ir.types import TensorType, numpy_dtype

__all__ = ["EmitContext", "OnnxExportError", "onnx_element_type", "op_position"]


class OnnxExportError(UserError):
    """A module function that cannot become an ONNX model as asked."""


#: IR element type -> ONNX TensorProto element type.
_ELEMENT_TYPES: dict[str, int] = {
    "f16": TensorProto.FLOAT16,
    "f32": TensorProto.FLOAT,
    "f64": TensorProto.DOUBLE,
    "i8": TensorProto.INT8,
    "i32": TensorProto.INT32,
    "i64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
}


def onnx_element_type(dtype: str) -> int:
    """The ONNX ``TensorProto`` element type of an IR element type."""
    return _ELEMENT_TYPES[dtype]


def op_position(func: Function, index: int, op: Op) -> str:
    """Where an op sits, in the words the verifier uses."""
    loc = f' (loc "{op.loc}")' if op.loc else ""
    return f"in @{func.name}, op #{index} '{op.name}'{loc}"


def value_info(name: str, type: TensorType) -> onnx.ValueInfoProto:
    info = helper.make_tensor_value_info(name, onnx_element_type(type.dtype), list(type.shape))
    if type.encoding is not None:
        info.doc_string = (f"density {type.encoding.density:g} "
                           f"({type.encoding.source}) after DynaProp pruning")
    return info


class EmitContext:
    """One ONNX graph under construction.  See the module docstring."""

    def __init__(self, module: Module, func: Function, opset: int) -> None:
        self.module = module
        self.func = func
        self.opset = opset
        #: The model being built.  Parameter data goes straight into its graph
        #: (no intermediate protos: a BERT-Base is 440 MB); everything else is
        #: collected below and added by the exporter at the end.
        self.model = onnx.ModelProto()
        self.nodes: list[onnx.NodeProto] = []
        #: Small constant initializers (shapes, axes, scalars).
        self.initializers: list[onnx.TensorProto] = []
        #: The type of each parameter initializer, for checking without the data.
        self.parameter_infos: list[onnx.ValueInfoProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.extra_outputs: list[onnx.ValueInfoProto] = []
        self.value_infos: list[onnx.ValueInfoProto] = []
        self._used: set[str] = set()
        self._names: dict[int, str] = {}           # id(IR value) -> tensor name
        self._constants: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self._params: dict[str, str] = {}          # parameter name -> initializer name
        #: The graph output names of the function's results, in order.
        self.result_names: list[str] = []
        # Set by the exporter around each emitter call.
        self.op: Op | None = None
        self.op_index = -1
        self._op_prefix = "graph"
        self._op_first_node = 0

    # ------------------------------------------------------------------ names

    def reserve(self, name: str) -> str:
        """Claim ``name`` exactly; it is an error (a bug) if it is taken."""
        if name in self._used:
            raise ValueError(f"tensor name {name!r} is already in use")
        self._used.add(name)
        return name

    def is_used(self, name: str) -> bool:
        return name in self._used

    def fresh(self, hint: str) -> str:
        """A tensor name not used yet, ``hint`` itself when free."""
        name, n = hint, 0
        while name in self._used:
            n += 1
            name = f"{hint}_{n}"
        self._used.add(name)
        return name

    def name_of(self, value: Value) -> str:
        """The tensor name that holds an IR value (which must be emitted)."""
        return self._names[id(value)]

    def bind(self, value: Value, name: str) -> None:
        self._names[id(value)] = name

    def is_bound(self, value: Value) -> bool:
        return id(value) in self._names

    # ------------------------------------------------------------------ graph pieces

    def node(self, op_type: str, inputs: Sequence[str], num_outputs: int = 1,
             **attributes: Any) -> list[str]:
        """Append a node for the current op and return its fresh output names.

        An empty string in ``inputs`` is an omitted optional input.  Attributes
        whose value is None are left out.
        """
        hint = f"{self._current_hint()}.{op_type}"
        outputs = [self.fresh(hint) for _ in range(num_outputs)]
        attrs = {k: v for k, v in attributes.items() if v is not None}
        node = helper.make_node(op_type, list(inputs), outputs, **attrs)
        self.nodes.append(node)
        return outputs

    def node1(self, op_type: str, inputs: Sequence[str], **attributes: Any) -> str:
        """:meth:`node` for the common single-output case."""
        return self.node(op_type, inputs, 1, **attributes)[0]

    def constant(self, value: Any, dtype: str | None = None, hint: str = "const") -> str:
        """An initializer holding a small constant (shapes, axes, scalars).

        Equal constants share one initializer.  ``dtype`` is an IR element type.
        """
        array = np.asarray(value, dtype=numpy_dtype(dtype) if dtype else None)
        key = (str(array.dtype), tuple(array.shape), array.tobytes())
        if key in self._constants:
            return self._constants[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        self._constants[key] = name
        return name

    def ints(self, values: Sequence[int], hint: str = "const") -> str:
        """A 1-D int64 initializer (shapes, axes, starts, ...)."""
        return self.constant(np.asarray(list(values), dtype=np.int64).reshape(len(values)),
                             hint=hint)

    def scalar(self, value: float, dtype: str) -> str:
        """A rank-0 initializer of the given IR element type."""
        return self.constant(np.asarray(value, dtype=numpy_dtype(dtype)), hint="scalar")

    def parameter(self, name: str) -> str:
        """The initializer of module parameter ``name`` (created once)."""
        if name in self._params:
            return self._params[name]
        param = self.module.params.get(name)
        if param is None:
            raise OnnxExportError(f"{self.where()}: the module has no parameter {name!r}")
        if param.data is None:
            raise OnnxExportError(
                f"{self.where()}: parameter {name!r} has no data; load the module with its "
                ".npz (it is saved beside the .tir file) before exporting to ONNX")
        tensor_name = name if not self.is_used(name) else self.fresh(f"{name}.param")
        self._used.add(tensor_name)
        data = np.asarray(param.data, dtype=numpy_dtype(param.type.dtype).newbyteorder("<"),
                          order="C")
        tensor = self.model.graph.initializer.add()
        tensor.name = tensor_name
        tensor.data_type = onnx_element_type(param.type.dtype)
        tensor.dims.extend(data.shape)
        tensor.raw_data = data.tobytes()
        self.parameter_infos.append(value_info(tensor_name, param.type))
        self._params[name] = tensor_name
        return tensor_name

    def add_output(self, name: str, source: str, type: TensorType, *,
                   after_results: bool = False) -> None:
        """Make tensor ``source`` a graph output called ``name``, through an
        Identity node when the names differ.  ``name`` must already be claimed
        (:meth:`reserve` or :meth:`fresh`).  Outputs ``after_results`` follow
        the function's results in the graph's output list."""
        if source != name:
            self.nodes.append(helper.make_node("Identity", [source], [name]))
        (self.extra_outputs if after_results else self.outputs).append(value_info(name, type))

    # ------------------------------------------------------------------ per-op bookkeeping

    def begin_op(self, op: Op, index: int, prefix: str) -> None:
        """Start emitting ``op`` (op #``index``); helper tensors are named
        ``<prefix>.<OpType>``."""
        self.op, self.op_index, self._op_prefix = op, index, prefix
        self._op_first_node = len(self.nodes)

    def op_nodes(self) -> list[onnx.NodeProto]:
        """The nodes emitted for the current op so far."""
        return self.nodes[self._op_first_node:]

    def produced_by_current_op(self, name: str) -> bool:
        return any(name in node.output for node in self.op_nodes())

    def rename(self, old: str, new: str) -> None:
        """Rename a tensor made by the current op (inputs and outputs of its nodes)."""
        for node in self.op_nodes():
            for i, out in enumerate(node.output):
                if out == old:
                    node.output[i] = new
            for i, inp in enumerate(node.input):
                if inp == old:
                    node.input[i] = new
        self._used.discard(old)
        self._used.add(new)

    def finish_op(self) -> None:
        """Name the current op's nodes and attach its kind and ``loc``."""
        op, index = self.op, self.op_index
        assert op is not None
        base = f"{op.loc or op.name}#{index}"
        nodes = self.op_nodes()
        # Facts that passes recorded (``tile:x``, ``elector:module``, ...), in their text form.
        annotations = {f"transcode.{key}": format_attribute(value)
                       for key, value in op.attributes.items() if ":" in key}
        for k, node in enumerate(nodes):
            node.name = base if len(nodes) == 1 else f"{base}/{k}.{node.op_type}"
            node.doc_string = f"{op.name} (op #{index} of @{self.func.name})" + (
                f' loc("{op.loc}")' if op.loc else "")
            props = {"transcode.op": op.name, "transcode.index": str(index)}
            if op.loc:
                props["transcode.loc"] = op.loc
            props.update(annotations)
            for key, value in props.items():
                entry = node.metadata_props.add()
                entry.key, entry.value = key, value
        self.op = None

    def _current_hint(self) -> str:
        return self._op_prefix if self.op is not None else "graph"

    def where(self) -> str:
        """The current op's position, for error messages."""
        if self.op is None:
            return f"in @{self.func.name}"
        return op_position(self.func, self.op_index, self.op)
