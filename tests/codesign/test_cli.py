"""``tcc sweep`` and ``tcc codesign`` through the real driver."""

from __future__ import annotations

import csv
import json

from tools.cli import main


def test_sweep_status_export(tmp_path, capsys, small_space_file, model_cache_dir) -> None:
    db = tmp_path / "cli.sqlite"
    arguments = ["sweep", str(small_space_file), "--model", "zoo:bert-tiny", "--db", str(db),
                 "--budget", "8", "--executor", "inline", "--seq", "32", "--cache",
                 str(model_cache_dir), "--plots", str(tmp_path / "plots"), "--strategy",
                 "evolution", "--final-sim", "analytical"]
    assert main(arguments) == 0
    captured = capsys.readouterr()
    assert "8 trials (8 evaluated now" in captured.out
    assert "best pair: model l2:h128:sdp*2:ff512 | hardware codesign-test-space#" in captured.out
    assert "eval/s" not in captured.err          # no progress line: stderr is not a terminal
    assert (tmp_path / "plots" / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "best_so_far.png").stat().st_size > 1000
    assert main(arguments + ["--no-report"]) == 0                 # resumes: nothing new
    assert "(0 evaluated now, 8 from the store" in capsys.readouterr().out

    assert main(["sweep", "status", str(db)]) == 0
    status = capsys.readouterr().out
    assert "8 evaluated points" in status and "strategy evolution, seed 0, 8 trials" in status
    assert main(["sweep", "export", str(db), "--csv", str(tmp_path / "r.csv"), "--json",
                 str(tmp_path / "r.json")]) == 0
    with open(tmp_path / "r.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and {r["simulator"] for r in rows} == {"analytical"}
    document = json.loads((tmp_path / "r.json").read_text())
    assert len(document["results"]) == 8 and len(document["sweeps"][0]["trials"]) == 8


def test_sweep_errors(tmp_path, capsys) -> None:
    assert main(["sweep", "status", str(tmp_path / "missing.sqlite")]) != 0
    assert "no such results database" in capsys.readouterr().err
    assert main(["sweep", "transcode-space", "--model", "zoo:bert-tiny"]) != 0
    assert "--db" in capsys.readouterr().err
    assert main(["sweep", "transcode-space", "--db", str(tmp_path / "x.sqlite"), "--strategy",
                 "annealing", "--synthetic"]) != 0
    assert "unknown strategy" in capsys.readouterr().err
    db = tmp_path / "ok.sqlite"
    assert main(["sweep", "transcode-space", "--synthetic", "--db", str(db), "--budget", "2",
                 "--executor", "inline", "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    (tmp_path / "in-the-way").write_text("x")      # missing folders are made (fileio's rule)
    for target in (tmp_path / "in-the-way" / "r.csv", tmp_path):    # a file in the way; a folder
        assert main(["sweep", "export", str(db), "--csv", str(target)]) != 0
        err = capsys.readouterr().err
        assert str(target) in err and "Traceback" not in err
    (tmp_path / "a-file").write_text("x")
    assert main(["sweep", "transcode-space", "--synthetic", "--db", str(db), "--budget", "2",
                 "--executor", "inline", "--quiet", "--no-report", "--plots",
                 str(tmp_path / "a-file")]) != 0
    assert "a file, not a folder" in capsys.readouterr().err


def test_codesign_joint_pareto_synthetic(tmp_path, capsys) -> None:
    db = tmp_path / "joint.sqlite"
    assert main(["codesign", "--model-space", "flexibert2-small", "--hw", "transcode-space",
                 "--db", str(db), "--synthetic", "--accuracy", "none", "--strategy", "nsga2",
                 "--budget", "24", "--executor", "inline", "--objective",
                 "pareto:latency_ms,energy_nj,accuracy", "--tau-i", "0,0.01", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front (" in out and "24 trials" in out
