"""PNG plots people can read (issue 14 item 3): utilisation as small
multiples named as the text report names them, log axes where ranges span
decades, designs labelled, and pyplot's global backend never touched."""

from __future__ import annotations

import matplotlib
import pytest

from backends.elector.costing import ENERGY_LABELS
from backends.elector.plots import utilisation_series

PNG = b"\x89PNG\r\n\x1a\n"

# One xdist worker builds the shared fixtures (compiles, sweep database) once.
pytestmark = pytest.mark.xdist_group("reports")


@pytest.fixture()
def no_backend_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to select a matplotlib backend fails the test."""
    import matplotlib.pyplot as plt

    def refuse(*args, **kwargs):
        raise AssertionError("plotting code switched matplotlib's global backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setattr(plt, "switch_backend", refuse)


@pytest.mark.parametrize("sim", ["analytical", "event"])
def test_utilisation_series_match_the_text_report(reports, sim) -> None:
    report = reports[sim]
    series = utilisation_series(report)
    text = report.result.utilisation
    text_out = report.to_text()
    assert {"mac_lane", "main_memory", "activation_buffer"} <= set(series)
    for key, (times, values) in series.items():
        assert key in text, key                      # the text report's keys ...
        assert ENERGY_LABELS[key] in text_out        # ... and names
        assert times == sorted(times) and all(0.0 <= v <= 1.0 for v in values)
        assert times[-1] == pytest.approx(report.result.cycles)
        average = sum((times[i + 1] - times[i]) * values[i]
                      for i in range(len(times) - 1)) / report.result.cycles
        # No series sits flat at 0 while the text says busy; the averages agree
        # (exactly for the event simulator; the analytical levels are capped at
        # 100% where ops on different classes overlap).
        tolerance = 0.002 if sim == "event" or key not in ("activation_buffer",
                                                           "main_memory") else 0.06
        assert average == pytest.approx(text[key], abs=tolerance), key


def test_compile_plots_leave_the_backend_alone(reports, tmp_path, no_backend_switch) -> None:
    # The raw rcParam (reading rcParams["backend"] would resolve it through pyplot).
    before = dict.__getitem__(matplotlib.rcParams, "backend")
    paths = reports["event"].write_plots(tmp_path)      # (the analytical series: above)
    assert [p.name for p in paths] == ["energy.png", "utilisation.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)
    assert dict.__getitem__(matplotlib.rcParams, "backend") == before


def test_pareto_plot_labels_designs_and_uses_plain_axes(sweep_db, tmp_path,
                                                        no_backend_switch) -> None:
    from tools.codesign import plots
    from tools.codesign.objectives import pareto_front
    from tools.codesign.store import ResultsStore

    with ResultsStore(sweep_db) as store:
        rows = [r for r in store.rows() if r["status"] == "ok"]
    front = pareto_front(rows, lambda r: (r["latency_ms"], r["energy_nj"]), ("min", "min"))
    captured = {}
    real = plots._figure

    def keep(*args):
        captured["figure"] = real(*args)
        return captured["figure"]

    plots._figure = keep
    try:
        path = plots.plot_pareto(rows, tmp_path / "pareto.png")
    finally:
        plots._figure = real
    assert path.read_bytes()[:8] == PNG
    axes = captured["figure"].axes[0]
    labels = {t.get_text() for t in axes.texts}
    assert labels == {"#" + plots.design_label(r).split("#")[1] for r in front}
    for axis in (axes.xaxis, axes.yaxis):
        formatter = axis.get_major_formatter()
        # log scale, or a plain formatter without an offset ("1e10", "+4.999e-1")
        assert axis.get_scale() == "log" or not formatter.get_offset()
    assert "(J)" in axes.get_ylabel() or "(mJ)" in axes.get_ylabel()   # not raw nJ
    best = plots.plot_best_so_far(plots.best_so_far_curves(sweep_db), tmp_path / "best.png")
    assert best.read_bytes()[:8] == PNG
