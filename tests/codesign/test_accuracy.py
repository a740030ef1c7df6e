"""Accuracy sources: tables, the surrogate, measured training (tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.codesign.accuracy import (
    MeasuredAccuracy,
    MeasuredSettings,
    SurrogateAccuracy,
    TableAccuracy,
    make_accuracy_source,
)
from tools.codesign.spaces import Schedule
from transcode_ir.errors import UserError


def test_table_csv_and_json(tmp_path) -> None:
    csv = tmp_path / "acc.csv"
    csv.write_text("model,accuracy,tau_i\nbert-tiny,0.61,0\nl2:h128:sdp*2:ff512,0.58,0.01\n")
    table = TableAccuracy(csv)
    result = table.accuracy("l2:h128:sdp*2:ff512", Schedule())      # bert-tiny by description
    assert (result.value, result.source) == (0.61, "table:acc.csv")
    assert table.accuracy("bert-tiny", Schedule(tau_i=0.01)).value == 0.58
    with pytest.raises(UserError, match="no accuracy for model"):
        table.accuracy("bert-mini", Schedule())
    document = tmp_path / "acc.json"
    document.write_text(json.dumps({"bert-tiny": 0.6, "bert-mini": 0.66}))
    assert make_accuracy_source(f"table:{document}").accuracy("bert-mini", Schedule()).value \
        == 0.66
    bad = tmp_path / "bad.csv"
    bad.write_text("model,accuracy\nbert-tiny,61\n")
    with pytest.raises(UserError, match="outside"):
        TableAccuracy(bad)


def test_surrogate_is_fitted_on_measured_values(tmp_path) -> None:
    path = tmp_path / "measured.csv"
    rows = [("l2:h128:sdp*2:ff512", 0.55), ("l4:h128:sdp*2:ff512", 0.58),
            ("l2:h256:sdp*4:ff1024", 0.60), ("l4:h256:sdp*4:ff1024", 0.64),
            ("l2:h128:dft*2:ff512", 0.50), ("l4:h256:dft*2,sdp*2:ff1024", 0.61)]
    path.write_text("model,accuracy\n" + "".join(f'"{m}",{a}\n' for m, a in rows))
    surrogate = SurrogateAccuracy(path)
    result = surrogate.accuracy("l4:h256:sdp*4:ff512", Schedule())
    assert 0.0 <= result.value <= 1.0
    assert result.source.startswith("surrogate:ridge(n=6, loo-rmse=")


def test_measured_accuracy_trains_once_and_caches(tmp_path) -> None:
    settings = MeasuredSettings(train_size=64, validation_size=32, test_size=32, steps=2,
                                batch_size=16, max_length=24)
    source = MeasuredAccuracy(settings, tmp_path)
    first = source.accuracy("bert-tiny", Schedule(tau_i=0.01))
    assert 0.0 <= first.value <= 1.0
    assert first.source.startswith("measured:listops(steps=2")
    assert first.profile
    assert json.loads(Path(first.profile).read_text())["thresholds"]["tau_i"] == 0.01
    cached = list((tmp_path / "accuracy").glob("*.json"))
    again = MeasuredAccuracy(settings, tmp_path).accuracy("bert-tiny", Schedule(tau_i=0.01))
    assert again.value == first.value
    assert list((tmp_path / "accuracy").glob("*.json")) == cached
