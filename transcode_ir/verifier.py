"""The verifier: checks a module against the rules of the IR and of each op
definition, and names the function, the op, its position and its source
location when something is wrong."""

from __future__ import annotations

from transcode_ir.core import Function, Module, Op
from transcode_ir.errors import VerifyError
from transcode_ir.opdefs import ShapeError, get_opdef
from transcode_ir.printer import format_type

__all__ = ["verify_function", "verify_module", "verify_op"]


def _where(func: Function, index: int, op: Op) -> str:
    loc = f' (loc "{op.loc}")' if op.loc else ""
    return f"in @{func.name}, op #{index} '{op.name}'{loc}"


def verify_op(op: Op) -> list[str]:
    """Problems with one op, checked against its definition (no context)."""
    try:
        opdef = get_opdef(op.name)
    except KeyError:
        from transcode_ir.opdefs import all_opdefs

        return [f"unknown op; known ops are {', '.join(sorted(all_opdefs()))}"]
    problems = []
    n = len(op.operands)
    if n < opdef.min_operands or n > opdef.max_operands:
        want = (f"{opdef.min_operands}" if opdef.min_operands == opdef.max_operands else
                f"{opdef.min_operands} to {opdef.max_operands}")
        problems.append(f"takes {want} operand(s) ({', '.join(map(str, opdef.operands))}), got {n}")
        return problems
    problems += opdef.check_attributes(op.attributes)
    if problems:
        return problems
    if opdef.num_results is not None and len(op.results) != opdef.num_results:
        problems.append(f"has {len(op.results)} result(s), the definition has {opdef.num_results}")
        return problems
    try:
        inferred = opdef.infer_types([v.type for v in op.operands], op.attributes)
    except ShapeError as err:
        return [str(err)]
    if inferred is not None:
        declared = [r.type.dense() for r in op.results]
        if [t.dense() for t in inferred] != declared:
            problems.append("declared result type(s) " + ", ".join(format_type(t) for t in declared)
                            + " differ from the shape rule's "
                            + ", ".join(format_type(t) for t in inferred))
    if opdef.verify is not None:
        extra = opdef.verify(op)
        if extra:
            problems.append(extra)
    return problems


def verify_function(func: Function) -> None:
    defined: set[int] = {id(a) for a in func.args}
    count = 0
    prev = None
    for index, op in enumerate(func):
        count += 1
        if op.parent is not func or op.prev is not prev:
            raise VerifyError(f"{_where(func, index, op)}: the op list is corrupt")
        prev = op
        for i, value in enumerate(op.operands):
            if id(value) not in defined:
                where = "a value of another function" if (
                    value.owner is not func and getattr(value.owner, "parent", None) is not func) \
                    else "a value defined after it"
                raise VerifyError(f"{_where(func, index, op)}: operand {i} is {where}; values "
                                  "must be defined before they are used")
        problems = verify_op(op)
        if problems:
            raise VerifyError(f"{_where(func, index, op)}: " + "; ".join(problems))
        if op.name == "func.return" and op is not func.last:
            raise VerifyError(f"{_where(func, index, op)}: func.return must be the last op")
        for r in op.results:
            defined.add(id(r))
    if count != len(func):
        raise VerifyError(f"in @{func.name}: the op list is corrupt (count mismatch)")
    if func.return_op is None:
        raise VerifyError(f"in @{func.name}: the function does not end with func.return")
    if len(func.result_names) != len(func.outputs):
        raise VerifyError(f"in @{func.name}: {len(func.result_names)} result name(s) for "
                          f"{len(func.outputs)} result(s)")
    for arg in func.args:
        if not arg.name:
            raise VerifyError(f"in @{func.name}: argument {arg.index} has no name")


def verify_module(module: Module) -> None:
    """Raise :class:`VerifyError` on the first problem found."""
    for param in module.params.values():
        if param.data is not None and tuple(param.data.shape) != param.type.shape:
            raise VerifyError(f"parameter @{param.name}: data shape {param.data.shape} differs "
                              f"from its declared type {format_type(param.type)}")
    for func in module.functions.values():
        if func.module is not module:
            raise VerifyError(f"function @{func.name} does not point back to its module")
        verify_function(func)
