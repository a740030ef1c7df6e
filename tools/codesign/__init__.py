"""Co-design: joint search over model, schedule and hardware; sweeps at scale.

The Python API (docs/codesign.md has the guide; docs/examples/sweep_example.py
a worked example)::

    from tools.codesign import (
        HardwareSpace, JointSpace, ModelSpace, ScheduleSpace,      # spaces
        CostEvaluator, SyntheticEvaluator,                          # point -> metrics
        MeasuredAccuracy, TableAccuracy, SurrogateAccuracy,         # accuracy sources
        WeightedObjective, ParetoObjective, Constraints,            # objectives
        run_sweep, SweepConfig, ResultsStore,                       # driver and database
    )

    space = JointSpace(ModelSpace.single("bert-base"), HardwareSpace("transcode-space"))
    result = run_sweep(space, CostEvaluator(),
                       SweepConfig(db="results.sqlite", budget=400,
                                   strategy="boshcode{patience=10}", seed=0, workers=2))
    print(result.summary())

Modules: :mod:`.spaces` (the three spaces, joint points, encodings),
:mod:`.objectives`, :mod:`.evaluation` (evaluators, result keys),
:mod:`.accuracy`, :mod:`.modelcache`, :mod:`.costmodel` (the ELECTOR cost
path), :mod:`.strategies`, :mod:`.executors`, :mod:`.store`, :mod:`.sweep`,
:mod:`.report`, :mod:`.plots`, :mod:`.progress`, :mod:`.demo`.

Importing this package is cheap: names load on first use, and torch is
imported only by the BOSHCODE strategy and by measured accuracy (training).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "STRATEGIES",
    "AccuracyResult",
    "Constraints",
    "CostEvaluator",
    "Evaluator",
    "HardwareSpace",
    "InlineExecutor",
    "JointPoint",
    "JointSpace",
    "LocalPoolExecutor",
    "MeasuredAccuracy",
    "MeasuredSettings",
    "ModelCache",
    "ModelKey",
    "ModelSpace",
    "NoAccuracy",
    "Outcome",
    "ParetoObjective",
    "RayExecutor",
    "ResultsStore",
    "Schedule",
    "ScheduleSpace",
    "Strategy",
    "StrategyOptions",
    "SurrogateAccuracy",
    "SweepConfig",
    "SweepResult",
    "SyntheticEvaluator",
    "TableAccuracy",
    "WeightedObjective",
    "compare",
    "evaluate_safely",
    "final_report",
    "make_accuracy_source",
    "make_executor",
    "make_strategy",
    "parse_strategy",
    "register_strategy",
    "pareto_front",
    "point_key",
    "run_sweep",
    "write_plots",
]

_WHERE = {
    "HardwareSpace": "spaces", "JointPoint": "spaces", "JointSpace": "spaces",
    "ModelSpace": "spaces", "Schedule": "spaces", "ScheduleSpace": "spaces",
    "Constraints": "objectives", "ParetoObjective": "objectives",
    "WeightedObjective": "objectives", "pareto_front": "objectives",
    "CostEvaluator": "evaluation", "Evaluator": "evaluation", "Outcome": "evaluation",
    "SyntheticEvaluator": "evaluation", "evaluate_safely": "evaluation",
    "point_key": "evaluation",
    "AccuracyResult": "accuracy", "MeasuredAccuracy": "accuracy",
    "MeasuredSettings": "accuracy", "NoAccuracy": "accuracy", "SurrogateAccuracy": "accuracy",
    "TableAccuracy": "accuracy", "make_accuracy_source": "accuracy",
    "ModelCache": "modelcache", "ModelKey": "modelcache",
    "STRATEGIES": "strategies", "Strategy": "strategies", "make_strategy": "strategies",
    "StrategyOptions": "strategies", "parse_strategy": "strategies",
    "register_strategy": "strategies", "SweepConfig": "sweep",
    "InlineExecutor": "executors", "LocalPoolExecutor": "executors",
    "RayExecutor": "executors", "make_executor": "executors",
    "ResultsStore": "store",
    "SweepResult": "sweep", "run_sweep": "sweep",
    "compare": "report", "final_report": "report",
    "write_plots": "plots",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"tools.codesign.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
