"""``fuse``: form the jobs the accelerator runs as one unit.

* **matmul + bias** -- ``add(matmul(x, w), b)`` with a rank-2 ``w`` ``[K, N]``
  and a bias ``b`` of shape ``[N]`` (either operand order) becomes
  ``nn.linear(x, w, b)``;
* **+ activation** -- ``relu``/``gelu`` of an ``nn.linear`` without an
  activation, or of a ``matmul`` by a rank-2 weight, becomes
  ``nn.linear(...) {activation = "relu" | "gelu" | "gelu_tanh"}``;
* **attention** -- ``matmul(softmax(scores, axis=-1), v)`` where ``scores`` is
  ``q @ kt``, optionally scaled by a scalar constant (``* c`` or ``/ c``)
  and then optionally plus a mask (either operand order), becomes
  ``nn.attention(q, kt, v, mask?) {scale}``.

Every intermediate of a fused chain must have exactly one use: a value that
something else reads (the training graph's backward pass reads the
pre-activation and the probabilities) has to be written out anyway, so the
chain is not fused there.  The fused ops are ordinary op kinds
(:mod:`dialects.fused`) whose cost is the sum of their parts and
whose bytes are only the job's inputs and output.  Source locations: a
fused op takes the location of the chain's first matrix product (the
``Linear`` module path, or the attention's score product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transcode_ir.core import Module, Op, Value
from transcode_ir.passes import Pass, option, register_pass
from transcode_ir.rewrite import (
    Match,
    OneOf,
    OpPattern,
    PatternSet,
    Rewriter,
    Var,
    apply_patterns,
    has_one_use,
    producer,
    splat_value,
)

__all__ = ["ATTENTION_PATTERNS", "FusePass", "LINEAR_PATTERNS"]

LINEAR_PATTERNS = PatternSet()
ATTENTION_PATTERNS = PatternSet()


#: ``matmul(x, w)`` by a rank-2 weight (a Linear without bias), its result read once.
_WEIGHT_MATMUL = OpPattern("tensor.matmul", Var("x", where=lambda v: v.type.rank >= 2),
                           Var("w", where=lambda v: v.type.rank == 2), one_use=True, name="inner")


def _bias_fits(m: Match) -> bool:
    """The bias is ``[N]`` of the product's element type and adding it keeps the type."""
    product = m.inner.result
    return m.bias.type.shape == (m.w.type.shape[1],) and \
        m.bias.type.dtype == product.type.dtype and \
        m.root.result.type.dense() == product.type.dense()


def _with_activation(m: Match) -> Value:
    approximate = m.root.name == "nn.gelu" and m.root.attr("approximate") == "tanh"
    activation = "relu" if m.root.name == "nn.relu" else ("gelu_tanh" if approximate else "gelu")
    return m.op("nn.linear", *m.inner.operands, activation=activation, loc=m.inner.loc)


LINEAR_PATTERNS.add(OpPattern("arith.add", _WEIGHT_MATMUL, Var("bias"), commutative=True),
                    lambda m: m.op("nn.linear", m.x, m.w, m.bias, loc=m.inner.loc),
                    "fuse_matmul_bias", where=_bias_fits)
LINEAR_PATTERNS.add(OpPattern(("nn.relu", "nn.gelu"), OneOf(
    OpPattern("nn.linear", attrs={"activation": "none"}, one_use=True, name="inner"),
    _WEIGHT_MATMUL)), _with_activation, "fuse_activation")


def _scores(value: Value) -> tuple[Op, float] | None:
    """(the q @ kt matmul, scale) when ``value`` is ``q @ kt`` times/over a scalar."""
    mm = producer(value, "tensor.matmul")
    if mm is not None:
        return mm, 1.0
    scale_op = producer(value, ("arith.mul", "arith.div"))
    if scale_op is None:
        return None
    sides = (0,) if scale_op.name == "arith.div" else (0, 1)
    for side in sides:
        inner = scale_op.operands[side]
        factor_value = scale_op.operands[1 - side]
        factor = splat_value(factor_value)
        mm = producer(inner, "tensor.matmul")
        if mm is None or factor is None or factor_value.type.numel != 1 or not has_one_use(inner) \
                or factor == 0.0 or scale_op.result.type.dense() != inner.type.dense():
            continue
        return mm, (1.0 / factor if scale_op.name == "arith.div" else factor)
    return None


def _nan_guarded(probs: Value) -> Value | None:
    """``p`` if ``probs`` is ``select(isnan(p), 0, p)`` (torch's SDPA export
    guards fully masked rows so) and nothing else reads ``p`` or the test."""
    select = producer(probs, "arith.select")
    if select is None or not has_one_use(probs):
        return None
    test, zero, p = select.operands
    isnan = producer(test, "arith.isnan")
    if isnan is None or isnan.operands[0] is not p or splat_value(zero) != 0.0 \
            or not has_one_use(test) or len(p.uses) != 2 or select.result.type != p.type:
        return None
    return p


@ATTENTION_PATTERNS.rule("tensor.matmul")
def fuse_attention(rw: Rewriter, op: Op) -> bool:
    probs, v = op.operands
    guarded = _nan_guarded(probs)   # hook (hf-ops): absorb the SDPA export's NaN guard
    if guarded is not None:
        probs = guarded
    softmax = producer(probs, "nn.softmax")
    if softmax is None or (guarded is None and not has_one_use(probs)) or v.type.rank < 2:
        return False
    scores = softmax.operands[0]
    if softmax.attr("axis") % scores.type.rank != scores.type.rank - 1 or \
            not has_one_use(scores):
        return False
    mask = None
    found = _scores(scores)
    if found is None:
        add = producer(scores, "arith.add")
        if add is None:
            return False
        for side in (0, 1):
            inner = add.operands[side]
            found = _scores(inner) if has_one_use(inner) else None
            if found is not None:
                mask = add.operands[1 - side]
                break
        if found is None or add.result.type.dense() != add.operands[side].type.dense():
            return False
    mm, scale = found
    q, kt = mm.operands
    if q.type.rank < 2 or kt.type.rank < 2 or \
            (mm.result is not scores and not has_one_use(mm.result)):
        return False
    operands = [q, kt, v] + ([mask] if mask is not None else [])
    if mask is not None and mask.type.dtype != q.type.dtype:
        return False
    attrs: dict[str, object] = {"scale": scale} if scale != 1.0 else {}
    if guarded is not None:
        attrs["nan_to_zero"] = True
    # The scores keep q @ kt's shape (checked above), so the fused result has op's type.
    rw.replace_op(op, rw.create("nn.attention", operands, attrs, loc=mm.loc).result)
    return True


@register_pass
@dataclass(frozen=True)
class FusePass(Pass):
    """Fuse matmul+bias(+GELU/ReLU) into nn.linear and attention chains into nn.attention.

    Requires: canonicalized IR (GELU raised to nn.gelu; constants on the
    right).  Guarantees: every matched chain whose intermediates have no
    other use is one fused op computing the same values (a division of the
    scores by c becomes a multiplication by 1/c: about 1e-7 relative).
    """

    name: ClassVar[str] = "fuse"
    linear: bool = option(True, "fuse matmul + bias (+ activation) into nn.linear")
    attention: bool = option(True, "fuse the attention chain into nn.attention")

    def apply(self, module: Module) -> bool:
        patterns = PatternSet()
        if self.linear:
            patterns = patterns + LINEAR_PATTERNS
        if self.attention:
            patterns = patterns + ATTENTION_PATTERNS
        return apply_patterns(module, patterns)
