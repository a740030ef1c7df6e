"""The ONNX importer: an ONNX model in, a :class:`~transcode_ir.Module` out.

How a model is imported
=======================

1. **Load and check.**  The file is memory-mapped and its weights become
   read-only arrays viewing it (:mod:`frontends.onnx.reader`), so a 440 MB
   model is not copied.  A missing file, a file that is not ONNX (or is cut
   short), and a model that fails ``onnx.checker`` are each a
   :class:`~transcode_ir.errors.UserError` that says so.  Local functions are
   inlined.  Opsets 10 to 23 of the default domain are accepted (13–20 are
   tested with both torch exporters).
2. **Bind shapes.**  Symbolic input dimensions get sizes
   (:mod:`frontends.onnx.shapes`: ``input_shapes``, then defaults batch → 1,
   sequence → 128), so that every IR value has a static shape.
3. **Walk the nodes in order**, keeping for each ONNX value either a numpy
   array (known at import time) or an IR value:

   * ``Constant`` nodes and initializers are known arrays.
   * A node whose inputs are all known is *folded*: evaluated with numpy
     (:mod:`frontends.onnx.folding`; broadcast arrays stay broadcast views,
     and an elementwise fold of more than :data:`LARGE_FOLD_LIMIT` elements
     is lowered instead, so nothing of the batch's size is materialised).
     ``Shape`` and ``Size`` of an IR value fold too, since its shape is static.
     So every shape computation (Shape → Gather → Unsqueeze → Concat →
     Reshape, Range, ConstantOfShape, Equal/Where on constants, Cast, ...)
     disappears and its result is a constant.
   * Trainable weights are never folded into computations (autodiff needs them
     as parameters): a node that computes with a weight is lowered, except for
     pure layout changes of a weight (Transpose, Reshape, Squeeze, Unsqueeze,
     Flatten), which fold into a parameter holding the rearranged weight.
   * Every other node is *lowered* to IR ops by the rule for its op type
     (:mod:`frontends.onnx.lowering`).  ``Identity`` and inference
     ``Dropout`` are aliases and produce nothing.
   * With ``recognize_gelu`` (the default), the exact-GELU subgraph that both
     torch exporters write below opset 20 (``x * 0.5 * (1 + erf(x / √2))``, any
     association) becomes one ``nn.gelu``.

4. **Known arrays used by IR ops become IR values** at their first use:

   * arrays of at most :data:`SMALL_CONSTANT_LIMIT` (64) elements that are not
     weights become ``tensor.constant`` ops;
   * everything else becomes a module parameter read by ``tensor.param``.  Its
     kind is ``"weight"`` for a trainable weight (a float initializer, unless
     the exporter marks it as a buffer or constant or says it folded it from
     buffers only, or a layout change of one)
     and ``"constant"`` for everything else (integer initializers, single-element
     initializers, which exporters write for literals like 0.5 or √d, buffers,
     ``Constant`` nodes, folded results such as position ids or DFT matrices).

5. **Names.**  Function arguments and results keep the ONNX input and output
   names.  Every op's ``loc`` is the torch module path of its node
   (:mod:`frontends.onnx.names`).  Parameters keep their initializer names;
   names an exporter made up (``onnx::MatMul_273``, ``val_33``) are replaced by
   ``<module path of the first user>.weight`` (``.weight_transposed`` when a
   torch exporter folded the transpose of a Linear weight into a MatMul
   operand, as ``frontends.export`` names them), or ``.constant`` for
   constants.  A weight whose transpose is folded at import (``Gemm`` with
   ``transB=1``) is called ``<initializer>_transposed``.  Name clashes get
   ``_1``, ``_2``, ...  Linear weights therefore always appear in the IR in
   the layout of the matrix product, ``[in, out]``.

6. Ops whose results are never used are removed; the module is returned
   unverified (call :func:`transcode_ir.verify_module`; ``tcc import`` does).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frontends.onnx import folding
from frontends.onnx.names import is_generated_name, source_location
from frontends.onnx.patterns import find_gelu_patterns
from frontends.onnx.shapes import InputSignature, bind_input_shapes, onnx_dims
from transcode_ir.core import Builder, DenseAttr, Function, Module, Value
from transcode_ir.errors import UserError
from transcode_ir.opdefs import ShapeError
from transcode_ir.types import TensorType, dtype_of_numpy

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__all__ = [
    "MAX_OPSET",
    "MIN_OPSET",
    "SMALL_CONSTANT_LIMIT",
    "OnnxImportError",
    "import_onnx",
    "load_onnx_model",
]

#: Known arrays with at most this many elements become ``tensor.constant`` ops.
SMALL_CONSTANT_LIMIT = 64
#: An elementwise node on known inputs whose folding would compute more elements
#: than this (an index grid ``b * seq + kv`` at batch 10^6) is lowered instead:
#: the IR computes it from the small inputs at run time.
LARGE_FOLD_LIMIT = 1 << 20
#: Accepted opsets of the default ONNX domain.
MIN_OPSET, MAX_OPSET = 10, 23

# Ops that only rearrange their first input: folding them keeps a weight a weight.
_LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
                         "Identity", "Dropout"})
_ALIAS_OPS = frozenset({"Identity", "Dropout"})
# Folded results of these ops are pieces of their (first) input and keep its name.
_DATA_MOVEMENT_OPS = _LAYOUT_OPS | {"Slice", "Gather", "Cast", "CastLike", "Expand", "Concat",
                                    "Split", "Tile"}
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Exporter markings of initializers (dynamo writes them on the value_info and the graph).
_INPUT_SPEC_KIND = "pkg.torch.export.graph_signature.InputSpec.kind"
_FOLDED_FROM = "pkg.onnxscript.optimizer.folded_from"
_GRAPH_SIGNATURE = "pkg.torch.export.ExportedProgram.graph_signature"
_SIGNATURE_ENTRY = re.compile(r"^\s*\w+: (\w+) target='([^']*)'", re.MULTILINE)


class OnnxImportError(UserError):
    """An ONNX model the importer cannot turn into IR."""


# --------------------------------------------------------------------------- loading


def load_onnx_model(path_or_model: Any, copy_weights: bool = False
                    ) -> tuple[onnx.ModelProto, str, dict[str, np.ndarray]]:
    """Read and check a model.

    Returns the model, a label for messages (the path) and the weights that
    :mod:`frontends.onnx.reader` mapped from the file instead of parsing
    (their initializers in the model are external-data references).
    """
    import onnx

    from frontends.onnx.reader import WireFormatError, read_onnx_file

    arrays: dict[str, np.ndarray] = {}
    checker_input: Any = None
    if isinstance(path_or_model, onnx.ModelProto):
        model, label = path_or_model, "<model>"
    elif isinstance(path_or_model, (str, os.PathLike)):
        path = Path(path_or_model)
        label = str(path)
        if not path.exists():
            raise OnnxImportError(f"{label}: no such file")
        if path.is_dir():
            raise OnnxImportError(f"{label}: is a directory, not an ONNX file")
        if path.stat().st_size == 0:
            raise OnnxImportError(f"{label}: the file is empty, not an ONNX model")
        try:
            mapped = read_onnx_file(path, copy_weights)
            model, arrays = mapped.model, mapped.arrays
            checker_input = mapped.checker_bytes or None
        except (WireFormatError, UnicodeDecodeError, ValueError):
            # Not the protobuf we expected: let onnx parse it, for its verdict.
            model = _parse_with_onnx(path, label)
        except OSError as err:
            raise OnnxImportError(f"{label}: cannot read the model or its external data: "
                                  f"{_one_line(err)}") from None
    else:
        raise OnnxImportError(f"expected a path to an .onnx file or an onnx.ModelProto, got "
                              f"{type(path_or_model).__name__}")
    if not model.HasField("graph") or not model.opset_import or model.ir_version <= 0:
        raise OnnxImportError(
            f"{label}: not an ONNX model, or a truncated one (it has no "
            f"{'graph' if not model.HasField('graph') else 'opset or IR version'}); "
            "expected a file written by onnx.save or torch.onnx.export")
    try:
        onnx.checker.check_model(checker_input if checker_input is not None else model)
    except Exception as err:  # noqa: BLE001 - onnx.checker.ValidationError and friends
        raise OnnxImportError(f"{label}: the model fails onnx.checker: {_one_line(err)}") from None
    if model.functions:
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    return model, label, arrays


def _parse_with_onnx(path: Path, label: str) -> onnx.ModelProto:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError, external-data errors
        raise OnnxImportError(
            f"{label}: not an ONNX model, or a truncated or corrupt one (reading it as an "
            f"ONNX protobuf failed: {_one_line(err)})") from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    text = text.replace("==> Context:", "; context:")
    return text[:600] + ("..." if len(text) > 600 else "") if text else type(err).__name__


# --------------------------------------------------------------------------- attributes


def node_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (tensors as numpy arrays)."""
    if not node.attribute:
        return {}
    from onnx import numpy_helper

    out: dict[str, Any] = {}
    for attr in node.attribute:
        kind = attr.type
        if kind == _ATTRIBUTE_INT:
            out[attr.name] = int(attr.i)
        elif kind == _ATTRIBUTE_FLOAT:
            out[attr.name] = float(attr.f)
        elif kind == _ATTRIBUTE_INTS:
            out[attr.name] = [int(v) for v in attr.ints]
        elif kind == _ATTRIBUTE_FLOATS:
            out[attr.name] = [float(v) for v in attr.floats]
        elif kind == _ATTRIBUTE_STRING:
            out[attr.name] = attr.s.decode("utf-8", "replace")
        elif kind == _ATTRIBUTE_STRINGS:
            out[attr.name] = [s.decode("utf-8", "replace") for s in attr.strings]
        elif kind == _ATTRIBUTE_TENSOR:
            out[attr.name] = numpy_helper.to_array(attr.t)
        else:
            out[attr.name] = attr
    return out


# onnx.AttributeProto.AttributeType values (fixed by the ONNX standard).
_ATTRIBUTE_FLOAT, _ATTRIBUTE_INT, _ATTRIBUTE_STRING, _ATTRIBUTE_TENSOR = 1, 2, 3, 4
_ATTRIBUTE_FLOATS, _ATTRIBUTE_INTS, _ATTRIBUTE_STRINGS = 6, 7, 8


def _constant_node_value(node: onnx.NodeProto, attrs: dict[str, Any]) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    raise OnnxImportError(
        f"Constant node {node.name!r} holds a {', '.join(attrs) or 'missing'} value; the importer "
        "reads value, value_float(s) and value_int(s) (string and sparse constants have no IR type)")


# --------------------------------------------------------------------------- the importer


def import_onnx(
    path_or_model: Any,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    name: str | None = None,
    *,
    recognize_gelu: bool = True,
    copy_weights: bool = False,
) -> Module:
    """Import an ONNX model (a path or an ``onnx.ModelProto``) as a Module with
    a ``forward`` function.  See the module docstring for what happens.

    ``input_shapes`` binds input shapes, e.g. ``{"input_ids": (4, 128)}``;
    unbound symbolic dimensions get defaults (batch 1, sequence 128).  ``name``
    is the module name (default: the file name without extension).

    Weights read from a file are read-only arrays that view the file
    (:mod:`frontends.onnx.reader`); ``copy_weights=True`` copies them into
    memory instead, so the file may be overwritten while the module lives.
    """
    model, label, arrays = load_onnx_model(path_or_model, copy_weights)
    if name is None:
        if isinstance(path_or_model, (str, os.PathLike)):
            name = Path(path_or_model).stem
        else:
            name = model.graph.name or "model"
    return _Importer(model, label, name, input_shapes, recognize_gelu, arrays).run()


class _Importer:
    def __init__(self, model: onnx.ModelProto, label: str, name: str,
                 input_shapes: Mapping[str, Sequence[int]] | None, recognize_gelu: bool,
                 arrays: Mapping[str, np.ndarray] | None = None) -> None:
        self.model = model
        self.graph = model.graph
        self.label = label
        self.name = name
        self.input_shapes = input_shapes
        self.recognize_gelu = recognize_gelu
        self.opset = self._default_opset()
        self.from_torch = model.producer_name == "pytorch"
        # What is known about each ONNX value name:
        self.constants: dict[str, np.ndarray] = {}      # arrays known at import time
        self.initializers: dict[str, Any] = {}          # TensorProtos not yet converted
        self.mapped_arrays = dict(arrays or {})         # initializers mapped from the file
        self.values: dict[str, Value] = {}              # IR values (dynamic or materialised)
        # A known array that is (a layout change of) a trainable weight:
        # value name -> (initializer name, suffix for the parameter name).
        self.weight_sources: dict[str, tuple[str, str]] = {}
        # A known array that is not a weight: value name -> the tensor it came from.
        self.constant_sources: dict[str, str] = {}
        # Initializers the exporter folded: name -> the initializers they came from.
        self.folded_sources: dict[str, list[str]] = {}
        self.exporter_kinds: dict[str, str] = {}
        self.reserved_names: set[str] = set()
        # Weights already materialised, by identity (see _weight_key).
        self._weight_values: dict[tuple[str, ...], list[tuple[np.ndarray, Value]]] = {}
        self.module = Module(name)
        self.function: Function | None = None
        self.builder: Builder | None = None
        self.node: onnx.NodeProto | None = None
        self._loc_node: onnx.NodeProto | None = None
        self._loc: str | None = None

    # -- setup
    def _default_opset(self) -> int:
        versions = [o.version for o in self.model.opset_import if o.domain in _DEFAULT_DOMAINS]
        if not versions:
            raise OnnxImportError(f"{self.label}: the model imports no opset of the default ONNX "
                                  "domain")
        opset = int(versions[0])
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise OnnxImportError(f"{self.label}: opset {opset} is not supported; the importer "
                                  f"reads opsets {MIN_OPSET} to {MAX_OPSET} (re-export with "
                                  "opset_version=17 or 18)")
        return opset

    def _register_initializers(self) -> None:
        kinds, folded_from = self._exporter_markings()
        self.exporter_kinds = kinds
        for init in self.graph.initializer:
            self.initializers[init.name] = init
            if not is_generated_name(init.name) and init.name not in folded_from:
                self.reserved_names.add(init.name)
            sources = folded_from.get(init.name)
            if sources is not None:
                # Folded by the exporter.  From a parameter and used as the weight
                # of a matrix product (a transposed Linear weight): a weight.  Any
                # other fold of parameters (a token-type embedding looked up at
                # export time) is a constant: it is no longer the torch parameter.
                self.folded_sources[init.name] = sources
                source_kinds = {kinds.get(source) for source in sources}
                from_parameter = "PARAMETER" in source_kinds or None in source_kinds
                marked = "PARAMETER" if from_parameter and self._used_as_weight(init.name) \
                    else "BUFFER"
            else:
                marked = kinds.get(init.name, "PARAMETER")
            is_float = init.data_type in (1, 10, 11, 16)  # float, float16, double, bfloat16
            is_scalar = all(d == 1 for d in init.dims)  # exporters' folded literals
            if is_float and not is_scalar and marked == "PARAMETER":
                self.weight_sources[init.name] = (init.name, "")
            else:
                self.constant_sources[init.name] = init.name

    def _find_tied_tables(self) -> dict[str, tuple[str, Any]]:
        """Embedding tables whose transpose is also a weight of a matrix product:
        a tied LM head (GPT-2, Qwen2), which both exporters write twice (the
        table for the Gather, its folded transpose for the MatMul).  Table name
        -> (name of the transposed copy, the MatMul node reading it)."""
        tables: dict[str, tuple[int, ...]] = {}
        for node in self.graph.node:
            if node.op_type == "Gather" and node.input and node.input[0] in self.weight_sources \
                    and node.input[0] in self.initializers:
                axis = node_attributes(node).get("axis", 0)
                dims = tuple(self.initializers[node.input[0]].dims)
                if axis == 0 and len(dims) == 2 and dims[0] != dims[1]:
                    tables[node.input[0]] = dims
        if not tables:
            return {}
        wanted = {(dims[1], dims[0]): name for name, dims in tables.items()}
        tied: dict[str, tuple[str, Any]] = {}
        transposed = {node.output[0]: node.input[0] for node in self.graph.node
                      if node.op_type == "Transpose" and node.input[0] in tables
                      and node_attributes(node).get("perm", [1, 0]) == [1, 0]}
        for node in self.graph.node:
            if node.op_type != "MatMul" or len(node.input) != 2:
                continue
            name = node.input[1]
            table = transposed.get(name)
            if table is not None and table not in tied:
                # Transpose(table) not folded by the exporter: fold it now, as the walk would.
                self.constants[name] = np.ascontiguousarray(self.known(table).T)
                self.weight_sources[name] = (table, "_transposed")
                tied[table] = (name, node)
                continue
            if name not in self.initializers or name not in self.weight_sources:
                continue
            table = wanted.get(tuple(self.initializers[name].dims))
            if table is None or table in tied or name == table:
                continue
            a, b = self.known(table), self.known(name)
            if a.dtype == b.dtype and np.array_equal(a[:4, :4].T, b[:4, :4]) \
                    and np.array_equal(a.T, b):
                tied[table] = (name, node)
        return tied

    def _used_as_weight(self, name: str) -> bool:
        """True if every use of ``name`` is the weight operand of MatMul, Gemm or Conv."""
        uses = [(node.op_type, index) for node in self.graph.node
                for index, input_name in enumerate(node.input) if input_name == name]
        return bool(uses) and all(
            (op_type in ("MatMul", "Gemm") and index == 1) or (op_type == "Conv" and index >= 1)
            for op_type, index in uses)

    def _exporter_markings(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """What the dynamo exporter says about initializers: the kind of each
        (PARAMETER, BUFFER, CONSTANT_TENSOR, from the value_info metadata and the
        exported program's graph signature) and, for tensors its optimizer
        folded, the initializers they were folded from."""
        kinds: dict[str, str] = {}
        folded_from: dict[str, list[str]] = {}
        for prop in self.graph.metadata_props:
            if prop.key == _GRAPH_SIGNATURE:
                for kind, target in _SIGNATURE_ENTRY.findall(prop.value):
                    kinds[target] = kind
        for info in self.graph.value_info:
            for prop in info.metadata_props:
                if prop.key == _INPUT_SPEC_KIND:
                    kinds[info.name] = prop.value
                elif prop.key == _FOLDED_FROM:
                    try:
                        sources = ast.literal_eval(prop.value)
                    except (ValueError, SyntaxError):
                        continue
                    if isinstance(sources, list) and all(isinstance(x, str) for x in sources):
                        folded_from[info.name] = sources
        return kinds, folded_from

    def _signatures(self) -> list[InputSignature]:
        signatures = []
        for graph_input in self.graph.input:
            if graph_input.name in self.initializers:
                continue  # an initializer listed as an input (IR version < 4)
            tensor_type = graph_input.type.tensor_type
            if not graph_input.type.HasField("tensor_type"):
                raise OnnxImportError(f"{self.label}: input {graph_input.name!r} is not a tensor; "
                                      "the importer reads tensor inputs only")
            if not tensor_type.HasField("shape"):
                raise OnnxImportError(f"{self.label}: input {graph_input.name!r} has no shape "
                                      "(not even a rank); re-export with shapes")
            signatures.append(InputSignature(graph_input.name, onnx_dims(tensor_type.shape)))
        return signatures

    def _ir_dtype(self, elem_type: int, what: str) -> str:
        try:
            return dtype_of_numpy(folding.numpy_dtype_of_onnx(elem_type))
        except (ValueError, folding.FoldingError):
            from onnx import helper

            try:
                type_name = helper.tensor_dtype_to_string(elem_type)
            except (KeyError, ValueError):
                type_name = str(elem_type)
            raise OnnxImportError(
                f"{what} has element type {type_name}, which the IR does not have (it has "
                "float16, float32, float64, int8, int32, int64 and bool)") from None

    # -- the walk
    def run(self) -> Module:
        from frontends.onnx.lowering import LOWERINGS, lower_gelu

        self._register_initializers()
        self.tied_tables = self._find_tied_tables()
        self.used_names = {i for n in self.graph.node for i in n.input}
        self.used_names.update(o.name for o in self.graph.output)
        signatures = self._signatures()
        shapes, symbols = bind_input_shapes(signatures, self.input_shapes)
        arg_types = []
        for graph_input in self.graph.input:
            if graph_input.name in self.initializers:
                continue
            dtype = self._ir_dtype(graph_input.type.tensor_type.elem_type,
                                   f"input {graph_input.name!r}")
            arg_types.append(TensorType(shapes[graph_input.name], dtype))
        names = [s.name for s in signatures]
        attributes: dict[str, Any] = {"onnx:opset": self.opset}
        if self.model.producer_name:
            attributes["onnx:producer"] = " ".join(
                p for p in (self.model.producer_name, self.model.producer_version) if p)
        if symbols:
            attributes["onnx:dims"] = tuple(f"{k}={v}" for k, v in symbols.items())
        self.module = Module(self.name, attributes)
        function = Function("forward", arg_types, names,
                            [o.name for o in self.graph.output])
        self.module.add_function(function)
        self.function = function
        self.builder = Builder(function)
        for arg in function.args:
            self.values[arg.name] = arg

        gelu_roots: dict[int, Any] = {}
        skipped: set[int] = set()
        if self.recognize_gelu:
            self.constant_nodes = {n.output[0]: n for n in self.graph.node
                                   if n.op_type == "Constant" and n.domain in _DEFAULT_DOMAINS}
            for pattern in find_gelu_patterns(self.graph, self._static_constant):
                gelu_roots[id(pattern.root)] = pattern
                skipped.update(id(n) for n in pattern.nodes if n is not pattern.root)

        for node in self.graph.node:
            if id(node) in skipped:
                continue
            self.node = node
            if node.domain not in _DEFAULT_DOMAINS:
                raise self._unsupported(node, LOWERINGS)
            op_type = node.op_type
            attrs = node_attributes(node)
            if op_type == "Constant":
                self._set_constant(node.output[0], _constant_node_value(node, attrs),
                                   source=node.output[0])
                continue
            pattern = gelu_roots.get(id(node))
            if pattern is not None:
                self._lower(node, attrs, lambda ctx, found=pattern: lower_gelu(
                    ctx, found.x, found.approximate))
                continue
            if op_type in _ALIAS_OPS:
                self._alias(node, attrs)
                continue
            if op_type in ("Shape", "Size") and node.input[0] in self.values \
                    and node.input[0] not in self.constants:
                shape = self.values[node.input[0]].type.shape
                result = (folding.shape_of(shape, attrs) if op_type == "Shape"
                          else np.array(int(np.prod(shape)), dtype=np.int64))
                self._set_constant(node.output[0], result, source=None)
                continue
            if self._inputs_known(node) and self._may_fold(node) and _foldable(op_type) \
                    and not self._too_large_to_fold(node, LOWERINGS):
                self._fold(node, attrs)
                continue
            rule = LOWERINGS.get(op_type)
            if rule is None:
                if _foldable(op_type):
                    dynamic = [i for i in node.input if i and not self._is_known(i)]
                    raise OnnxImportError(
                        f"{self._where(node)}: {op_type} is supported only when its inputs are "
                        f"known at import time, but {', '.join(map(repr, dynamic))} depends on "
                        "the model's inputs; the IR has no op for it")
                raise self._unsupported(node, LOWERINGS)
            self._lower(node, attrs, rule)

        self.node = None
        self.builder.loc = None
        outputs = [self.materialize(o.name, None, None) for o in self.graph.output]
        function.set_outputs(outputs, [o.name for o in self.graph.output])
        self._check_outputs(outputs)
        self._remove_dead_ops()
        return self.module

    @property
    def loc(self) -> str | None:
        """The source location of the node being imported (computed once per node)."""
        if self._loc_node is not self.node:
            self._loc = source_location(self.node) if self.node is not None else None
            self._loc_node = self.node
        return self._loc

    # -- known values
    def _is_known(self, name: str) -> bool:
        return name in self.constants or name in self.initializers

    def known(self, name: str) -> np.ndarray:
        array = self.constants.get(name)
        if array is None:
            proto = self.initializers.pop(name)
            array = self.mapped_arrays.pop(name, None)
            if array is None:
                from onnx import numpy_helper

                array = numpy_helper.to_array(proto)
            self.constants[name] = array
        return array

    def _static_constant(self, name: str) -> np.ndarray | None:
        """A value known without folding (initializer or Constant node), for patterns."""
        if self._is_known(name):
            return self.known(name)
        node = self.constant_nodes.get(name)
        if node is not None:
            try:
                return _constant_node_value(node, node_attributes(node))
            except OnnxImportError:
                return None
        return None

    def _set_constant(self, name: str, array: np.ndarray, source: str | None) -> None:
        if not name:
            return
        self.constants[name] = np.asarray(array)
        if source is not None:
            self.constant_sources[name] = source

    def _inputs_known(self, node: onnx.NodeProto) -> bool:
        return all(not i or self._is_known(i) for i in node.input)

    def _may_fold(self, node: onnx.NodeProto) -> bool:
        weight_inputs = [i for i in node.input if i in self.weight_sources]
        if not weight_inputs:
            return True
        return node.op_type in _LAYOUT_OPS and weight_inputs == [node.input[0]] \
            and list(node.input).count(node.input[0]) == 1

    def _too_large_to_fold(self, node: onnx.NodeProto, lowerings: Mapping[str, Any]) -> bool:
        if node.op_type not in folding.ELEMENTWISE or node.op_type not in lowerings:
            return False
        inputs = [self.known(i) if i else None for i in node.input]
        return folding.fold_size(inputs) > LARGE_FOLD_LIMIT

    def _fold(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        inputs = [self.known(i) if i else None for i in node.input]
        op_type = node.op_type
        try:
            if op_type == "Split":
                split = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
                results = folding.fold_split(inputs[0], None if split is None else
                                             [int(v) for v in split.reshape(-1)],
                                             attrs, len(node.output))
            else:
                with np.errstate(all="ignore"):
                    results = folding.FOLDERS[op_type](inputs, attrs, self.opset)
        except folding.FoldingError as err:
            raise OnnxImportError(f"{self._where(node)}: {err}") from None
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - numpy errors on malformed inputs, reported
            raise OnnxImportError(f"{self._where(node)}: cannot evaluate {op_type} on its constant "
                                  f"inputs: {_one_line(err)}") from None
        data = node.input[0] if node.input else ""
        weight = self.weight_sources.get(data) if data else None
        for output, result in zip(node.output, results):
            if not output:
                continue
            self.constants[output] = np.asarray(result)
            if weight is not None:
                root, suffix = weight
                if op_type == "Transpose" and not _is_identity_perm(attrs.get("perm"), result.ndim):
                    suffix += "_transposed"
                self.weight_sources[output] = (root, suffix)
            else:
                source = self._largest_source(node)
                if source is not None:
                    self.constant_sources[output] = source

    def _largest_source(self, node: onnx.NodeProto) -> str | None:
        """The tensor a folded result is a piece of, if it moves data only
        (a slice of a DFT matrix keeps the matrix's name); None otherwise."""
        if node.op_type not in _DATA_MOVEMENT_OPS:
            return None
        best, best_size = None, -1
        for name in node.input[:1] if node.op_type != "Concat" else node.input:
            if name and name in self.constant_sources:
                size = self.known(name).size
                if size > best_size:
                    best, best_size = self.constant_sources[name], size
        return best

    def _alias(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        source = node.input[0]
        if node.op_type == "Dropout":
            training = node.input[2] if len(node.input) > 2 and node.input[2] else None
            if training is not None and (not self._is_known(training)
                                         or bool(np.asarray(self.known(training)).reshape(-1)[0])):
                raise OnnxImportError(f"{self._where(node)}: Dropout in training mode is not "
                                      "supported; export the model in eval mode")
        if self._is_known(source):
            self.constants[node.output[0]] = self.known(source)
            for table in (self.weight_sources, self.constant_sources):
                if source in table:
                    table[node.output[0]] = table[source]
        else:
            self.values[node.output[0]] = self._dynamic(source, node)
        if len(node.output) > 1 and node.output[1]:  # Dropout's mask: all true in inference
            shape = self.known(source).shape if self._is_known(source) else \
                self.values[source].type.shape
            self._set_constant(node.output[1], np.ones(shape, dtype=bool), source=None)

    def _dynamic(self, name: str, node: onnx.NodeProto) -> Value:
        value = self.values.get(name)
        if value is None:
            raise OnnxImportError(f"{self._where(node)}: input {name!r} is not defined before it "
                                  "is used (the graph is not in topological order)")
        return value

    # -- lowering
    def _lower(self, node: onnx.NodeProto, attrs: dict[str, Any], rule: Any) -> None:
        from frontends.onnx.lowering import LoweringError, NodeContext

        ctx = NodeContext(self, node, attrs)
        self.builder.loc = self.loc
        try:
            rule(ctx)
        except (LoweringError, ShapeError, folding.FoldingError) as err:
            raise OnnxImportError(f"{self._where(node)}: {err}") from None
        except (ValueError, TypeError, IndexError, ArithmeticError) as err:
            # A malformed node that no lowering rule checked for (found by the
            # ONNX fuzzer of tests/hardening, issue 13: a LayerNormalization
            # whose scale does not broadcast): one error naming the node.
            first = str(err).splitlines()[0] if str(err) else ""
            raise OnnxImportError(f"{self._where(node)}: cannot be imported: its inputs or "
                                  f"attributes are inconsistent ({type(err).__name__}: "
                                  f"{first[:200]})") from None
        for index, output in enumerate(node.output):
            if output and output not in self.values and output not in self.constants \
                    and self._output_used(output):
                raise OnnxImportError(f"{self._where(node)}: output {index} ({output!r}) is used "
                                      f"but the importer does not produce it for {node.op_type}")

    def _output_used(self, name: str) -> bool:
        return name in self.used_names

    # -- materialising known arrays as IR values
    def materialize(self, name: str, consumer_op: str | None, operand_index: int | None) -> Value:
        """The IR value of an ONNX value, creating a constant or parameter read
        at the current position if it is a known array."""
        value = self.values.get(name)
        if value is not None:
            return value
        if not self._is_known(name):
            where = self._where(self.node) if self.node is not None else self.label
            raise OnnxImportError(f"{where}: value {name!r} is not defined (not an input, "
                                  "initializer or node output)")
        array = self.known(name)
        weight = self.weight_sources.get(name)
        if weight is not None:
            value = self._shared_weight(name, weight, array)
            if value is None:
                param_name, kind = self._parameter_name(name, weight, consumer_op, operand_index)
                value = self.emit_parameter(param_name, array, kind)
                self._weight_values.setdefault(self._weight_key(name, weight), []).append(
                    (array, value))
        elif array.size > SMALL_CONSTANT_LIMIT and folding.is_broadcast(array):
            # A repeated array (a mask or ids expanded to the batch): its compact
            # form, broadcast by the IR (never materialised at import).
            core = np.ascontiguousarray(folding.compact(array))
            if core.size <= SMALL_CONSTANT_LIMIT:
                base = self.emit_constant(core)
            else:
                param_name, kind = self._parameter_name(name, None, consumer_op, operand_index)
                base = self.emit_parameter(param_name, core, kind)
            value = self.builder.create("tensor.expand", (base,),
                                        {"shape": tuple(int(d) for d in array.shape)}).result
        elif array.size <= SMALL_CONSTANT_LIMIT:
            value = self.emit_constant(array)
        else:
            param_name, kind = self._parameter_name(name, weight, consumer_op, operand_index)
            value = self.emit_parameter(param_name, array, kind)
        self.values[name] = value
        return value

    def materialize_for(self, name: str, node: onnx.NodeProto, consumer_op: str,
                        operand_index: int) -> Value:
        """:meth:`materialize` as if for ``node`` (a later node: its module path
        names the parameter), at the current position."""
        current = self.node
        self.node = node
        try:
            return self.materialize(name, consumer_op, operand_index)
        finally:
            self.node = current

    def _weight_key(self, name: str, weight: tuple[str, str]) -> tuple[str, ...]:
        """What identifies a weight whatever ONNX name it has: its initializer
        and layout suffix; for a tensor the exporter folded from one parameter
        (dynamo writes a transposed Linear weight once per use), that parameter."""
        root, suffix = weight
        sources = self.folded_sources.get(root)
        if sources is not None:
            named = [source for source in sources if source in self.exporter_kinds]
            if len(named) == 1 and len(sources) == 1:
                return ("folded", named[0], suffix)
        return ("initializer", root, suffix)

    def _shared_weight(self, name: str, weight: tuple[str, str], array: np.ndarray) -> Value | None:
        """The IR value of a weight already read under another ONNX name (a
        torch parameter used by several layers, as ALBERT shares its layer:
        TorchScript reads it through Identity copies, dynamo writes one folded
        copy per use).  One parameter, so training updates it once."""
        for seen, value in self._weight_values.get(self._weight_key(name, weight), ()):
            if seen is array or (seen.shape == array.shape and seen.dtype == array.dtype
                                 and np.array_equal(seen, array)):
                return value
        return None

    def emit_constant(self, array: np.ndarray) -> Value:
        self._array_dtype(array)
        return self.builder.create("tensor.constant", (),
                                   {"value": DenseAttr.from_array(array)}).result

    def emit_parameter(self, name: str, array: np.ndarray, kind: str) -> Value:
        self._array_dtype(array)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        param = self.module.add_param(name, array, kind=kind)
        return self.builder.create("tensor.param", (), {"name": name}, [param.type]).result

    def new_constant(self, array: np.ndarray, base_name: str = "constant") -> Value:
        """An IR value for an array computed by a lowering rule (a broadcast
        array: its compact form and a ``tensor.expand``)."""
        if array.size <= SMALL_CONSTANT_LIMIT:
            return self.emit_constant(array)
        core = folding.compact(array) if folding.is_broadcast(array) else array
        if core.size <= SMALL_CONSTANT_LIMIT:
            value = self.emit_constant(np.ascontiguousarray(core))
        else:
            scope = self.loc or ""
            name = self._unique(f"{scope}.{base_name}" if scope else base_name, None)
            value = self.emit_parameter(name, core, "constant")
        if core.shape != array.shape:
            value = self.builder.create("tensor.expand", (value,),
                                        {"shape": tuple(int(d) for d in array.shape)}).result
        return value

    def _array_dtype(self, array: np.ndarray) -> str:
        try:
            return dtype_of_numpy(array.dtype)
        except ValueError:
            raise OnnxImportError(
                f"{self._where(self.node) if self.node is not None else self.label}: a constant "
                f"of numpy type {array.dtype} is used by an IR op, but the IR has no such element "
                "type (it has float16, float32, float64, int8, int32, int64 and bool)") from None

    def _parameter_name(self, name: str, weight: tuple[str, str] | None,
                        consumer_op: str | None, operand_index: int | None) -> tuple[str, str]:
        scope = self.loc or ""
        linear_operand = (self.from_torch and consumer_op in ("MatMul", "Gemm")
                          and operand_index == 1)
        if weight is not None:
            root, suffix = weight
            kind, role = "weight", "weight"
        else:
            root, suffix = self.constant_sources.get(name, name), ""
            kind, role = "constant", "constant"
        sources = self.folded_sources.get(root)
        if sources is not None and "." not in root:
            # Folded by the exporter from one parameter or buffer (dynamo's ``t``
            # for dct.t(); ``embedding_2`` for a token-type lookup done at export).
            named = [source for source in sources if source in self.exporter_kinds]
            if len(named) == 1:
                turned = "_transposed" if linear_operand and not suffix else "_folded"
                return self._unique(named[0] + turned + suffix, root), kind
        if is_generated_name(root) or (sources is not None and "." not in root):
            if not scope:
                return self._unique(root + suffix, root), kind
            if role == "weight" and linear_operand and not suffix:
                role = "weight_transposed"
            return self._unique(f"{scope}.{role}{suffix}", root), kind
        return self._unique(root + suffix, root), kind

    def _unique(self, base: str, owner: str | None) -> str:
        candidate, counter = base, 0
        while candidate in self.module.params or (candidate in self.reserved_names
                                                  and candidate != owner):
            counter += 1
            candidate = f"{base}_{counter}"
        return candidate

    # -- finishing
    def _check_outputs(self, outputs: list[Value]) -> None:
        for graph_output, value in zip(self.graph.output, outputs):
            tensor_type = graph_output.type.tensor_type
            if not tensor_type.HasField("shape"):
                continue
            declared = [d.dim_value if d.HasField("dim_value") else None
                        for d in tensor_type.shape.dim]
            shape = value.type.shape
            if len(declared) != len(shape) or any(
                    d is not None and d != s for d, s in zip(declared, shape)):
                shown = ", ".join("?" if d is None else str(d) for d in declared)
                raise OnnxImportError(
                    f"{self.label}: output {graph_output.name!r} comes out with shape "
                    f"{list(shape)}, but the model declares [{shown}]; are the input shapes "
                    "right for this model?")

    def _remove_dead_ops(self) -> None:
        function = self.function
        op = function.last
        while op is not None:
            previous = op.prev
            if op.name != "func.return" and all(not r.uses for r in op.results) \
                    and not op.definition.side_effects:
                if op.name == "tensor.param":
                    self.module.params.pop(op.attributes["name"], None)
                op.erase()
            op = previous

    # -- messages
    def _where(self, node: onnx.NodeProto | None) -> str:
        if node is None:
            return self.label
        at = f" in {self.loc}" if self.loc and self.loc != node.name else ""
        return f"{self.label}: node {node.name!r} ({node.op_type}){at}"

    def _unsupported(self, node: onnx.NodeProto, lowerings: Mapping[str, Any]) -> OnnxImportError:
        domain = f" of domain {node.domain!r}" if node.domain not in _DEFAULT_DOMAINS else ""
        supported = ", ".join(sorted(supported_op_types()))
        return OnnxImportError(
            f"{self.label}: unsupported ONNX operator {node.op_type!r}{domain} (node "
            f"{node.name!r}{' in ' + self.loc if self.loc and self.loc != node.name else ''}); "
            f"the importer supports {supported}")


def _foldable(op_type: str) -> bool:
    """Whether the importer can evaluate ``op_type`` on known inputs (numpy)."""
    return op_type in folding.FOLDERS or op_type == "Split"


def fold_only_op_types() -> set[str]:
    """ONNX op types that have no IR counterpart but fold when their inputs are known."""
    from frontends.onnx.lowering import LOWERINGS

    return {"Constant"} | (set(folding.FOLDERS) - set(LOWERINGS) - set(_ALIAS_OPS))


def supported_op_types() -> set[str]:
    """ONNX op types (default domain) the importer reads: lowered ones, aliases
    and ones folded at import time."""
    from frontends.onnx.lowering import LOWERINGS

    return set(LOWERINGS) | set(_ALIAS_OPS) | fold_only_op_types() | {"Split"}


def _is_identity_perm(perm: Sequence[int] | None, rank: int) -> bool:
    if perm is None:
        return rank <= 1
    return list(perm) == list(range(rank))
