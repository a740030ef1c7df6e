"""The storage options of the DSL: banks, bank_bandwidth, multicast, power_gating.

Old files (no storage options) keep parsing to the same design and the same
normalised text; a file with explicit banks round-trips through the printer;
bad values are errors at the value's file:line:col; ``tcc hw show`` prints the
hierarchy and the banking assumption with its source.
"""

from __future__ import annotations

import pytest

from backends.elector import format_design, parse_design
from backends.elector.design_library import LIBRARY_DIR
from backends.elector.hierarchy import level
from tools.cli import main
from transcode_ir.errors import UserError

BANKED = """\
accelerator "banked" {
  clock = 700 MHz
  power_gating = idle
  pe_array { pes = 4  lanes = 2  macs_per_lane = 16 }
  softmax { per_pe = 1  tile = 16 }
  activation_buffer { size = 256 KiB  banks = 4  bank_bandwidth = 44.8 GB/s }
  weight_buffer { size = 512 KiB  banks = 8  multicast = off }
  mask_buffer { size = 64 KiB  bandwidth = 100 GB/s }
  main_memory { type = dram  config = 32-2-1 }
}
"""


def test_explicit_banks_round_trip_and_set_the_levels() -> None:
    design = parse_design(BANKED, "banked.hwdsl")
    text = format_design(design)
    assert "banks = 4" in text and "bank_bandwidth = 44.8 GB/s" in text
    assert "multicast = off" in text and "power_gating = idle" in text
    again = parse_design(text, "printed.hwdsl")
    assert again == design and format_design(again) == text
    assert design.power_gating == "idle"
    activation = level(design, "activation_buffer")
    assert (activation.banks, activation.bytes_per_cycle) == (4, pytest.approx(4 * 64.0))
    weight = level(design, "weight_buffer")          # 512 KiB given 8 banks, port from the table
    assert weight.banks == 8 and not weight.multicast
    assert weight.bank_bytes_per_cycle == pytest.approx(370e9 / 700e6)
    mask = level(design, "mask_buffer")              # old whole-buffer bandwidth, rule's 1 bank
    assert mask.banks == 1 and mask.bytes_per_cycle == pytest.approx(100e9 / 700e6)


@pytest.mark.parametrize("name", ["acceltran-edge", "acceltran-server", "hbm-server", "tiny-test"])
def test_old_library_files_print_without_the_new_options(name: str) -> None:
    text = (LIBRARY_DIR / f"{name}.hwdsl").read_text()
    design = parse_design(text, f"{name}.hwdsl")
    assert design.power_gating == "none"
    assert all(b.banks is None and b.bank_bandwidth_bytes_per_s is None and b.multicast
               for b in design.buffers)
    printed = format_design(design)
    for word in ("banks", "bank_bandwidth", "multicast", "power_gating"):
        assert word not in printed       # the normalised text (and design hash) is unchanged


@pytest.mark.parametrize(("old", "new", "message", "anchor"), [
    ("banks = 4", "banks = 0", "banks must be positive", "0 "),
    ("banks = 4", "banks = 8192", "accepted: 1 to 4096", "8192"),
    ("banks = 4", "banks = 4 KiB", "takes no unit", "KiB"),
    ("bank_bandwidth = 44.8 GB/s", "bank_bandwidth = 44.8 MHz", "frequency unit", "MHz"),
    ("multicast = off", "multicast = maybe", "takes on or off", "maybe"),
    ("power_gating = idle", "power_gating = sometimes", "accepted: none, idle", "sometimes"),
    ("bandwidth = 100 GB/s", "bandwidth = 100 GB/s  bank_bandwidth = 10 GB/s", "not both",
     "10 GB/s"),
])
def test_bad_storage_values_name_file_line_col(old: str, new: str, message: str,
                                                anchor: str) -> None:
    text = BANKED.replace(old, new)
    rows = text.splitlines()
    line = next(number for number, row in enumerate(rows, 1) if new in row)
    column = rows[line - 1].index(anchor, rows[line - 1].index(new) + len(new.split("=")[0])) + 1
    with pytest.raises(UserError) as err:
        parse_design(text, "bad.hwdsl")
    assert message in str(err.value)
    assert str(err.value).startswith(f"bad.hwdsl:{line}:{column}: ")


def test_hw_show_prints_the_hierarchy_and_banking_assumption(capsys) -> None:
    assert main(["hw", "show", "acceltran-server"]) == 0
    out = capsys.readouterr().out
    assert "storage hierarchy of 'acceltran-server'" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0].endswith(("_buffer", "_fifo", "_memory"))}
    # columns: level, capacity (2 words), instances, banks, ...
    assert rows["activation_buffer"][4] == "32" and rows["weight_buffer"][4] == "64"
    assert rows["mask_buffer"][4] == "8" and rows["lane_fifo"][3] == "16,384"
    assert "banking assumption:" in out
    assert "an assumption of this project" in out and "docs/sources.md" in out
