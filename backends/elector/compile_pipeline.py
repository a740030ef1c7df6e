"""``tcc compile`` as a Python function: import, passes, mapping, simulation, report.

    from backends.elector.compile_pipeline import CompileOptions, compile_model
    outcome = compile_model(CompileOptions("bert-tiny.onnx", hw="acceltran-edge"))
    print(outcome.report.to_text())

Steps:

1. the design (library name or ``.hwdsl`` file);
2. the model: an ONNX file (inputs of rank 2 bound to ``batch x seq``), an IR
   text file (``.tir``, used as is), or ``zoo:NAME``, which is exported with
   :func:`frontends.export.export_onnx` to a temporary folder first (the
   only path that imports torch);
3. the pass pipeline: by default ``default`` for inference and
   ``cleanup,autodiff{loss=cross-entropy,optimizer=...,output=...},cleanup,fuse,dce``
   for training, then ``elector-map{hw=...}``; a user pipeline (``-p``) replaces
   the part before the mapping, and ``elector-map`` is appended unless it is
   already there.  The report records the exact, canonical pipeline string;
4. the mapped function (``forward``, or ``train_step`` with ``--train``),
   simulated analytically or by the event simulator
   (``backends.elector.event_sim.simulate_event(mapped, accelerator)``);
5. the :class:`~backends.elector.report.Report`.

:func:`evaluate` is the fast path for search: an already mapped or
unmapped :class:`~backends.elector.tiling.StaticFunction` on a design, with
per-op static data, mapping searches and z3 checks cached.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from transcode_ir.core import Module
from transcode_ir.errors import UserError

from backends.elector.design import Accelerator
from backends.elector.schedule import MappedFunction, SimulationResult

__all__ = ["CompileOptions", "CompileOutcome", "compile_model", "evaluate", "training_pipeline"]

SIMULATORS = ("analytical", "event")


@dataclass
class CompileOptions:
    """What ``tcc compile`` was asked to do."""

    source: str
    hw: str
    train: bool = False
    optimizer: str = "adam"
    batch: int | None = None          # default: the design's mapping batch
    seq: int = 128
    sim: str = "analytical"
    pipeline: str | None = None       # passes before elector-map (None: the default)
    objective: str = "latency"
    exporter: str = "torchscript"


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


def _loss_output(module: Module) -> str | None:
    """The forward result a training loss reads: the only one, else ``logits``,
    else ``last_hidden_state``, else the first."""
    names = module.function("forward").result_names
    if len(names) <= 1:
        return None
    for preferred in ("logits", "last_hidden_state"):
        if preferred in names:
            return preferred
    return names[0]


def load_model(source: str, batch: int, seq: int, exporter: str = "torchscript"
               ) -> tuple[Module, str]:
    """The IR module of ``source`` (ONNX file, ``.tir`` file or ``zoo:NAME``)
    and the model's name."""
    if source.startswith("zoo:"):
        name = source[4:]
        if not name:
            raise UserError("zoo: needs a model name, e.g. zoo:bert-tiny (see tcc zoo list)")
        from frontends.export import export_onnx   # imports torch

        with tempfile.TemporaryDirectory(prefix="tcc-compile-") as folder:
            path = Path(folder) / f"{name.replace(':', '_')}.onnx"
            export_onnx(name, path, exporter=exporter, batch=batch, seq=seq)
            module = _import(path, batch, seq, copy_weights=True)
        module.name = name
        return module, name
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{source}: no such file (give an .onnx or .tir file, or zoo:NAME)")
    if path.suffix == ".tir":
        from transcode_ir.serialization import load_module

        return load_module(path), path.stem
    return _import(path, batch, seq, copy_weights=False), path.stem


def _import(path: Path, batch: int, seq: int, copy_weights: bool) -> Module:
    import onnx

    from frontends.onnx import import_onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"{path}: not a readable ONNX file ({type(err).__name__}: {err})") from None
    initializers = {init.name for init in model.graph.initializer}
    shapes = {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) == 2:
            shapes[graph_input.name] = (batch, seq)
    return import_onnx(path, shapes or None, copy_weights=copy_weights)


def _ensure_passes_registered() -> None:
    """Register the passes compile pipelines use even when the package's
    entry points are not installed (an editable checkout not reinstalled)."""
    import importlib

    import backends.elector.map_pass  # noqa: F401  (registers elector-map)
    import passes.tile  # noqa: F401  (registers tile)

    try:
        importlib.import_module("passes.dynaprop")
    except ModuleNotFoundError:
        pass


def _quote(text: str) -> str:
    from transcode_ir.passes import _format_scalar

    return _format_scalar(text)


def compile_model(options: CompileOptions) -> CompileOutcome:
    """Run ``tcc compile`` (see the module docstring)."""
    from backends.elector.area import area_breakdown
    from backends.elector.design_library import resolve_design
    from backends.elector.mapping import map_function
    from backends.elector.report import Report
    from backends.elector.tiling import StaticFunction, design_hash, schedule_function
    from tools.version import TOOL_VERSION
    from transcode_ir.pass_manager import PassManager
    from transcode_ir.passes import format_pipeline, parse_pipeline

    if options.sim not in SIMULATORS:
        raise UserError(f"unknown simulator {options.sim!r}; accepted: {', '.join(SIMULATORS)}")
    if options.optimizer not in ("sgd", "adam"):
        raise UserError(f"unknown optimizer {options.optimizer!r}; accepted: sgd, adam")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    accelerator = resolve_design(options.hw)
    batch = options.batch if options.batch is not None else accelerator.mapping.batch
    for label, value in (("--batch", batch), ("--seq", options.seq)):
        if value <= 0:
            raise UserError(f"{label} must be positive, got {value}")
    simulate = _simulator(options.sim)
    times["design"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    module, model_name = load_model(options.source, batch, options.seq, options.exporter)
    times["import"] = time.perf_counter() - t0

    _ensure_passes_registered()
    if options.pipeline is not None:
        before = options.pipeline
    elif options.train:
        before = training_pipeline(options.optimizer, _loss_output(module))
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
        model=model_name, source=options.source, function=function, training=options.train,
        optimizer=options.optimizer if options.train else None, batch=batch, seq=options.seq,
        pipeline=pipeline_text, design=accelerator.name, design_hash=design_hash(accelerator),
        technology=accelerator.technology.name, clock_hz=accelerator.clock_hz,
        peak_macs_per_cycle=accelerator.peak_macs_per_cycle, tool_version=TOOL_VERSION,
        mapped=mapped, result=result, area=area_breakdown(accelerator, options.train))
    return CompileOutcome(module, mapped, result, report, times)


def _simulator(name: str):  # -> Callable[[MappedFunction, Accelerator], SimulationResult]
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
    return simulate_analytical(mapped, accelerator)
