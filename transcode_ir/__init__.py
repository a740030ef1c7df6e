"""transcode_ir: the core tensor IR of TransCODE.

Types, values, ops, functions and modules (:mod:`.core`); the op definitions
(:mod:`.opdefs`), text printer and parser, verifier, reference interpreter,
and the pass infrastructure.  This package imports nothing above it.
"""

from transcode_ir.core import (
    Attributes,
    Builder,
    DenseAttr,
    Function,
    Module,
    Op,
    Parameter,
    Use,
    Value,
)
from transcode_ir.errors import ParseError, SourceLocation, UserError, VerifyError
from transcode_ir.interpreter import Interpreter, run_function
from transcode_ir.opdefs import AttrSpec, OpCost, OpDef, all_opdefs, define, get_opdef, op_cost
from transcode_ir.parser import parse_module, parse_type
from transcode_ir.pass_manager import (
    PassFailure, PassInstrument, PassManager, PassRecord, PipelineRun, PrintIRAfterAll,
    PrintIRAfterChange, PrintIRAfterFailure, PrintIRAfterPass, TimePasses, run_pipeline,
)
from transcode_ir.passes import (
    Pass, PassOption, PassResult, Pipeline, PipelineError, format_pipeline, get_pass,
    load_pass_plugin, named_pipelines, option, parse_pipeline, pass_options, register_pass,
    register_pipeline, registered_passes, required_option,
)
from transcode_ir.printer import format_type, print_function, print_module, print_op
from transcode_ir.rewrite import Pattern, PatternSet, Rewriter, apply_patterns
from transcode_ir.serialization import load_module, module_fingerprint, save_module, structurally_equal
from transcode_ir.types import SparsityEncoding, TensorType
from transcode_ir.verifier import verify_function, verify_module, verify_op

__all__ = [
    "Pass", "PassFailure", "PassInstrument", "PassManager", "PassOption", "PassRecord",
    "PassResult", "Pattern", "PatternSet", "Pipeline", "PipelineError", "PipelineRun",
    "PrintIRAfterAll", "PrintIRAfterChange", "PrintIRAfterFailure", "PrintIRAfterPass",
    "Rewriter", "TimePasses", "apply_patterns", "format_pipeline", "get_pass",
    "load_pass_plugin", "named_pipelines", "option", "parse_pipeline", "pass_options",
    "register_pass", "register_pipeline", "registered_passes", "required_option", "run_pipeline",
    "AttrSpec", "Attributes", "Builder", "DenseAttr", "Function", "Interpreter", "Module",
    "Op", "OpCost", "OpDef", "Parameter", "ParseError", "SourceLocation", "SparsityEncoding",
    "TensorType", "Use", "UserError", "Value", "VerifyError", "all_opdefs", "define",
    "format_type", "get_opdef", "load_module", "module_fingerprint", "op_cost", "parse_module",
    "parse_type", "print_function", "print_module", "print_op", "run_function", "save_module",
    "structurally_equal", "verify_function", "verify_module", "verify_op",
]
