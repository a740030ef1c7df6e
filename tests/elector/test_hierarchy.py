"""Storage levels of the library designs follow the stated banking rule.

The rule (technologies/14nm.json, ``buffers.bank_bytes``/``banking_note``):
banks of at most 1 MiB, bank count = ceil(size / 1 MiB) >= 1, one 370 GB/s
port per bank.  Worked by hand for the published designs: AccelTran-Edge
4/8/1 MiB -> 4/8/1 banks, AccelTran-Server 32/64/8 MiB -> 32/64/8 banks,
tiny-test's KiB buffers -> 1 bank each; at 700 MHz a port is
370e9 / 700e6 = 528.571... bytes per cycle.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from backends.elector.area import area_breakdown
from backends.elector.design_library import list_library, resolve_design
from backends.elector.hierarchy import default_banks, level, storage_levels

PORT = 370e9 / 700e6


@pytest.mark.parametrize(("design", "banks"), [
    ("acceltran-edge", (4, 8, 1)),
    ("acceltran-server", (32, 64, 8)),
    ("tiny-test", (1, 1, 1)),
])
def test_published_designs_bank_counts(design: str, banks: tuple[int, int, int]) -> None:
    levels = storage_levels(resolve_design(design))
    assert [lv.name for lv in levels] == ["main_memory", "activation_buffer", "weight_buffer",
                                          "mask_buffer", "lane_fifo"]
    assert tuple(lv.banks for lv in levels[1:4]) == banks
    for lv, count in zip(levels[1:4], banks):
        assert lv.bank_bytes_per_cycle == pytest.approx(PORT)
        assert lv.bytes_per_cycle == pytest.approx(count * PORT)
        assert lv.sharing == "chip" and lv.multicast


def test_every_library_design_follows_the_rule() -> None:
    designs = [entry for entry in list_library() if entry.kind == "design"]
    assert designs
    for entry in designs:
        accelerator = resolve_design(entry.name)
        bank_bytes = accelerator.technology.buffer_bank_bytes
        for buffer in accelerator.buffers:
            lv = level(accelerator, buffer.block_name)
            assert lv.banks == max(1, math.ceil(buffer.size_bytes / bank_bytes))
            assert lv.capacity_bytes == buffer.size_bytes
            assert lv.bandwidth_bytes_per_s(accelerator.clock_hz) == pytest.approx(
                lv.banks * accelerator.technology.buffer_bandwidth_bytes_per_s)


def test_lane_fifo_and_main_memory() -> None:
    edge = resolve_design("acceltran-edge")
    fifo = level(edge, "lane_fifo")
    assert fifo.instances == 64 * 16 and fifo.sharing == "lane"
    assert fifo.bank_bytes_per_cycle == pytest.approx(16 * 2.5)      # 16 MACs x 20 bits
    assert fifo.capacity_bytes == 32 * 16 * 2.5
    memory = level(edge, "main_memory")
    assert memory.bytes_per_cycle == pytest.approx(25.6e9 / 700e6)
    assert memory.read_nj_per_byte == pytest.approx(13.44 / 64)


def test_banks_scale_bandwidth_not_area() -> None:
    edge = resolve_design("acceltran-edge")
    doubled = dataclasses.replace(
        edge, activation_buffer=dataclasses.replace(edge.activation_buffer, banks=8))
    assert level(doubled, "activation_buffer").bytes_per_cycle == pytest.approx(
        2 * level(edge, "activation_buffer").bytes_per_cycle)
    assert area_breakdown(doubled).total_mm2 == pytest.approx(area_breakdown(edge).total_mm2)


def test_old_whole_buffer_bandwidth_is_split_over_banks() -> None:
    edge = resolve_design("acceltran-edge")
    slow = dataclasses.replace(
        edge, weight_buffer=dataclasses.replace(edge.weight_buffer, bandwidth_bytes_per_s=700e9))
    weight = level(slow, "weight_buffer")
    assert weight.banks == 8
    assert weight.bytes_per_cycle == pytest.approx(1000.0)


def test_default_banks_rounds_up() -> None:
    tech = resolve_design("tiny-test").technology
    assert default_banks(1, tech) == 1
    assert default_banks(2**20, tech) == 1
    assert default_banks(2**20 + 1, tech) == 2
    assert default_banks(3 * 2**20, tech) == 3


def test_energy_per_access_of_each_level() -> None:
    """Edge, by hand: main memory 13.44 nJ per 64-byte access (DRAM 32-2-1);
    weight buffer 0.08566 x sqrt(8) nJ per 64-byte block; FIFO row 16 x 2.5 bytes."""
    edge = resolve_design("acceltran-edge")
    memory, weight = level(edge, "main_memory"), level(edge, "weight_buffer")
    assert memory.access_bytes == 64 and weight.access_bytes == 64
    assert memory.read_nj_per_byte * memory.access_bytes == pytest.approx(13.44)
    assert weight.read_nj_per_byte * weight.access_bytes == pytest.approx(0.08566 * 8 ** 0.5)
    assert level(edge, "lane_fifo").access_bytes == 40
