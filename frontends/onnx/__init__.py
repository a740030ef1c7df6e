"""The ONNX frontend: import ONNX models (both torch exporters) as IR modules.

>>> from frontends.onnx import import_onnx
>>> module = import_onnx("bert-tiny.onnx", {"input_ids": (4, 128)})   # doctest: +SKIP

See :mod:`frontends.onnx.importer` for what the import does (shape binding,
constant folding, lowering, names) and ``frontends/onnx/README.md`` for the
supported operators.  Importing this package does not import torch.
"""

from __future__ import annotations

from frontends.onnx.importer import (
    MAX_OPSET,
    MIN_OPSET,
    SMALL_CONSTANT_LIMIT,
    OnnxImportError,
    import_onnx,
    load_onnx_model,
    supported_op_types,
)
from frontends.onnx.names import module_path_of, source_location
from frontends.onnx.shapes import DEFAULT_BATCH, DEFAULT_SEQUENCE, ShapeBindingError

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_SEQUENCE",
    "MAX_OPSET",
    "MIN_OPSET",
    "SMALL_CONSTANT_LIMIT",
    "OnnxImportError",
    "ShapeBindingError",
    "import_onnx",
    "load_onnx_model",
    "module_path_of",
    "source_location",
    "supported_op_types",
]
