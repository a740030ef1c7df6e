"""Design spaces: size, encoding, lazy enumeration, seeded sampling, errors."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from backends.elector import (
    DesignSpace,
    format_space,
    parse_space,
    resolve_design,
    resolve_space,
)
from transcode_ir.errors import ParseError, UserError

SMALL = """\
design_space "small" {
  clock = 700 MHz
  pe_array { pes in {2, 4}  lanes = 2  macs_per_lane in {1, 4, 16} }
  softmax { per_pe = 1 }
  activation_buffer { size in {8 KiB, 16 KiB} }
  weight_buffer { size = 16 KiB }
  mask_buffer { size = 2 KiB }
  main_memory in { {type = dram  config = 32-2-1}, {type = hbm  config = 32-1-4} }
  mapping { tiles = 1x8x8 }
}
"""


@pytest.fixture(scope="module")
def transcode_space() -> DesignSpace:
    return resolve_space("transcode-space")


def test_transcode_space_has_7425000_points(transcode_space: DesignSpace) -> None:
    assert transcode_space.size == len(transcode_space) == 7_425_000
    counts = {parameter.name: parameter.count for parameter in transcode_space.parameters}
    assert counts == {
        "pe_array.pes": 5, "pe_array.lanes": 5, "pe_array.macs_per_lane": 2,
        "softmax.per_pe": 6, "activation_buffer.size": 5, "weight_buffer.size": 5,
        "mask_buffer.size": 5, "main_memory": 11, "mapping.tiles": 6, "mapping.batch": 3,
    }


def test_transcode_space_values_are_the_reference_table(transcode_space: DesignSpace) -> None:
    values = {parameter.name: parameter.values for parameter in transcode_space.parameters}
    assert values["pe_array.pes"] == (64, 128, 256, 512, 1024)
    assert values["pe_array.lanes"] == (8, 16, 32, 64, 128)
    assert values["softmax.per_pe"] == (2, 4, 8, 16, 32, 64)
    assert values["activation_buffer.size"] == tuple(n * 2**20 for n in (4, 8, 16, 32, 64))
    assert values["weight_buffer.size"] == tuple(n * 2**20 for n in (8, 16, 32, 64, 128))
    assert values["mask_buffer.size"] == tuple(n * 2**20 for n in (1, 2, 4, 8, 16))
    tiles = values["mapping.tiles"]
    assert sorted({b for b, _, _ in tiles}) == [1, 4]
    assert sorted({x for _, x, _ in tiles}) == [8, 16, 32]
    assert all(x == y for _, x, y in tiles)  # tile x = tile y
    memories = {(dict(v)["type"], "-".join(map(str, dict(v)["config"])))
                for v in values["main_memory"]}
    assert len(memories) == 11 and ("hbm", "32-1-4") in memories


def test_softmax_tile_follows_the_tile_of_each_point(transcode_space: DesignSpace) -> None:
    for choices in [(0,) * 10, (4, 4, 1, 5, 4, 4, 4, 10, 5, 2)]:
        point = transcode_space.point(choices)
        assert point.softmax.tile == point.layer_norm.tile == point.mapping.tile_x


def test_encode_decode_are_inverse(transcode_space: DesignSpace) -> None:
    rng = random.Random(7)
    for _ in range(200):
        index = rng.randrange(transcode_space.size)
        assert transcode_space.encode(transcode_space.decode(index)) == index
    assert transcode_space.decode(0) == (0,) * 10
    assert transcode_space.decode(transcode_space.size - 1) == tuple(
        parameter.count - 1 for parameter in transcode_space.parameters)
    assert transcode_space.decode(1) == (0,) * 9 + (1,)  # last parameter varies fastest


def test_point_names_and_index_of(transcode_space: DesignSpace) -> None:
    point = transcode_space.point(123_456)
    assert point.name == "transcode-space#123456"
    assert transcode_space.index_of(point) == 123_456
    assert transcode_space.describe(123_456)["pe_array.pes"] == "64"
    with pytest.raises(UserError, match="not in design space"):
        transcode_space.index_of(resolve_design("tiny-test"))
    # the edge design is in the space (tiles 1x16x16, batch 4, dram 32-2-1)
    edge = resolve_design("acceltran-edge")
    index = transcode_space.index_of(edge)
    assert transcode_space.point(index).pe_array == edge.pe_array


def test_enumeration_is_lazy_and_in_index_order() -> None:
    space = parse_space(SMALL, "small.hwdsl")
    assert space.size == 2 * 3 * 2 * 2
    points = list(space)
    assert [point.name for point in points] == [f"small#{i}" for i in range(space.size)]
    assert list(space.choices()) == list(itertools.product(range(2), range(3), range(2),
                                                           range(2)))
    assert len({point for point in points}) == space.size  # all distinct, hashable
    first = next(iter(resolve_space("transcode-space")))  # does not build 7.4M points
    assert first.name == "transcode-space#0"


def test_sampling_is_seeded_and_reproducible(transcode_space: DesignSpace) -> None:
    first = transcode_space.sample_indices(50, seed=42)
    assert first == transcode_space.sample_indices(50, seed=42)
    assert first != transcode_space.sample_indices(50, seed=43)
    assert len(set(first)) == 50
    rng = random.Random(5)
    assert transcode_space.sample_indices(5, seed=rng) != transcode_space.sample_indices(5, rng)
    points = transcode_space.sample(3, seed=1)
    assert [p.name for p in points] == [f"transcode-space#{i}"
                                        for i in transcode_space.sample_indices(3, seed=1)]
    small = parse_space(SMALL)
    assert sorted(small.sample_indices(small.size, seed=0)) == list(range(small.size))
    with pytest.raises(UserError, match="cannot draw"):
        small.sample_indices(small.size + 1)
    assert len(small.sample_indices(100, seed=0, replace=True)) == 100


def test_index_errors() -> None:
    space = parse_space(SMALL)
    with pytest.raises(UserError, match="outside"):
        space.point(space.size)
    with pytest.raises(UserError, match="outside"):
        space.point((0, 3, 0, 0))
    with pytest.raises(UserError, match="4 parameters"):
        space.encode((0, 0))


def test_space_prints_and_parses_back(transcode_space: DesignSpace) -> None:
    for space in (transcode_space, parse_space(SMALL)):
        again = parse_space(format_space(space), "printed.hwdsl")
        assert again.size == space.size
        assert again.parameters == space.parameters
        for index in (0, space.size // 3, space.size - 1):
            assert again.point(index) == space.point(index)


def test_a_design_file_is_a_space_of_one_point() -> None:
    space = resolve_space("acceltran-edge")
    assert space.size == 1 and space.parameters == ()
    design = resolve_design("acceltran-edge")
    assert space.point(0) == replace(design, name="acceltran-edge#0")
    assert space.index_of(design) == 0


def _space_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_space(text, "space.hwdsl")
    return caught.value


def test_bad_alternative_is_reported_at_its_place() -> None:
    error = _space_error(SMALL.replace("macs_per_lane in {1, 4, 16}", "macs_per_lane in {1, 64}"))
    assert (error.location.line, error.location.column) == (3, 61)
    assert "pe_array.macs_per_lane: 64 is outside" in str(error)
    error = _space_error(SMALL.replace("{type = hbm  config = 32-1-4}",
                                       "{type = hbm  config = 32-2-1}"))
    assert (error.location.line, error.location.column) == (8, 74)
    assert "hbm 32-2-1 is not characterised" in str(error)


def test_choice_set_errors() -> None:
    error = _space_error(SMALL.replace("pes in {2, 4}", "pes in {2, 2}"))
    assert "appears twice" in str(error) and error.location.column == 25
    error = _space_error(SMALL.replace("pes in {2, 4}", "pes in {2, {pes = 4}}"))
    assert "choices are values" in str(error)
    error = _space_error(SMALL.replace("main_memory in { {type = dram  config = 32-2-1},",
                                       "main_memory in { 4,"))
    assert "choices are blocks" in str(error)
    error = _space_error(SMALL.replace("{type = dram  config = 32-2-1}",
                                       "{type = dram  config in {32-2-1, 16-2-2}}"))
    assert "cannot nest" in str(error)
    error = _space_error(SMALL.replace("pes in {2, 4}", "pes in {2, 4 MiB}"))
    assert "plain count" in str(error) and (error.location.line, error.location.column) == (3, 27)
