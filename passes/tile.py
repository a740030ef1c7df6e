"""``tile``: force tile sizes and a loop order on the matrix products (by hand).

The target-independent half of scheduling: it records a schedule as IR
attributes, without knowing the hardware.  ``elector-map{hw=...}`` (in
``backends/elector``) keeps what this pass wrote, checks it against the
design with z3 and reports the named constraints a forced schedule breaks;
ops this pass left alone are mapped automatically there.

    tile{x=16,y=16,order=bikj}              every matrix product
    tile{b=4,x=32,y=32,loc=encoder.layer.0} only ops whose source name starts so
    tile{norm-tile=8}                       softmax / layer-norm module tiles too

Attributes written (the names are the ELECTOR mapping's, see
``backends/elector/schedule.py``):

``tile:b``, ``tile:x``, ``tile:y``, ``tile:order``
    on the ops whose definition has the ``Contraction`` trait (``tensor.matmul``,
    ``nn.linear``, ``nn.attention``, the convolutions and their gradients): a ``b x x x y`` tile of the left operand times a ``b x y x y`` tile
    of the right one; loops ``b`` (batch), ``i`` (rows, M), ``j`` (columns,
    N), ``k`` (reduction, K), outermost first.
``tile:x``, ``tile:y``
    on ``nn.softmax``, ``nn.layer_norm`` and their gradients (``norm-tile``):
    the rows and columns of one module tile.

Requires: nothing.  Guarantees: the IR is unchanged except for these
attributes.  With ``clamp=true`` (the default) a tile larger than an op's
dimension -- the trait's (B, M, K, N), a convolution's im2col view -- is
cut down to it (the extra rows would be pure padding), so one
pipeline string fits every op of a model; ``clamp=false`` writes the sizes as
given and lets the mapping report the ops they do not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import ClassVar, Literal

from transcode_ir.core import Module, Op
from transcode_ir.opdefs import Contraction, contraction_dims, get_opdef
from transcode_ir.passes import Pass, option, register_pass

__all__ = ["TILE_ATTRIBUTES", "TilePass"]

#: Attribute names (must equal ATTR_TILE_* / ATTR_ORDER of backends.elector.schedule;
#: tests/elector_compile checks that they do).
TILE_B, TILE_X, TILE_Y, TILE_ORDER = "tile:b", "tile:x", "tile:y", "tile:order"
TILE_ATTRIBUTES = (TILE_B, TILE_X, TILE_Y, TILE_ORDER)

LoopOrder = Literal[tuple("".join(p) for p in permutations("bijk"))]  # type: ignore[valid-type]

_ROW_CATEGORIES = ("softmax", "layernorm")


@register_pass
@dataclass(frozen=True)
class TilePass(Pass):
    """Force tile sizes and a loop order on matrix products (and softmax/layer-norm tiles).

    Requires: nothing.  Guarantees: matrix products (whose source name starts
    with ``loc``) carry tile:b, tile:x, tile:y and tile:order; with norm-tile,
    softmax and layer-norm ops carry tile:x and tile:y.  elector-map keeps
    and checks them."""

    name: ClassVar[str] = "tile"
    b: int = option(1, "tile size along the batch dimension")
    x: int = option(16, "tile rows (M)")
    y: int = option(16, "tile columns (K and N)")
    order: LoopOrder = option("bijk", "loop order, outermost first (a permutation of bijk)")
    norm_tile: int = option(0, "softmax / layer-norm module tile (0: leave them alone)")
    loc: str = option("", "only ops whose source name starts with this")
    clamp: bool = option(True, "cut tiles larger than an op's dimensions down to them")

    def __post_init__(self) -> None:
        for name in ("b", "x", "y"):
            if getattr(self, name) < 1:
                raise ValueError(f"option '{name}' must be at least 1, got {getattr(self, name)}")
        if self.norm_tile < 0:
            raise ValueError("option 'norm-tile' must be 0 (off) or positive, "
                             f"got {self.norm_tile}")

    def apply(self, module: Module) -> bool:
        changed = False
        for func in module.functions.values():
            for op in func:
                if self.loc and not (op.loc or "").startswith(self.loc):
                    continue
                if op.has_trait(Contraction):
                    attrs = self._product_attributes(op)
                elif self.norm_tile and get_opdef(op.name).category in _ROW_CATEGORIES:
                    attrs = self._row_attributes(op)
                else:
                    continue
                new = op.attributes.with_(**attrs)
                if new != op.attributes:
                    op.attributes = new
                    changed = True
        return changed

    def _product_attributes(self, op: Op) -> dict[str, object]:
        b, x, y = self.b, self.x, self.y
        dims = contraction_dims(op) if self.clamp else None
        if dims is not None:
            batch, m, k, n = dims
            b, x, y = min(b, batch), min(x, m), min(y, max(k, n))
        return {TILE_B: b, TILE_X: x, TILE_Y: y, TILE_ORDER: self.order}

    def _row_attributes(self, op: Op) -> dict[str, object]:
        x = y = self.norm_tile
        if self.clamp:
            shape = op.operands[0].type.shape
            cols = shape[-1] if shape else 1
            rows = max(op.operands[0].type.numel // max(cols, 1), 1)
            x, y = min(x, rows), min(y, cols)
        return {TILE_X: x, TILE_Y: y}
