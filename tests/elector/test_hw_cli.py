"""``tcc hw list|show|check`` through the real driver (tools.cli.main)."""

from __future__ import annotations

from tools.cli import main

GOOD = """\
accelerator "cli-test" {
  clock = 700 MHz
  pe_array { pes = 4  lanes = 2  macs_per_lane = 16 }
  softmax { per_pe = 2 }
  activation_buffer { size = 64 KiB }
  weight_buffer { size = 128 KiB }
  mask_buffer { size = 16 KiB }
  main_memory { type = dram  config = 32-2-1 }
}
"""


def test_hw_list(capsys) -> None:
    assert main(["hw", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("designs:\n")
    for name in ("acceltran-edge", "acceltran-server", "tiny-test", "hbm-server"):
        assert f"  {name}" in out
    assert "design spaces:\n  transcode-space" in out
    assert "AccelTran-Edge: 64 PEs" in out


def test_hw_show_library_design(capsys) -> None:
    assert main(["hw", "show", "acceltran-edge"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('accelerator "acceltran-edge" {')
    assert "area of 'acceltran-edge' (inference hardware" in out
    assert "54.064" in out and "not characterised" in out
    assert "peak: 16,384 MACs/cycle at 700 MHz" in out


def test_hw_show_training_and_file(tmp_path, capsys) -> None:
    path = tmp_path / "good.hwdsl"
    path.write_text(GOOD)
    assert main(["hw", "show", str(path), "--training"]) == 0
    out = capsys.readouterr().out
    assert "training hardware" in out and "stochastic-rounding units" in out


def test_hw_show_space_and_point(capsys) -> None:
    assert main(["hw", "show", "transcode-space"]) == 0
    out = capsys.readouterr().out
    assert "7,425,000 points, 10 parameters" in out
    assert "area of point 0: 17.53 mm2" in out
    assert "banking assumption (buffers without banks in the file): Banking rule" in out
    assert main(["hw", "show", "transcode-space", "--point", "0"]) == 0
    out = capsys.readouterr().out
    assert 'accelerator "transcode-space#0"' in out
    assert "storage hierarchy of 'transcode-space#0'" in out


def test_hw_check_ok(tmp_path, capsys) -> None:
    path = tmp_path / "good.hwdsl"
    path.write_text(GOOD)
    assert main(["hw", "check", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"OK: {path}: accelerator 'cli-test'")
    assert main(["hw", "check", "transcode-space"]) == 0
    assert "7,425,000 points" in capsys.readouterr().out


def test_hw_check_error_exits_1_without_traceback(tmp_path, capsys) -> None:
    path = tmp_path / "bad.hwdsl"
    path.write_text(GOOD.replace("clock = 700 MHz", "clock = 4 MB"))
    assert main(["hw", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}:2:13: clock takes a frequency")
    assert "    clock = 4 MB\n" in captured.err and "Traceback" not in captured.err


def test_hw_unknown_name_and_missing_file(tmp_path, capsys) -> None:
    assert main(["hw", "show", "acceltran-mega"]) == 1
    err = capsys.readouterr().err
    assert "unknown design 'acceltran-mega'" in err and "tiny-test" in err
    assert main(["hw", "check", str(tmp_path / "nope.hwdsl")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_hw_without_subcommand_prints_help(capsys) -> None:
    assert main(["hw"]) == 2
    assert "HW_COMMAND" in capsys.readouterr().out
