"""The backend half of ``tcc compile``: passes, mapping, simulation, report.

    from backends.elector.compile_pipeline import CompileOptions, compile_module
    outcome = compile_module(module, CompileOptions(hw="acceltran-edge", batch=4, seq=128))
    print(outcome.report.to_text())

The model arrives as an IR :class:`~transcode_ir.core.Module` with
``@forward``: loading it (ONNX import, ``zoo:`` export with torch) is the
tools layer's job (``tools/commands/compile.py``: :func:`load_model`,
:func:`compile_model`), so this module imports nothing above the backend
(layering: backends import transcode_ir, z3 and lark; the ``passes`` package
is reached through the pass registry, by name, as the core does).

Steps:

1. the design (library name or ``.hwdsl`` file);
2. the pass pipeline: by default ``default`` for inference and
   ``cleanup,autodiff{loss=cross-entropy,optimizer=...,output=...},cleanup,fuse,dce``
   for training, then ``elector-map{hw=...}``; a user pipeline replaces the
   part before the mapping, and ``elector-map`` is appended unless present.
   The report records the exact, canonical pipeline string;
3. the mapped function (``forward``, or ``train_step`` for training),
   simulated analytically or by the event simulator
   (``backends.elector.event_sim.simulate_event(mapped, accelerator)``);
4. the :class:`~backends.elector.report.Report`.

:func:`evaluate` is the fast path for search: a
:class:`~backends.elector.tiling.StaticFunction` built once, evaluated on
many designs, with mapping searches, z3 checks and op costs cached.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field

from transcode_ir.core import Module
from transcode_ir.errors import UserError

from backends.elector.design import Accelerator
from backends.elector.schedule import MappedFunction, SimulationResult

__all__ = [
    "SIMULATORS",
    "CompileOptions",
    "CompileOutcome",
    "compile_module",
    "evaluate",
    "loss_output",
    "training_pipeline",
]

SIMULATORS = ("analytical", "event")


@dataclass
class CompileOptions:
    """What ``tcc compile`` was asked to do (the model itself comes separately)."""

    hw: str
    train: bool = False
    optimizer: str = "adam"
    batch: int | None = None          # what the inputs were bound to (for the report)
    seq: int | None = None
    sim: str = "analytical"
    pipeline: str | None = None       # passes before elector-map (None: the default)
    objective: str = "latency"
    model_name: str = "model"
    source: str = ""
    tool_version: str = "unknown"     # passed in by the tools layer (tools/version.py)
    shape_sources: list[str] = field(default_factory=list)   # where batch and seq came from


@dataclass
class CompileOutcome:
    """The compiled module, the mapped function, the simulation and the report."""

    module: Module
    mapped: MappedFunction
    result: SimulationResult
    report: object                    # backends.elector.report.Report
    seconds: dict[str, float] = field(default_factory=dict)


def training_pipeline(optimizer: str, output: str | None) -> str:
    """The default training pipeline (differentiate before fusing)."""
    opts = f"loss=cross-entropy,optimizer={optimizer}" + (f",output={output}" if output else "")
    return f"cleanup,autodiff{{{opts}}},cleanup,fuse,dce"


def loss_output(module: Module) -> str | None:
    """The forward result a training loss reads: the only one (None), else
    ``logits``, else ``last_hidden_state``, else the first."""
    names = module.function("forward").result_names
    if len(names) <= 1:
        return None
    for preferred in ("logits", "last_hidden_state"):
        if preferred in names:
            return preferred
    return names[0]


def register_passes() -> None:
    """Register the passes compile pipelines use even when the package's
    entry points are not installed (an editable checkout not reinstalled).
    Modules are imported by name, as the pass registry does."""
    importlib.import_module("backends.elector.map_pass")
    for name in ("passes.tile", "passes.dynaprop"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise


def _quote(text: str) -> str:
    from transcode_ir.passes import _format_scalar

    return _format_scalar(text)


def simulator(name: str):  # -> Callable[[MappedFunction, Accelerator], SimulationResult]
    """The simulate function named ``analytical`` or ``event``."""
    if name not in SIMULATORS:
        raise UserError(f"unknown simulator {name!r}; accepted: {', '.join(SIMULATORS)}")
    if name == "analytical":
        from backends.elector.analytical import simulate_analytical

        return simulate_analytical
    try:
        from backends.elector.event_sim import simulate_event
    except ImportError as err:
        if "event_sim" not in str(err):
            raise
        raise UserError("--sim event: the event-driven simulator is not available yet "
                        "(backends/elector/event_sim.py has not landed); use --sim analytical"
                        ) from None
    return simulate_event


def compile_module(module: Module, options: CompileOptions,
                   accelerator: Accelerator | None = None) -> CompileOutcome:
    """Run the passes, map, simulate and report (see the module docstring).
    ``module`` is changed in place by the passes."""
    from backends.elector.area import area_breakdown
    from backends.elector.design_library import resolve_design
    from backends.elector.mapping import map_function
    from backends.elector.report import Report
    from backends.elector.tiling import StaticFunction, design_hash, schedule_function
    from transcode_ir.pass_manager import PassManager
    from transcode_ir.passes import format_pipeline, parse_pipeline

    if options.optimizer not in ("sgd", "adam"):
        raise UserError(f"unknown optimizer {options.optimizer!r}; accepted: sgd, adam")
    simulate = simulator(options.sim)
    times: dict[str, float] = {}
    if accelerator is None:
        accelerator = resolve_design(options.hw)

    register_passes()
    if options.pipeline is not None:
        before = options.pipeline
    elif options.train:
        before = training_pipeline(options.optimizer, loss_output(module))
    else:
        before = "default"
    passes = list(parse_pipeline(before))
    if not any(p.name == "elector-map" for p in passes):
        passes += list(parse_pipeline(
            f"elector-map{{hw={_quote(options.hw)},objective={options.objective}}}"))
    pipeline_text = format_pipeline(passes)
    t0 = time.perf_counter()
    module = PassManager(passes).run(module).module
    times["passes"] = time.perf_counter() - t0

    if "forward" in module.functions and not module.function("forward").outputs:
        raise UserError(f"{options.model_name}: @forward returns nothing, so there is nothing "
                        "to compute; give a model with outputs")
    function = "train_step" if options.train else "forward"
    if function not in module.functions:
        raise UserError(f"the pipeline {pipeline_text!r} did not build @{function}"
                        + ("; a training pipeline needs autodiff" if options.train else ""))
    t0 = time.perf_counter()
    static = StaticFunction(module, function)
    mappings, plan = map_function(static, accelerator, options.objective)
    mapped = schedule_function(static, accelerator, mappings, pipeline_text, plan)
    times["schedule"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = simulate(mapped, accelerator)
    times["simulate"] = time.perf_counter() - t0
    report = Report(
        model=options.model_name, source=options.source, function=function,
        training=options.train, optimizer=options.optimizer if options.train else None,
        batch=options.batch, seq=options.seq, pipeline=pipeline_text, design=accelerator.name,
        design_hash=design_hash(accelerator), technology=accelerator.technology.name,
        clock_hz=accelerator.clock_hz, peak_macs_per_cycle=accelerator.peak_macs_per_cycle,
        tool_version=options.tool_version, mapped=mapped, result=result,
        area=area_breakdown(accelerator, options.train),
        shape_sources=list(options.shape_sources))
    return CompileOutcome(module, mapped, result, report, times)


def evaluate(static, accelerator: Accelerator, objective: str = "latency",  # noqa: ANN001
             respect_attributes: bool = True, check: bool = False) -> SimulationResult:
    """Map (cached per op signature and design) and simulate analytically:
    the per-evaluation path of a design-space search.  ``static`` is a
    :class:`~backends.elector.tiling.StaticFunction` built once.  ``check``
    also verifies each chosen mapping with z3 (cached)."""
    from backends.elector.analytical import simulate_analytical
    from backends.elector.mapping import map_function
    from backends.elector.tiling import schedule_function

    mappings, plan = map_function(static, accelerator, objective, respect_attributes, check)
    mapped = schedule_function(static, accelerator, mappings, plan=plan)
    return simulate_analytical(mapped, accelerator, timeline=False)
