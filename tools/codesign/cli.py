"""What ``tcc sweep`` and ``tcc codesign`` do (the command files only parse).

Both build a :class:`~tools.codesign.spaces.JointSpace`, an evaluator, an
objective, and call :func:`~tools.codesign.sweep.run_sweep` with a live
progress line on stderr; then print the summary, write plots (``--plots``)
and the best pair's full report (the event simulator unless --final-sim analytical).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tools.options import (
    INFERENCE_PIPELINE,
    MAPPER_OBJECTIVE,
    MAPPER_OBJECTIVES,
    SEQUENCE_LENGTH,
    training_pipeline,
)
from transcode_ir.errors import UserError

__all__ = ["add_common_options", "run_codesign", "run_sweep_command", "run_sweep_export",
           "run_sweep_status"]


class _ListStrategies(argparse.Action):
    """``--list-strategies``: print them and exit (no other option needed)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(list_strategies())
        parser.exit(0)


def add_common_options(parser: argparse.ArgumentParser, default_strategy: str,
                       default_budget: int) -> None:
    """Options shared by ``tcc sweep`` and ``tcc codesign``."""
    search = parser.add_argument_group("search")
    search.add_argument("--db", required=True, help="results database (SQLite; created if "
                        "missing; a sweep run again with the same options resumes)")
    search.add_argument("--strategy", default=default_strategy, metavar="NAME[{OPTION=VALUE,...}]",
                        help="random | evolution | boshcode | tpe | nsga2, with options in "
                             "pipeline syntax, e.g. 'boshcode{initial=8,patience=10}' "
                             f"(default {default_strategy}; --list-strategies shows the options)")
    search.add_argument("--list-strategies", action=_ListStrategies, nargs=0,
                        help="list the strategies and their options, then exit")
    search.add_argument("--budget", type=int,
                        help=f"trials (proposals) in total, default {default_budget} (the "
                             "demo: as many as its time bound allows)")
    parser.set_defaults(default_budget=default_budget)
    search.add_argument("--seed", type=int, default=0, help="strategy seed (default 0)")
    search.add_argument("--round-size", dest="batch", type=int, default=8,
                        help="points asked per round (default 8; part of what makes a run "
                             "reproducible)")
    from tools.console import deprecated_alias

    search.add_argument("--batch", dest="batch", type=int,
                        action=deprecated_alias("--round-size"), help=argparse.SUPPRESS)
    search.add_argument("--name", help="sweep name (default: strategy, seed and a hash of the "
                        "configuration)")
    search.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="stop after this long (resume later with the same command)")
    search.add_argument("--patience", type=int, metavar="ROUNDS",
                        action=deprecated_alias("--strategy 'boshcode{patience=ROUNDS}'"),
                        help=argparse.SUPPRESS)
    run = parser.add_argument_group("execution")
    run.add_argument("--executor", default="local",
                     help="local (process pool, default) | inline | ray (start a private "
                          "local Ray instance: loopback only, fresh token) | ray://HOST:PORT "
                          "(Ray Client) | ray:ADDRESS (join a cluster; see docs/codesign.md, "
                          "Security)")
    run.add_argument("--workers", type=int, default=2, help="worker processes or actors "
                     "(default 2)")
    run.add_argument("--cache", help="model cache directory (default $TRANSCODE_CACHE or "
                     "~/.cache/transcode)")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    cost = parser.add_argument_group("evaluation")
    cost.add_argument("--sim", default="analytical", choices=("analytical", "event"),
                      help="simulator for every evaluation (default analytical)")
    cost.add_argument("--seq", type=int, default=SEQUENCE_LENGTH,
                      help=f"sequence length (default {SEQUENCE_LENGTH})")
    cost.add_argument("--mapper-objective", default=MAPPER_OBJECTIVE, choices=MAPPER_OBJECTIVES,
                      help=f"what the mapping search minimises per op (default {MAPPER_OBJECTIVE}; "
                           "as in tcc compile)")
    cost.add_argument("--train", action="store_true",
                      help="cost a training step (train_step) instead of inference")
    cost.add_argument("-p", "--pipeline", metavar="PIPELINE",
                      help="passes before mapping (default: 'default'; with --train the "
                           "training pipeline); a user's pass via --load-pass-plugin FILE")
    cost.add_argument("--tiles", default="auto",
                      help="schedule tile choices, comma-separated: auto (the mapper picks "
                           "per op), design (the design's tile), BxXxY (default auto)")
    cost.add_argument("--orders", default="auto",
                      help="loop-order choices: auto or permutations of bijk (default auto)")
    cost.add_argument("--tau-i", default="0", help="DynaProp tau_I choices (default 0)")
    cost.add_argument("--tau-t", default="0", help="DynaProp tau_T choices (default 0)")
    cost.add_argument("--densities", default="measured",
                      help="densities when tau > 0: measured (from measured accuracy's run) | "
                           "profile:FILE | assumed:D (default measured)")
    cost.add_argument("--synthetic", action="store_true",
                      help="use the synthetic evaluator (closed-form metrics; for trying the "
                           "machinery)")
    goal = parser.add_argument_group("objective")
    goal.add_argument("--objective", default="weighted",
                      help="weighted (the paper's score) | pareto:METRIC,METRIC[,...] "
                           "(e.g. pareto:latency_ms,energy_nj,accuracy)")
    goal.add_argument("--weights", help="override weights, e.g. accuracy=0.5,latency=0.1,"
                      "dynamic_energy=0.2,leakage_energy=0.1,area=0.1")
    goal.add_argument("--normalise", default="range", choices=("range", "paper"),
                      help="how the weighted score scales each cost: range (default: log of "
                           "the space's own spread, measured on the first round) | paper (the "
                           "paper's fixed normalisers, 4e9 cycles etc.; barely discriminates "
                           "within one space); see docs/codesign.md")
    goal.add_argument("--max-area", type=float, metavar="MM2", help="hard limit on area")
    goal.add_argument("--max-latency", type=float, metavar="MS", help="hard limit on latency")
    out = parser.add_argument_group("output")
    out.add_argument("--plots", metavar="DIR", help="write pareto.png and best_so_far.png")
    out.add_argument("--html", metavar="FILE",
                     help="write an interactive HTML page of the results (Pareto front whose "
                          "points open their design; the best point's full report beside it)")
    out.add_argument("--no-report", action="store_true",
                     help="skip the best pair's full report")
    out.add_argument("--final-sim", default="auto", choices=("auto", "event", "analytical"),
                     help="simulator of the final report (auto: the event simulator)")


def _floats(text: str, label: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{label} {text!r}: expected comma-separated numbers") from None


def _objective(args: argparse.Namespace) -> Any:
    from tools.codesign.objectives import (
        DEFAULT_WEIGHTS,
        Constraints,
        ParetoObjective,
        WeightedObjective,
    )

    constraints = Constraints(args.max_area, args.max_latency)
    weights = dict(DEFAULT_WEIGHTS)
    if args.weights:
        for item in args.weights.split(","):
            name, _, value = item.partition("=")
            try:
                weights[name.strip()] = float(value)
            except ValueError:
                raise UserError(f"--weights {item!r}: expected NAME=NUMBER") from None
    scale = "fixed" if args.normalise == "paper" else "range"
    guide = WeightedObjective(weights, constraints=constraints, scale=scale)
    if args.objective == "weighted":
        return guide
    if args.objective.startswith("pareto:"):
        metrics = tuple(m.strip() for m in args.objective[7:].split(",") if m.strip())
        return ParetoObjective(metrics, constraints, guide)
    hint = (f"; what the mapper minimises per op is --mapper-objective {args.objective}"
            if args.objective in MAPPER_OBJECTIVES else "")
    raise UserError(f"--objective {args.objective!r}: expected weighted or pareto:M1,M2 (what "
                    f"the search optimises){hint}")


def _schedule_space(args: argparse.Namespace) -> Any:
    from tools.codesign.spaces import ScheduleSpace

    return ScheduleSpace(tuple(t.strip() for t in args.tiles.split(",") if t.strip()),
                         tuple(o.strip() for o in args.orders.split(",") if o.strip()),
                         _floats(args.tau_i, "--tau-i"), _floats(args.tau_t, "--tau-t"))


def _evaluator(args: argparse.Namespace, accuracy: Any) -> Any:
    from tools.codesign.evaluation import CostEvaluator, SyntheticEvaluator

    if args.synthetic:
        return SyntheticEvaluator()
    pipeline = INFERENCE_PIPELINE
    function = "forward"
    if args.train:
        pipeline = training_pipeline(output="last_hidden_state")   # the zoo encoders' output
        function = "train_step"
    if getattr(args, "pipeline", None):
        from transcode_ir.passes import format_pipeline, parse_pipeline

        pipeline = format_pipeline(parse_pipeline(args.pipeline))   # bad pipeline: fails now
    return CostEvaluator(accuracy, simulator=args.sim, base_pipeline=pipeline,
                         function=function, seq=args.seq, densities=args.densities,
                         cache_dir=args.cache,
                         mapper_objective=getattr(args, "mapper_objective", MAPPER_OBJECTIVE))


def _progress(args: argparse.Namespace) -> Any:
    from tools.codesign.progress import Progress, SilentProgress

    return SilentProgress() if args.quiet else Progress()


def _finish(args: argparse.Namespace, space: Any, evaluator: Any, result: Any,
            baseline: dict[str, Any] | None = None) -> int:
    """Print the summary (and report), write plots and HTML.  With ``--html -``
    the page alone goes to standard output and the text to stderr."""
    import contextlib

    from transcode_ir.fileio import is_stdio

    args._stdout = sys.stdout
    if is_stdio(getattr(args, "html", None)):
        with contextlib.redirect_stdout(sys.stderr):
            return _finish_text(args, space, evaluator, result, baseline)
    return _finish_text(args, space, evaluator, result, baseline)


def _finish_text(args: argparse.Namespace, space: Any, evaluator: Any, result: Any,
                 baseline: dict[str, Any] | None = None) -> int:
    import contextlib

    from tools.codesign.report import compare, final_report

    print(result.summary())
    if result.front:
        print(f"Pareto front ({len(result.front)} points, {result.objective.describe()}):")
        for trial in sorted(result.front, key=lambda t: t.outcome.metrics.get(
                result.objective.metrics[0]) or 0):
            values = ", ".join(f"{m} {trial.outcome.metrics.get(m):.5g}"
                               for m in result.objective.metrics
                               if trial.outcome.metrics.get(m) is not None)
            print(f"  {values}  | {space.describe(trial.point)}")
    best_metrics = None
    report = None
    if result.stopped == "interrupted":
        print(f"interrupted: {len(result.trials)} trials recorded and every finished "
              "evaluation kept in the database; run the same command again to resume",
              file=sys.stderr)
        return 130
    if result.best is not None and not args.no_report and math.isfinite(result.best.score):
        report = final_report(space, evaluator, result.best.point, args.final_sim)
        print()
        print(report.text)
        best_metrics = report.metrics or dict(result.best.outcome.metrics)
        if baseline is not None:
            print()
            print(f"against the baseline {baseline['label']}:")
            for name, value in compare(best_metrics, baseline).items():
                if value is not None:
                    print(f"  {name}: {value:.4g}")
    if args.plots:
        from tools.codesign.plots import write_plots

        best = dict(result.best.outcome.metrics) if result.best is not None else None
        metrics = ("latency_ms", "energy_nj")
        if hasattr(result.objective, "metrics") and len(result.objective.metrics) >= 2:
            metrics = tuple(result.objective.metrics[:2])
        paths = write_plots(args.db, args.plots, metrics, best, baseline,
                            front_metrics=result.objective.front_metrics(),
                            keys={t.key for t in result.trials})
        from tools.console import wrote

        for path in paths:
            wrote(path)
    if getattr(args, "html", None):
        from backends.elector.html_report import write_sweep_html

        metrics = ("latency_ms", "energy_nj")
        if hasattr(result.objective, "metrics") and len(result.objective.metrics) >= 2:
            metrics = tuple(result.objective.metrics[:2])
        with contextlib.redirect_stdout(args._stdout):      # '-': the real standard output
            paths = write_sweep_html(args.db, args.html, metrics,
                                     result.best.key if result.best is not None else None,
                                     getattr(report, "report", None),
                                     front_metrics=result.objective.front_metrics(),
                                     keys={t.key for t in result.trials})
        from tools.console import wrote

        for path in paths:
            wrote(path)
    return 0


def _budget(args: argparse.Namespace) -> None:
    if args.budget is None:
        args.budget = args.default_budget


def run_sweep_command(args: argparse.Namespace) -> int:
    """``tcc sweep SPACE --model M --db F ...``: a hardware sweep of one model."""
    _budget(args)
    from tools.codesign.accuracy import make_accuracy_source
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace

    model = args.model.removeprefix("zoo:")
    space = JointSpace(ModelSpace.single(model), HardwareSpace(args.space), _schedule_space(args))
    accuracy = make_accuracy_source(args.accuracy, args.cache)
    evaluator = _evaluator(args, accuracy)
    print(f"hardware sweep of {model} over {space.hardware.name} ({space.hardware.size:,} "
          f"designs x {space.schedule.size} schedules); {args.strategy}, budget "
          f"{args.budget}, seed {args.seed}", file=sys.stderr)
    _warn_relu_lanes(space)
    result = _run(args, space, evaluator)
    return _finish(args, space, evaluator, result)


def _warn_relu_lanes(space: Any) -> None:
    """Say it once when a space has ReLU-only designs: GELU models are costed
    on them as on GELU lanes (backends/elector/assumptions.py)."""
    names = {p.name: p for p in space.hardware.parameters}
    choice = names.get("pe_array.nonlinearity")
    relu = (choice is not None and "relu" in [str(v) for v in choice.values]) or (
        choice is None and space.hardware.size > 0
        and space.hardware.accelerator(0).pe_array.nonlinearity == "relu")
    if relu:
        from tools.console import warn

        warn(f"{space.hardware.name} has designs with ReLU-only MAC lanes (pe_array.nonlinearity "
             "= relu): a model's GELU ops are costed on them as lane arithmetic, exactly as on "
             "GELU lanes, although such lanes cannot compute GELU; the best design's report "
             "says so when it is one of them")


def _run(args: argparse.Namespace, space: Any, evaluator: Any) -> Any:
    from tools.codesign.sweep import run_sweep

    if args.plots and Path(args.plots).exists() and not Path(args.plots).is_dir():
        raise UserError(f"--plots {args.plots}: a file, not a folder (give a folder for "
                        "pareto.png and best_so_far.png)")

    return run_sweep(space, evaluator, sweep_settings(args))


def strategy_of(args: argparse.Namespace) -> Any:
    """The ``--strategy`` options object (the deprecated ``--patience N`` on top)."""
    from tools.codesign.strategies import parse_strategy

    spec = parse_strategy(args.strategy)
    if getattr(args, "patience", None) is not None:
        if spec.name != "boshcode":
            raise UserError("--patience applies to --strategy boshcode (write "
                            "--strategy 'boshcode{patience=N}')")
        spec = parse_strategy(spec, patience=args.patience)
    return spec


def sweep_settings(args: argparse.Namespace) -> Any:
    """The :class:`~tools.codesign.sweep.SweepConfig` of a ``tcc sweep``/``codesign`` command."""
    from tools.codesign.sweep import SweepConfig

    return SweepConfig(db=args.db, budget=args.budget, strategy=strategy_of(args), seed=args.seed,
                       objective=_objective(args), executor=args.executor,
                       workers=args.workers, batch_size=args.batch, name=args.name,
                       progress=_progress(args), time_limit=args.time_limit)


def list_strategies() -> str:
    """``--list-strategies``: each strategy, its description and options."""
    from tools.codesign.strategies import registered_strategies
    from transcode_ir.passes import pass_options

    lines = []
    for name, cls in registered_strategies().items():
        lines.append(f"{name}: {cls.summary()}")
        for opt in pass_options(cls):  # type: ignore[arg-type]
            default = "required" if opt.required else f"default {opt.format(opt.default)}"
            lines.append(f"    {opt.name}  ({opt.accepted()}; {default})  {opt.doc}")
    return "\n".join(lines)


def run_sweep_status(db: str, as_json: bool = False) -> int:
    from tools.codesign.report import status_document, status_text

    if as_json:
        print(json.dumps(status_document(db), indent=2))
    else:
        print(status_text(db))
    return 0


def run_sweep_export(db: str, csv_path: str | None, json_path: str | None,
                     parquet_path: str | None = None) -> int:
    from tools.codesign.report import export_csv, export_json, export_parquet
    from tools.console import wrote
    from transcode_ir.fileio import check_output_path, is_stdio

    outputs = [(csv_path, "CSV", export_csv), (json_path, "JSON", export_json),
               (parquet_path, "Parquet", export_parquet)]
    outputs = [(path, what, write) for path, what, write in outputs if path]
    if not outputs:
        raise UserError("tcc sweep export DB needs --csv FILE, --json FILE or --parquet FILE "
                        "(- for standard output)")
    if sum(is_stdio(path) for path, _, _ in outputs) > 1:
        raise UserError("tcc sweep export: only one output can be - (standard output)")
    for path, what, _ in outputs:
        check_output_path(path, what)                 # before reading the database
    for path, what, write in outputs:
        wrote(path, f"{write(db, path)} rows of {what}")  # "wrote 4 rows of CSV to F"
    return 0


def _model_space(text: str) -> Any:
    from tools.codesign.spaces import ModelSpace

    if text.startswith("zoo:"):
        return ModelSpace.single(text[4:])
    path = Path(text)
    if path.suffix == ".json":
        if not path.is_file():
            raise UserError(f"--model-space {text}: no such file")
        return ModelSpace.from_json(json.loads(path.read_text()))
    return ModelSpace.named(text)


def run_codesign(args: argparse.Namespace) -> int:
    """``tcc codesign``: joint (or one-sided) search; ``--demo`` runs the demo."""
    if args.demo:
        from tools.codesign.demo import DemoSettings, run_demo

        settings = DemoSettings(minutes=args.demo_minutes, db=args.db, plots=args.plots,
                                workers=args.workers, cache=args.cache, seed=args.seed,
                                executor=args.executor, budget=args.budget,
                                **({"train_steps": args.train_steps}
                                   if args.train_steps is not None else {}))
        run_demo(settings)
        return 0
    from tools.codesign.accuracy import MeasuredSettings, make_accuracy_source
    from tools.codesign.spaces import HardwareSpace, JointSpace

    _budget(args)
    model_space = _model_space(args.model_space)
    settings = MeasuredSettings(steps=args.train_steps or MeasuredSettings.steps,
                                seed=args.train_seed)
    accuracy = make_accuracy_source(args.accuracy, args.cache, settings)
    space = JointSpace(model_space, HardwareSpace(args.hw), _schedule_space(args))
    evaluator = _evaluator(args, accuracy)
    print(f"{space.mode} search: models {model_space.name} ({float(model_space.size):.3g}) x "
          f"hardware {space.hardware.name} ({space.hardware.size:,}) x schedules "
          f"{space.schedule.size}; accuracy {accuracy.label}; {args.strategy}, budget "
          f"{args.budget}, seed {args.seed}", file=sys.stderr)
    result = _run(args, space, evaluator)
    baseline = None
    if args.baseline:
        baseline = _baseline(args.baseline, evaluator)
    return _finish(args, space, evaluator, result, baseline)


def _baseline(text: str, evaluator: Any) -> dict[str, Any]:
    """``MODEL@DESIGN`` evaluated like every point (for comparisons)."""
    from tools.codesign.evaluation import evaluate_safely
    from tools.codesign.spaces import HardwareSpace, JointPoint, JointSpace, ModelSpace

    model, _, design = text.partition("@")
    if not design:
        raise UserError(f"--baseline {text!r}: expected MODEL@DESIGN, e.g. "
                        "bert-tiny@acceltran-edge")
    space = JointSpace(ModelSpace.single(model), HardwareSpace(design))
    point = JointPoint(space.model.fixed, 0)  # type: ignore[arg-type]
    outcome = evaluate_safely(evaluator, space, point)
    if outcome.status != "ok":
        raise UserError(f"baseline {text}: {outcome.reason}")
    return {**outcome.metrics, "label": text}
