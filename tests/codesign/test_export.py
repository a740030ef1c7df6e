"""`tcc sweep export`: context kept in typed columns (hardware parameters in
base units, model, batch, sequence length, function, simulator, sweep,
objective, score), as CSV (also to standard output) and Parquet."""

from __future__ import annotations

import csv
import io
import math

import pytest

from tools.cli import main


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory, small_space_file, model_cache_dir):
    """The same space swept at sequence 64 and 128 into one database."""
    db = tmp_path_factory.mktemp("export") / "two.sqlite"
    for seq in ("64", "128"):
        assert main(["sweep", str(small_space_file), "--model", "zoo:bert-tiny", "--db",
                     str(db), "--budget", "2", "--executor", "inline", "--seq", seq,
                     "--cache", str(model_cache_dir), "--quiet", "--no-report"]) == 0
    return db


def test_two_sequence_lengths_are_distinguishable_columns(two_sweeps, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["sweep", "export", str(two_sweeps), "--csv", "-"]) == 0
    captured = capsys.readouterr()
    assert not (tmp_path / "-").exists()
    assert "wrote 4 rows of CSV to standard output" in captured.err
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 4
    assert sorted({r["sequence_length"] for r in rows}) == ["128", "64"]
    assert len({r["sweep"] for r in rows}) == 2                   # one sweep per sequence
    for row in rows:
        assert row["model"] == "l2:h128:sdp*2:ff512" and row["function"] == "forward"
        assert row["simulator"] == "analytical" and row["objective"] == "weighted (range scale)"
        assert row["batch"] == row["hw_mapping_batch"] and int(row["batch"]) >= 1
        assert float(row["hw_clock_hz"]) >= 1e6                    # 'MHz' gone: base units
        assert int(row["hw_activation_buffer_size_bytes"]) >= 1024
        assert row["hw_pe_array_nonlinearity"] in ("gelu", "relu")
        if row["status"] == "ok":
            assert math.isfinite(float(row["score"])) and float(row["latency_ms"]) > 0


def test_parquet_has_typed_columns(two_sweeps, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "r.parquet"
    assert main(["sweep", "export", str(two_sweeps), "--parquet", str(target)]) == 0
    table = pq.read_table(target)
    types = {field.name: str(field.type) for field in table.schema}
    assert types["sequence_length"] == "int64" and types["batch"] == "int64"
    assert types["hw_clock_hz"] == "double" and types["score"] == "double"
    assert types["hw_pe_array_pes"] == "int64" and types["hw_sparsity_pre"] == "bool"
    assert types["latency_ms"] == "double" and types["hw_main_memory_type"] == "string"
    assert sorted(set(table.column("sequence_length").to_pylist())) == [64, 128]
    assert table.num_rows == 4


def test_two_outputs_cannot_both_be_stdout(two_sweeps, capsys) -> None:
    assert main(["sweep", "export", str(two_sweeps), "--csv", "-", "--json", "-"]) != 0
    assert "only one output can be -" in capsys.readouterr().err
