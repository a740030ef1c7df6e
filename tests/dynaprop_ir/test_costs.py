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
