"""transcode_ir: the core tensor IR of TransCODE.

Types, values, ops, functions and modules (:mod:`.core`); the op-definition
machinery and registry (:mod:`.opdefs`), text printer and parser, verifier,
reference interpreter, and the pass infrastructure.  The op kinds themselves
live in dialects outside the core (the top-level ``dialects`` package), which
the registry loads on its first lookup.  This package imports nothing above it.

Names are re-exported lazily (PEP 562): ``from transcode_ir import Module``
works as usual, but importing a light submodule such as
``transcode_ir.errors`` does not pull in numpy and lark, so ``tcc --help``
starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "transcode_ir.core": (
        "Attributes", "Builder", "DenseAttr", "Function", "Module", "Op", "Parameter", "Use", "Value",
    ),
    "transcode_ir.errors": ("ParseError", "SourceLocation", "UserError", "VerifyError"),
    "transcode_ir.interpreter": ("Interpreter", "run_function"),
    "transcode_ir.opdefs": (
        "Attr", "Commutative", "Contraction", "DensityPreserving", "OpCost", "OpDef", "Operand", "Pure",
        "Result", "Trait", "ZeroPreserving", "all_opdefs", "contraction_dims", "contraction_products",
        "define", "get_opdef", "op_cost",
    ),
    "transcode_ir.parser": ("parse_module", "parse_type"),
    "transcode_ir.pass_manager": (
        "PassFailure", "PassInstrument", "PassManager", "PassRecord", "PipelineRun", "PrintIRAfterAll",
        "PrintIRAfterChange", "PrintIRAfterFailure", "PrintIRAfterPass", "TimePasses", "run_pipeline",
    ),
    "transcode_ir.passes": (
        "Pass", "PassOption", "PassResult", "Pipeline", "PipelineError", "format_pipeline", "get_pass",
        "load_pass_plugin", "named_pipelines", "option", "parse_pipeline", "pass_options",
        "register_pass", "register_pipeline", "registered_passes", "required_option",
    ),
    "transcode_ir.printer": ("format_type", "print_function", "print_module", "print_op"),
    "transcode_ir.rewrite": ("Pattern", "PatternSet", "Rewriter", "apply_patterns"),
    "transcode_ir.serialization": ("load_module", "module_fingerprint", "save_module", "structurally_equal"),
    "transcode_ir.types": ("SparsityEncoding", "TensorType"),
    "transcode_ir.verifier": ("verify_function", "verify_module", "verify_op"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'transcode_ir' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
