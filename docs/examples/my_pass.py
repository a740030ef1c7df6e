"""An example pass plugin: turn small integer powers into multiplications.

Load it with ``tcc opt model.tir --load-pass-plugin docs/examples/my_pass.py
-p expand-powers{exponents=2,3}``.  The tutorial docs/writing-a-pass.md walks
through it; the test suite runs it (tests/passes/test_plugins.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transcode_ir import (
    Module, Op, Pass, PatternSet, Rewriter, apply_patterns, option, register_pass,
)
from transcode_ir.rewrite import splat_value


def expand_power(rewriter: Rewriter, op: Op, exponents: tuple[int, ...]) -> bool:
    """``x ** n`` -> ``x * x * ... * x`` for a constant integer ``n`` in ``exponents``."""
    x, exponent = op.operands
    n = splat_value(exponent)
    if n is None or n != int(n) or int(n) not in exponents or int(n) < 2:
        return False
    if op.result.type != x.type:          # a broadcasting exponent would change the shape
        return False
    product = x
    for _ in range(int(n) - 1):
        product = rewriter.op("arith.mul", product, x)
    rewriter.replace_op(op, product)
    return True


@register_pass
@dataclass(frozen=True)
class ExpandPowersPass(Pass):
    """Rewrite x ** n (n a small integer constant) as repeated multiplication.

    Requires: nothing beyond verified IR.  Guarantees: no ``arith.pow`` with a
    constant exponent listed in ``exponents`` remains; values are unchanged up to
    float rounding.
    """

    name: ClassVar[str] = "expand-powers"
    exponents: tuple[int, ...] = option((2,), "the exponents to expand")

    def apply(self, module: Module) -> bool:
        patterns = PatternSet()
        patterns.add("arith.pow", lambda rw, op: expand_power(rw, op, self.exponents),
                     name="expand-power")
        return apply_patterns(module, patterns)
