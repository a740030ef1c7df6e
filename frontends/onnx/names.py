"""Source names: which torch module an ONNX node came from, and what to call
parameters whose ONNX names are exporter-generated.

Module paths (the ``loc`` of every IR op)
=========================================

* **Dynamo exporter** (torch >= 2.5): each node's ``metadata_props`` has
  ``pkg.torch.onnx.name_scopes``, the Python repr of a list of cumulative
  module paths that ends with the FX node name, e.g. ``['', 'encoder',
  'encoder.layer.0', ..., 'encoder.layer.0.attention.self.query', 'linear']``.
  The module path is the element before last.  Shape helpers inserted by
  ``torch.export`` have the scope ``_empty_nn_module_stack_from_metadata_hook``,
  which means the top-level model.  A module called more than once gets a
  ``@N`` suffix on its path; it is dropped.
* **TorchScript exporter**: the node *name* is the scope,
  ``/encoder/layer.0/attention/self/query/MatMul``: the module path is the
  name without its leading ``/`` and its last component, with ``/`` → ``.``.
* **Anything else** (hand-written ONNX, other producers): the node's own name,
  when it has one.

The top-level module has the path ``""``; ops from it get no ``loc``.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__all__ = ["is_generated_name", "module_path_of", "source_location"]

NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_EMPTY_SCOPE = "_empty_nn_module_stack_from_metadata_hook"
_CALL_SUFFIX = re.compile(r"@\d+(?=\.|$)")

# Names that exporters make up for tensors they create (folded constants,
# transposed weights): TorchScript's ``onnx::MatMul_273`` and ``/x/Constant_output_0``,
# dynamo's ``val_33``, or anything that is not a dotted identifier path.
_GENERATED = re.compile(r"^(onnx::|_?val_\d+$|_?v_\d+$|Constant_\d+$)")
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def module_path_of(node: onnx.NodeProto) -> str | None:
    """The dotted torch module path that produced ``node``.

    ``""`` is the top-level model; ``None`` means the node carries no torch
    scope at all (see :func:`source_location` for the fallback).
    """
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES_KEY:
            return _path_from_name_scopes(prop.value)
    name = node.name
    if not name.startswith("/"):
        return None
    path = name[1:name.rfind("/")].replace("/", ".") if name.count("/") > 1 else ""
    return _CALL_SUFFIX.sub("", path) if "@" in path else path


def _path_from_name_scopes(text: str) -> str:
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return ""
    if not isinstance(scopes, list) or len(scopes) < 2:
        return ""
    path = str(scopes[-2])
    if path == _EMPTY_SCOPE or path.startswith("_empty"):
        return ""
    return _CALL_SUFFIX.sub("", path)


def source_location(node: onnx.NodeProto) -> str | None:
    """The ``loc`` for IR ops lowered from ``node``: its module path, the node
    name for non-torch models, or None (top-level module, unnamed node)."""
    path = module_path_of(node)
    if path is None:
        return node.name or None
    return path or None


def is_generated_name(name: str) -> bool:
    """True for tensor names an exporter made up rather than a module path
    (``onnx::MatMul_273``, ``val_33``, ``/encoder/Constant_output_0``)."""
    return bool(_GENERATED.match(name)) or not _MODULE_PATH.match(name)
