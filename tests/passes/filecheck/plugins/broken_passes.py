"""Passes that misbehave on purpose, for the pass manager's diagnostics tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transcode_ir import Module, Pass, register_pass
from transcode_ir.types import TensorType


@register_pass
@dataclass(frozen=True)
class BreakTypesPass(Pass):
    """Declare a wrong result type on the first nn.relu (produces invalid IR)."""

    name: ClassVar[str] = "break-types"

    def apply(self, module: Module) -> bool:
        for func in module.functions.values():
            for op in func:
                if op.name == "nn.relu":
                    op.results[0].type = TensorType((7,), "f32")
                    return True
        return False


@register_pass
@dataclass(frozen=True)
class ExplodePass(Pass):
    """Raise an exception (a bug in a pass)."""

    name: ClassVar[str] = "explode"

    def apply(self, module: Module) -> bool:
        raise RuntimeError("something went wrong inside the pass")
