"""The ONNX backend: any function of an IR module back to a runnable ONNX model.

>>> from backends.onnx import export_function, save_onnx
>>> model = export_function(module, "forward", opset=18)     # onnx.ModelProto
>>> save_onnx(module, "model.onnx")                           # or: tcc export model.tir -o model.onnx

Where things live:

* :mod:`.emitters`: the table of op kind -> emitter (:data:`EMITTERS`), and
  the op kinds that deliberately do not export (:data:`NOT_EXPORTABLE`);
* :mod:`.exporter`: the walk over a function, decomposition of fused ops,
  naming, model assembly and checking;
* :mod:`.context`: the graph under construction that emitters write into.

This package imports onnx; import it lazily from code that must start fast.
"""

from __future__ import annotations

from backends.onnx.context import EmitContext, OnnxExportError
from backends.onnx.emitters import EMITTERS, NOT_EXPORTABLE, Emitter, emits, supported_op_kinds
from backends.onnx.exporter import MIN_OPSET, export_function, max_opset, save_onnx

__all__ = [
    "EMITTERS",
    "MIN_OPSET",
    "NOT_EXPORTABLE",
    "EmitContext",
    "Emitter",
    "OnnxExportError",
    "emits",
    "export_function",
    "max_opset",
    "save_onnx",
    "supported_op_kinds",
]
