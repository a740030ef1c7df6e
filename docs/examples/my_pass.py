"""An example pass plugin: turn small integer powers into multiplications.

Load it with ``tcc opt model.tir --load-pass-plugin docs/examples/my_pass.py
-p expand-powers{exponents=2,3}``.  The tutorial docs/writing-a-pass.md walks
through it; the test suite runs it (tests/passes/test_plugins_and_cli.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transcode_ir import Module, Pass, PatternSet, Value, apply_patterns, option, register_pass
from transcode_ir.rewrite import Constant, Match, OpPattern, Var, splat_value

#: x ** n with a constant n; the result must have x's type (a broadcasting exponent would
#: change the shape).
POWER = OpPattern("arith.pow", Var("x"), Constant(name="n"))


def integer_exponent(m: Match) -> int | None:
    """The exponent when it is one integer (in every element), else None."""
    n = splat_value(m.n)
    return int(n) if n is not None and n == int(n) else None


def expand_power(m: Match) -> Value:
    """``x ** n`` -> ``x * x * ... * x``."""
    product = m.x
    for _ in range(integer_exponent(m) - 1):
        product = m.op("arith.mul", product, m.x)     # inserted before the matched pow
    return product                                    # replaces the pow, which is erased


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
        def listed(m: Match) -> bool:
            n = integer_exponent(m)
            return n is not None and n >= 2 and n in self.exponents \
                and m.root.result.type == m.x.type

        patterns = PatternSet()
        patterns.add(POWER, expand_power, "expand-power", where=listed)
        return apply_patterns(module, patterns)
