"""The area model against the published figures and a hand-worked design.

Tolerance: the reference rounds its figures (54.06 mm2, 1,829.7 mm2); the
check is relative 0.1%, as the issue states.  The hand-worked design is
exact up to floating-point rounding (relative 1e-9).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.elector import (
    SparsityUnits,
    area_breakdown,
    module_inventory,
    resolve_design,
    resolve_space,
)


def test_acceltran_edge_is_54_06_mm2() -> None:
    area = area_breakdown(resolve_design("acceltran-edge"))
    assert area.total_mm2 == pytest.approx(54.06, rel=1e-3)


def test_acceltran_server_is_1829_7_mm2() -> None:
    area = area_breakdown(resolve_design("acceltran-server"))
    assert area.total_mm2 == pytest.approx(1829.7, rel=1e-3)


def test_which_terms_reproduce_the_published_areas() -> None:
    """Documents the reading of the formula: inference hardware (no
    stochastic-rounding units) and buffers charged per binary MB."""
    edge = resolve_design("acceltran-edge")
    # With the training-only units the edge design is 0.15% off: not the published figure.
    assert area_breakdown(edge, training=True).total_mm2 == pytest.approx(54.145, rel=1e-4)
    assert abs(area_breakdown(edge, training=True).total_mm2 / 54.06 - 1) > 1e-3
    # Decimal megabytes charged against the per-(binary)-MB table: 0.33% off.
    decimal = replace(edge,
                      activation_buffer=replace(edge.activation_buffer, size_bytes=4 * 10**6),
                      weight_buffer=replace(edge.weight_buffer, size_bytes=8 * 10**6),
                      mask_buffer=replace(edge.mask_buffer, size_bytes=1 * 10**6))
    assert area_breakdown(decimal).total_mm2 == pytest.approx(53.885, rel=1e-4)


def test_tiny_test_worked_by_hand() -> None:
    # MAC lane with 4 MACs, ReLU: linear between the 1- and 16-MAC points:
    #   597.96 + (8,819.48 - 597.96) * 3/15 = 2,242.264 um2
    mac_lane = 597.96 + (8819.48 - 597.96) * 3 / 15
    lane = mac_lane + 6216.9 + 1181.2 + 484.38          # + pre + post sparsity + FIFO
    pe = 2 * lane + 1 * 22008.1 + 75946.98 + 144.64 + 20631.0  # softmax 8, dataflow, DMA, LN 8
    buffers = (8 / 1024) * 303305.83 + (16 / 1024) * 294100.83 + (2 / 1024) * 302565.0
    expected_um2 = 2 * pe + buffers
    area = area_breakdown(resolve_design("tiny-test"))
    assert area.pe_area_um2 == pytest.approx(pe, rel=1e-9)
    assert area.total_um2 == pytest.approx(expected_um2, rel=1e-9)
    assert area.total_mm2 == pytest.approx(0.285516, rel=1e-5)
    mac_row = next(row for row in area.rows if row.kind == "mac_lane")
    assert mac_row.inferred and mac_row.count == 4


def test_breakdown_rows_and_main_memory_not_characterised() -> None:
    area = area_breakdown(resolve_design("acceltran-edge"))
    kinds = [row.kind for row in area.rows]
    assert kinds == ["mac_lane", "pre_sparsity", "post_sparsity", "fifo", "softmax",
                     "layer_norm", "dataflow", "dma", "activation_buffer", "weight_buffer",
                     "mask_buffer", "main_memory"]
    memory = area.rows[-1]
    assert memory.area_um2 is None and "not characterised" in memory.note
    assert area.not_characterised == (memory.item,)
    assert area.by_kind()["softmax"] == pytest.approx(64 * 4 * 87573.3)
    table = area.format_table()
    assert "not characterised" in table and "54.064" in table


def test_training_and_sparsity_switches_change_the_lanes() -> None:
    edge = resolve_design("acceltran-edge")
    lanes = 64 * 16
    inference = area_breakdown(edge).total_um2
    assert area_breakdown(edge, training=True).total_um2 == pytest.approx(
        inference + lanes * 79.04)
    with_rounding = replace(edge, sparsity=SparsityUnits(stochastic_rounding=True))
    assert area_breakdown(with_rounding).total_um2 == pytest.approx(inference + lanes * 79.04)
    dense = replace(edge, sparsity=SparsityUnits(pre=False, post=False))
    assert area_breakdown(dense).total_um2 == pytest.approx(
        inference - lanes * (6216.9 + 1181.2))


def test_inventory_costs_scale_dynamic_power_with_the_clock() -> None:
    edge = resolve_design("acceltran-edge")
    fast = replace(edge, clock_hz=1.4e9)
    softmax = {instance.kind: instance for instance in module_inventory(edge)}["softmax"]
    fast_softmax = {instance.kind: instance for instance in module_inventory(fast)}["softmax"]
    assert softmax.count == 64 * 4 and softmax.costs.dynamic_mw == 34.634
    assert not softmax.costs.inferred
    assert fast_softmax.costs.dynamic_mw == pytest.approx(2 * 34.634)
    assert fast_softmax.costs.leakage_mw == softmax.costs.leakage_mw
    assert fast_softmax.costs.inferred and "inference" in fast_softmax.costs.note
    assert fast_softmax.costs.dynamic_energy_per_cycle_pj == pytest.approx(
        softmax.costs.dynamic_energy_per_cycle_pj)
    assert area_breakdown(fast).total_um2 == area_breakdown(edge).total_um2


def test_transcode_space_area_range_matches_the_reference() -> None:
    """The reference quotes areas 'from about 17.5 mm2 to about 25,600 mm2';
    area grows with every parameter, so the extremes are the first and last points."""
    space = resolve_space("transcode-space")
    smallest = area_breakdown(space.point(0)).total_mm2
    largest = area_breakdown(space.point(space.size - 1)).total_mm2
    assert smallest == pytest.approx(17.5, rel=0.01)
    assert largest == pytest.approx(25_600, rel=0.01)
    for point in space.sample(20, seed=3):
        assert smallest <= area_breakdown(point).total_mm2 <= largest
