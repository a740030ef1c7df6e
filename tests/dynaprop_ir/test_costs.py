"""DynaProp in the cost model: zero density costs zero work (not a crash), and measured
sparsity never makes a model cost more than the unpruned model."""

from __future__ import annotations

import pytest

import passes.dynaprop  # noqa: F401  (registers the pass)


def _compile(module, pipeline: str, hw: str = "acceltran-edge"):  # noqa: ANN001, ANN202
    from backends.elector.compile_pipeline import CompileOptions, compile_module

    return compile_module(module, CompileOptions(hw=hw, pipeline=pipeline))


@pytest.mark.parametrize("density", [0.0])
def test_zero_density_compiles(bert_tiny, density: float) -> None:  # noqa: ANN001
    dense = _compile(bert_tiny.module(), "default")
    pruned = _compile(bert_tiny.module(), f"default,dynaprop{{tau-i=0.02,density={density}}}")
    assert pruned.result.cycles <= dense.result.cycles
    products = [op for op in pruned.mapped.ops if op.macs]
    assert products
    if density == 0.0:
        # every product reads at least one fully pruned operand: no effective MACs
        pruned_products = [op for op in products if op.effective_macs == 0.0]
        assert pruned_products, "a product of pruned operands still does work"


def test_measured_sparsity_never_costs_more(bert_tiny, tmp_path) -> None:  # noqa: ANN001
    """Fused ops stay fused and prunes are done on the way out of the lane: with the
    densities the interpreter measures, and even with nothing pruned (density 1), the
    compiled model costs no more than the unpruned one."""
    npz = bert_tiny.calibration(tmp_path / "inputs.npz", samples=2)
    dense = _compile(bert_tiny.module(), "default")
    nothing = _compile(bert_tiny.module(), "default,dynaprop{tau-i=0.02,density=1.0}")
    assert nothing.result.cycles == dense.result.cycles
    assert nothing.result.energy.total_nj == pytest.approx(dense.result.energy.total_nj)
    measured = _compile(bert_tiny.module(), f"default,dynaprop{{tau-i=0.02,calibration={npz}}}")
    assert measured.result.cycles <= dense.result.cycles
    assert measured.result.energy.total_nj <= dense.result.energy.total_nj
    # no prune op is a job of its own, and no fused op was split
    kinds = [op.kind for op in measured.mapped.ops]
    assert "nn.prune" not in kinds and "nn.gelu" not in kinds
