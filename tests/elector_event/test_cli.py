"""``tcc compile ... --sim event`` end to end (tools.cli.main), with plots and JSON."""

from __future__ import annotations

import json

from backends.elector.schedule import STALL_CLASSES
from tools.cli import main


def test_compile_zoo_bert_tiny_on_edge_with_event_simulator(tmp_path, capsys) -> None:
    plots, report = tmp_path / "plots", tmp_path / "report.json"
    code = main(["compile", "zoo:bert-tiny", "--hw", "acceltran-edge", "--sim", "event",
                 "--plots", str(plots), "--json", str(report), "--max-ops", "8"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert "simulator  event" in out
    assert "note: event vs analytical:" in out and "stall cycles" in out
    for name in ("utilisation.png", "energy.png"):
        path = plots / name
        assert path.is_file() and path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(report.read_text())
    assert data["simulator"] == "event"
    assert set(data["stalls"]) == set(STALL_CLASSES)
    assert all(set(op["stalls"]) == set(STALL_CLASSES) for op in data["ops"])
    assert data["summary"]["cycles"] >= data["summary"]["roofline_cycles"]
    parts = sum(row["total_nj"] for row in data["energy"]["classes"])
    assert abs(parts - data["energy"]["total_nj"]) <= 1e-9 * data["energy"]["total_nj"]


def test_compile_onnx_training_with_event_simulator(zoo, capsys) -> None:
    code = main(["compile", str(zoo.onnx("bert-tiny")), "--hw", "tiny-test", "--batch", "1",
                 "--seq", "8", "--train", "--sim", "event", "--max-ops", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "simulator  event" in captured.out and "training" in captured.out
