"""The hardware DSL: parsing, printing, round trips, and every error class.

Each error test checks the message text and the ``line:col`` it points at;
the messages must say what was wrong, where, and what would be accepted.
"""

from __future__ import annotations

import pytest

from backends.elector import (
    Accelerator,
    DesignFieldError,
    format_design,
    list_library,
    load_design,
    parse_design,
    resolve_design,
    validate_design,
)
from transcode_ir.errors import ParseError, UserError

LIBRARY_DESIGNS = [entry.name for entry in list_library() if entry.kind == "design"]

MINIMAL = """\
accelerator "minimal" {
  clock = 700 MHz
  pe_array { pes = 4  lanes = 2  macs_per_lane = 16 }
  softmax { per_pe = 2 }
  activation_buffer { size = 64 KiB }
  weight_buffer { size = 128 KiB }
  mask_buffer { size = 16 KiB }
  main_memory { type = dram  config = 32-2-1 }
}
"""


def parse_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_design(text, "design.hwdsl")
    return caught.value


def assert_error_at(text: str, line: int, column: int, *fragments: str) -> ParseError:
    """Parse ``text``; the error must point at line:column and say each fragment."""
    error = parse_error(text)
    assert error.location is not None, str(error)
    assert (error.location.line, error.location.column) == (line, column), str(error)
    assert str(error).startswith(f"design.hwdsl:{line}:{column}: "), str(error)
    for fragment in fragments:
        assert fragment in str(error), f"{fragment!r} not in:\n{error}"
    # the caret sits under the column on the quoted source line
    source_line, caret_line = str(error).splitlines()[-2:]
    assert caret_line.index("^") == column - 1 + 2, str(error)
    assert source_line[2:] == text.split("\n")[line - 1], str(error)
    return error


def with_line(old: str, new: str, text: str = MINIMAL) -> str:
    assert old in text
    return text.replace(old, new, 1)


# --------------------------------------------------------------------------- parsing


def test_minimal_design_gets_documented_defaults() -> None:
    design = parse_design(MINIMAL, "minimal.hwdsl")
    assert design.clock_hz == 700e6
    assert design.technology.name == "14nm"
    assert design.data_width_bits == 20
    assert design.pe_array.nonlinearity == "gelu"
    assert design.pe_array.fifo_depth == 32
    assert design.mapping.tiles == (1, 16, 16) and design.mapping.batch == 1
    # softmax and layer-norm tiles follow the mapping tile's x
    assert design.softmax.tile == 16 and design.layer_norm.tile == 16
    assert design.sparsity.pre and design.sparsity.post
    assert not design.sparsity.stochastic_rounding
    assert design.activation_buffer.size_bytes == 64 * 1024
    assert design.activation_buffer.block_bytes == 64
    assert design.activation_buffer.bandwidth_bytes_per_s is None  # technology's
    assert design.main_memory.config == "32-2-1"
    assert design.peak_macs_per_cycle == 4 * 2 * 16


def test_softmax_tile_follows_mapping_tile_unless_given() -> None:
    text = with_line("main_memory {", "mapping { tiles = 4x32x32  batch = 16 }\n  main_memory {")
    design = parse_design(text)
    assert design.softmax.tile == 32 and design.layer_norm.tile == 32
    assert design.mapping.tile_b == 4 and design.mapping.batch == 16
    text = with_line("softmax { per_pe = 2 }", "softmax { per_pe = 2  tile = 8 }", text)
    assert parse_design(text).softmax.tile == 8


def test_units_and_comments() -> None:
    text = """\
// a comment
accelerator "units" {   # another
  clock = 1.4 GHz
  data_width = 20 bits
  pe_array {
    pes = 1e2           # exponent, still whole
    lanes = 8
    macs_per_lane = 1
    nonlinearity = relu
  }
  softmax { per_pe = 1  tile = 32 }
  layer_norm { tile = 8 }
  sparsity { pre = off  post = on  stochastic_rounding = on }
  activation_buffer { size = 2 MB  block = 64 B  bandwidth = 1.5 TB/s }
  weight_buffer { size = 1 GiB }
  mask_buffer { size = 512 KB  bandwidth = 100 GiB/s }
  main_memory { type = hbm  config = 32-1-4  bandwidth = 300 GB/s  energy_per_access = 20000 pJ }
}
"""
    design = parse_design(text)
    assert design.clock_hz == 1.4e9
    assert design.pe_array.pes == 100
    assert design.activation_buffer.size_bytes == 2_000_000
    assert design.activation_buffer.bandwidth_bytes_per_s == 1.5e12
    assert design.weight_buffer.size_bytes == 2**30
    assert design.mask_buffer.size_bytes == 512_000
    assert design.mask_buffer.bandwidth_bytes_per_s == 100 * 2**30
    assert design.main_memory.bandwidth_bytes_per_s == 300e9
    assert design.main_memory.energy_per_access_nj == 20.0
    assert design.main_memory_costs().energy_per_access_nj == 20.0
    assert design.main_memory_costs().overridden == ("bandwidth", "energy_per_access")
    assert not design.sparsity.pre and design.sparsity.stochastic_rounding


def test_entries_need_no_separators_and_string_escapes() -> None:
    text = MINIMAL.replace('"minimal"', r'"say \"hi\" \\ back"')
    design = parse_design(text)
    assert design.name == 'say "hi" \\ back'
    assert parse_design(format_design(design)) == design


def test_library_designs_match_the_reference() -> None:
    edge = resolve_design("acceltran-edge")
    assert (edge.pe_array.pes, edge.pe_array.lanes, edge.pe_array.macs_per_lane) == (64, 16, 16)
    assert edge.softmax.per_pe == 4 and edge.mapping.tiles == (1, 16, 16)
    assert edge.mapping.batch == 4 and edge.pe_array.nonlinearity == "gelu"
    sizes = [buffer.size_bytes for buffer in edge.buffers]
    assert sizes == [4 * 2**20, 8 * 2**20, 1 * 2**20]
    assert edge.main_memory.label == "dram 32-2-1"
    server = resolve_design("acceltran-server")
    assert (server.pe_array.pes, server.pe_array.lanes, server.pe_array.macs_per_lane) == (
        512, 32, 16)
    assert server.softmax.per_pe == 32
    assert [buffer.size_bytes for buffer in server.buffers] == [32 * 2**20, 64 * 2**20, 8 * 2**20]
    assert server.main_memory.label == "rram 32-2-1"
    hbm = resolve_design("hbm-server")
    assert hbm.main_memory.label == "hbm 32-1-4"
    tiny = resolve_design("tiny-test")
    assert tiny.peak_macs_per_cycle == 2 * 2 * 4
    assert all(buffer.size_bytes <= 16 * 1024 for buffer in tiny.buffers)


def test_resolver_accepts_paths_and_lists_the_library_for_unknown_names(tmp_path) -> None:
    path = tmp_path / "mine.hwdsl"
    path.write_text(MINIMAL)
    assert resolve_design(str(path)).name == "minimal"
    assert load_design(path) == resolve_design(path)
    with pytest.raises(UserError) as caught:
        resolve_design("acceltran-egde")
    message = str(caught.value)
    assert "unknown design 'acceltran-egde'" in message
    for name in LIBRARY_DESIGNS + ["transcode-space"]:
        assert name in message
    with pytest.raises(UserError, match="no such file"):
        resolve_design(tmp_path / "missing.hwdsl")
    with pytest.raises(UserError, match="design space"):
        resolve_design("transcode-space")


def test_unreadable_files_are_user_errors(tmp_path) -> None:
    binary = tmp_path / "binary.hwdsl"
    binary.write_bytes(b"\xff\xfe\x00accelerator")
    with pytest.raises(UserError, match="not UTF-8"):
        load_design(binary)
    with pytest.raises(UserError, match="is a directory"):
        load_design(tmp_path)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", LIBRARY_DESIGNS)
def test_library_design_round_trips(name: str) -> None:
    design = resolve_design(name)
    text = format_design(design)
    again = parse_design(text, f"{name}-printed.hwdsl")
    assert again == design
    assert format_design(again) == text  # printing is a fixed point


def test_printer_writes_every_default_and_only_set_overrides() -> None:
    text = format_design(parse_design(MINIMAL))
    for line in ("technology = \"14nm\"", "data_width = 20 bits", "nonlinearity = gelu",
                 "fifo_depth = 32", "tile = 16", "stochastic_rounding = off",
                 "size = 64 KiB", "block = 64 bytes", "tiles = 1x16x16", "batch = 1"):
        assert line in text
    assert "bandwidth" not in text and "energy_per_access" not in text


def test_accelerator_built_in_python_prints_and_parses_back() -> None:
    from backends.elector import (
        Buffer,
        LayerNormUnit,
        MainMemory,
        MappingDefaults,
        PEArray,
        SoftmaxUnits,
    )

    design = Accelerator(
        name="python-built", clock_hz=123_456_789.5,
        pe_array=PEArray(pes=3, lanes=5, macs_per_lane=7, nonlinearity="relu"),
        softmax=SoftmaxUnits(per_pe=3, tile=8), layer_norm=LayerNormUnit(tile=32),
        activation_buffer=Buffer("activation", 1536, bandwidth_bytes_per_s=1e11 / 3),
        weight_buffer=Buffer("weight", 3 * 10**6),
        mask_buffer=Buffer("mask", 1),
        main_memory=MainMemory("rram", 2, 2, 16, energy_per_access_nj=0.123),
        mapping=MappingDefaults(2, 3, 5, batch=7),
    )
    validate_design(design)
    assert parse_design(format_design(design)) == design


def test_dataclasses_check_their_fields() -> None:
    from backends.elector import Buffer, PEArray

    with pytest.raises(DesignFieldError) as caught:
        PEArray(pes=0, lanes=1, macs_per_lane=1)
    assert caught.value.path == ("pe_array", "pes")
    assert "pe_array.pes: must be positive" in str(caught.value)
    with pytest.raises(DesignFieldError, match="whole number"):
        PEArray(pes=1.5, lanes=1, macs_per_lane=1)
    with pytest.raises(DesignFieldError, match="unknown buffer kind"):
        Buffer("scratch", 64)


# --------------------------------------------------------------------------- syntax errors


def test_error_unexpected_character() -> None:
    text = with_line("clock = 700 MHz", "clock = 700 MHz $")
    assert_error_at(text, 2, 19, "unexpected character '$'")


def test_error_unterminated_string() -> None:
    text = with_line('accelerator "minimal" {', 'accelerator "minimal {')
    assert_error_at(text, 1, 13, "unterminated string")


def test_error_missing_closing_brace() -> None:
    text = MINIMAL.rstrip().rstrip("}")
    error = parse_error(text)
    assert "unexpected end of file" in str(error) and "'}'" in str(error)
    assert error.location.line == 8


def test_error_key_without_equals() -> None:
    text = with_line("clock = 700 MHz", "clock 700 MHz")
    assert_error_at(text, 2, 3, "'clock' is not followed by '=', 'in' or '{'", "clock = VALUE")


def test_error_missing_name() -> None:
    text = with_line('accelerator "minimal" {', "accelerator {")
    assert_error_at(text, 1, 13, "unexpected '{'", "quoted string")


def test_error_empty_name() -> None:
    text = with_line('accelerator "minimal" {', 'accelerator "" {')
    assert_error_at(text, 1, 13, "needs a name")


# --------------------------------------------------------------------------- schema errors


def test_error_unknown_key_in_block_suggests_the_right_one() -> None:
    text = with_line("pes = 4", "pes_count = 4")
    assert_error_at(text, 3, 14, "unknown key 'pes_count' in pe_array", "did you mean 'pes'?",
                    "accepted: pes, lanes, macs_per_lane, nonlinearity, fifo_depth")


def test_error_unknown_top_level_key() -> None:
    text = with_line("clock = 700 MHz", "clock = 700 MHz\n  frequency = 1 GHz")
    assert_error_at(text, 3, 3, "unknown key 'frequency' in the accelerator",
                    "accepted: description, technology, clock")


def test_error_duplicate_key_names_the_first() -> None:
    text = with_line("lanes = 2", "lanes = 2  lanes = 4")
    assert_error_at(text, 3, 34, "duplicate key 'lanes' in pe_array",
                    "first given at line 3, column 23")


def test_error_duplicate_block() -> None:
    text = with_line("softmax { per_pe = 2 }", "softmax { per_pe = 2 }\n  softmax { per_pe = 4 }")
    assert_error_at(text, 5, 3, "duplicate key 'softmax' in the accelerator",
                    "first given at line 4, column 3")


def test_error_missing_required_key_points_at_its_block() -> None:
    text = with_line("lanes = 2  ", "")
    assert_error_at(text, 3, 3, "missing required key 'lanes' in pe_array", "MAC lanes per PE")


def test_error_missing_required_top_level_key() -> None:
    text = with_line("  clock = 700 MHz\n", "")
    assert_error_at(text, 1, 1, "missing required key 'clock' in the accelerator",
                    "a frequency (Hz, kHz, MHz, GHz)")


def test_error_missing_required_block_points_at_header() -> None:
    text = with_line("  main_memory { type = dram  config = 32-2-1 }\n", "")
    assert_error_at(text, 1, 1, "missing required block 'main_memory'",
                    "main_memory { type = ...  config = ... }")


def test_error_block_written_as_value_and_value_as_block() -> None:
    text = with_line("softmax { per_pe = 2 }", "softmax = 2")
    assert_error_at(text, 4, 3, "softmax is a block", "softmax { ... }")
    text = with_line("clock = 700 MHz", "clock { value = 700 MHz }")
    assert_error_at(text, 2, 3, "clock is a single value, not a block")


# --------------------------------------------------------------------------- value errors


def test_error_wrong_unit_dimension() -> None:
    text = with_line("clock = 700 MHz", "clock = 4 MB")
    assert_error_at(text, 2, 13, "clock takes a frequency (Hz, kHz, MHz, GHz)",
                    "'MB' is a size unit")


def test_error_unknown_unit_suggests() -> None:
    text = with_line("clock = 700 MHz", "clock = 700 Mhz")
    assert_error_at(text, 2, 15, "unknown unit 'Mhz' for clock", "did you mean 'MHz'?",
                    "accepted: Hz, kHz, MHz, GHz")


def test_error_missing_unit() -> None:
    text = with_line("size = 64 KiB", "size = 65536")
    assert_error_at(text, 5, 30, "activation_buffer.size needs a unit", "KiB, MiB")


def test_error_unit_on_a_count() -> None:
    text = with_line("pes = 4", "pes = 4 MHz")
    assert_error_at(text, 3, 22, "pe_array.pes is a plain count and takes no unit",
                    "remove 'MHz'")


def test_error_non_positive_and_fractional_values() -> None:
    assert_error_at(with_line("pes = 4", "pes = 0"), 3, 20, "pe_array.pes must be positive")
    assert_error_at(with_line("size = 64 KiB", "size = -4 MiB"), 5, 30,
                    "activation_buffer.size must be positive")
    assert_error_at(with_line("pes = 4", "pes = 1.5"), 3, 20,
                    "pe_array.pes must be a whole number")
    assert_error_at(with_line("size = 64 KiB", "size = 1.5 B"), 5, 30,
                    "must be a whole number of bytes")
    assert_error_at(with_line("clock = 700 MHz", "clock = 0 GHz"), 2, 11,
                    "clock must be positive")


def test_error_huge_numbers_are_out_of_range() -> None:
    assert_error_at(with_line("pes = 4", "pes = 1e400"), 3, 20, "out of range", "1e30")
    assert_error_at(with_line("pes = 4", "pes = " + "9" * 60), 3, 20, "out of range")
    assert_error_at(with_line("clock = 700 MHz", "clock = 1e99999999999 GHz"), 2, 11,
                    "out of range")


def test_error_wrong_value_kinds() -> None:
    assert_error_at(with_line("pes = 4", "pes = gelu"), 3, 20,
                    "pe_array.pes takes a whole number; got the word gelu")
    assert_error_at(with_line("config = 32-2-1", "config = 32"), 8, 39,
                    "banks-ranks-channels configuration such as 32-2-1")
    assert_error_at(with_line("config = 32-2-1", "config = 32-2"), 8, 39, "three numbers")
    assert_error_at(with_line("clock = 700 MHz", 'clock = 700 MHz\n  technology = 14nm'), 3, 16,
                    "technology takes a quoted string")
    assert_error_at(with_line("type = dram", 'type = "dram"'), 8, 24,
                    "main_memory.type takes a word")


def test_error_switch_takes_on_or_off() -> None:
    text = with_line("main_memory {", "sparsity { pre = yes }\n  main_memory {")
    assert_error_at(text, 8, 20, "sparsity.pre takes on or off; got 'yes'")


def test_error_tiles_need_three_numbers() -> None:
    text = with_line("main_memory {", "mapping { tiles = 16x16 }\n  main_memory {")
    assert_error_at(text, 8, 21, "mapping.tiles takes tile dimensions", "(three numbers)")


# --------------------------------------------------------------------------- technology range


def test_error_softmax_tile_not_characterised() -> None:
    text = with_line("softmax { per_pe = 2 }", "softmax { per_pe = 2  tile = 12 }")
    assert_error_at(text, 4, 32, "softmax.tile: 12 is not characterised by technology '14nm'",
                    "accepted: 8, 16, 32")


def test_error_softmax_tile_inherited_from_mapping_points_at_softmax_block() -> None:
    text = with_line("main_memory {", "mapping { tiles = 1x4x4 }\n  main_memory {")
    assert_error_at(text, 4, 3, "softmax.tile: 4 is not characterised", "accepted: 8, 16, 32")


def test_error_unknown_memory_configuration() -> None:
    text = with_line("config = 32-2-1", "config = 64-1-1")
    assert_error_at(text, 8, 39, "main_memory.config: dram 64-1-1 is not characterised",
                    "accepted dram configurations (banks-ranks-channels): 16-2-2, 8-2-4, "
                    "32-2-1, 16-4-1")


def test_error_memory_configuration_of_another_type() -> None:
    text = with_line("type = dram  config = 32-2-1", "type = hbm  config = 32-2-1")
    assert_error_at(text, 8, 38, "hbm 32-2-1 is not characterised", "32-1-4")


def test_error_unknown_memory_type() -> None:
    text = with_line("type = dram", "type = sram")
    assert_error_at(text, 8, 24, "main_memory.type: 'sram' is not characterised",
                    "accepted: dram, rram, hbm")


def test_error_macs_per_lane_outside_interpolation_range() -> None:
    text = with_line("macs_per_lane = 16", "macs_per_lane = 32")
    assert_error_at(text, 3, 50, "pe_array.macs_per_lane: 32 is outside",
                    "1 to 16", "interpolated linearly")


def test_error_nonlinearity_data_width_fifo_and_block_size() -> None:
    assert_error_at(with_line("macs_per_lane = 16", "macs_per_lane = 16  nonlinearity = silu"),
                    3, 69, "'silu' is not characterised", "accepted: gelu, relu")
    assert_error_at(with_line("clock = 700 MHz", "clock = 700 MHz  data_width = 16 bits"),
                    2, 33, "data_width: 16 bits is not characterised", "accepted: 20 bits")
    assert_error_at(with_line("macs_per_lane = 16", "macs_per_lane = 16  fifo_depth = 16"),
                    3, 67, "pe_array.fifo_depth: 16 is not characterised", "accepted: 32")
    assert_error_at(with_line("size = 16 KiB", "size = 16 KiB  block = 128 bytes"), 7, 40,
                    "mask_buffer.block: 128 bytes is not characterised", "accepted: 64 bytes")


def test_error_unknown_technology_points_at_it() -> None:
    text = with_line("clock = 700 MHz", 'clock = 700 MHz\n  technology = "7nm"')
    assert_error_at(text, 3, 16, "technology '7nm' not found", "built-in: 14nm")


# --------------------------------------------------------------------------- design vs space


def test_error_choice_set_in_a_design() -> None:
    text = with_line("pes = 4", "pes in {4, 8}")
    assert_error_at(text, 3, 14, "choice sets", "make a design space", "pes = VALUE")


def test_error_design_space_header_in_parse_design() -> None:
    text = with_line("accelerator", "design_space")
    assert_error_at(text, 1, 1, "describes a design_space, not one accelerator", "load_space")


def test_validate_design_reports_the_field_without_a_file() -> None:
    from dataclasses import replace

    from backends.elector import SoftmaxUnits

    design = replace(parse_design(MINIMAL), softmax=SoftmaxUnits(per_pe=2, tile=12))
    with pytest.raises(DesignFieldError) as caught:
        validate_design(design)
    assert caught.value.path == ("softmax", "tile")
    assert str(caught.value).startswith("softmax.tile: 12 is not characterised")
