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

import logging
import time
from dataclasses import dataclass, field

from backends.elector.design import Accelerator
from backends.elector.schedule import MappedFunction, SimulationResult
from transcode_ir.core import Module
from transcode_ir.defaults import MAPPER_OBJECTIVE
from transcode_ir.errors import UserError

__all__ = [
    "KV_CACHE_PLACEMENTS",
    "WEIGHT_PLACEMENTS",
    "SIMULATORS",
    "DecodeOutcome",
    "DecodePlan",
    "append_cache_outputs",
    "cache_traffic",
    "compile_decode",
    "decode_cache_lengths",
    "CompileOptions",
    "CompileOutcome",
    "compile_module",
    "evaluate",
    "evaluate_mapped",
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
    objective: str = MAPPER_OBJECTIVE   # what the mapper minimises per op (--mapper-objective)
    model_name: str = "model"
    source: str = ""
    tool_version: str = "unknown"     # passed in by the tools layer (tools/version.py)
    shape_sources: list[str] = field(default_factory=list)   # where batch and seq came from
    weights_on_chip: bool = False     # parameters start in the weight buffer (decode steps)


@dataclass
class CompileOutcome:
    """The compiled module, the mapped function, the simulation and the report."""

    module: Module
    mapped: MappedFunction
    result: SimulationResult
    report: object                    # backends.elector.report.Report
    seconds: dict[str, float] = field(default_factory=dict)


def training_pipeline(optimizer: str, output: str | None) -> str:
    """The default training pipeline (differentiate before fusing):
    :func:`transcode_ir.defaults.training_pipeline`."""
    from transcode_ir.defaults import training_pipeline as default_training

    return default_training(optimizer, output)


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
    entry points are not installed (an editable checkout not reinstalled),
    through the pass registry's one loader."""
    from transcode_ir.passes import load_passes

    load_passes("backends.elector.map_pass")


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
    from backends.elector.event_sim import simulate_event

    return simulate_event


def compile_module(module: Module, options: CompileOptions,
                   accelerator: Accelerator | None = None) -> CompileOutcome:
    """Run the passes, map, simulate and report (see the module docstring).
    ``module`` is changed in place by the passes."""
    from backends.elector.area import area_breakdown
    from backends.elector.hierarchy import storage_levels
    from backends.elector.report import Report
    from backends.elector.target import build_target, compile_context
    from backends.elector.tiling import StaticFunction, design_hash
    from transcode_ir.pass_manager import PassManager
    from transcode_ir.passes import format_pipeline, parse_pipeline

    if options.optimizer not in ("sgd", "adam"):
        raise UserError(f"unknown optimizer {options.optimizer!r}; accepted: sgd, adam")
    simulator(options.sim)        # an unknown simulator fails before the passes run
    times: dict[str, float] = {}
    target = build_target(accelerator if accelerator is not None else options.hw,
                          reference=options.hw)
    accelerator = target.accelerator

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
    from transcode_ir.progress import stage  # stderr, terminals only (cli helper)

    t0 = time.perf_counter()
    with stage("running passes"), compile_context(target) as context:
        module = PassManager(passes).run(module).module
    times["passes"] = time.perf_counter() - t0

    if "forward" in module.functions and not module.function("forward").outputs:
        raise UserError(f"{options.model_name}: @forward returns nothing, so there is nothing "
                        "to compute; give a model with outputs")
    if options.weights_on_chip:
        from backends.elector.tiling import ATTR_RESIDENT_PARAMS

        module.attributes = module.attributes.with_(
            **{ATTR_RESIDENT_PARAMS: tuple(sorted(module.params))})
    function = "train_step" if options.train else "forward"
    if function not in module.functions:
        raise UserError(f"the pipeline {pipeline_text!r} did not build @{function}"
                        + ("; a training pipeline needs autodiff" if options.train else ""))
    # When elector-map ran last, for this design and on this very function,
    # its static view and mappings are the ones to simulate (the attributes
    # it wrote say the same): no second build or search.  Resident
    # parameters (decode steps) change the static view: rebuild.
    record = (context.mapping_of(module.function(function), accelerator)
              if passes[-1].name == "elector-map" and not options.weights_on_chip
              else None)
    if record is not None:
        static, mapping = record.static, (list(record.mappings), record.plan)
    else:
        static, mapping = StaticFunction(module, function), None
    result, mapped = evaluate_mapped(static, accelerator, options.objective, check=True,
                                     sim=options.sim, pipeline=pipeline_text,
                                     mapping=mapping, stage=stage, times=times)
    report = Report(
        model=options.model_name, source=options.source, function=function,
        training=options.train, optimizer=options.optimizer if options.train else None,
        batch=options.batch, seq=options.seq, pipeline=pipeline_text, design=accelerator.name,
        design_hash=design_hash(accelerator), technology=accelerator.technology.name,
        clock_hz=accelerator.clock_hz, peak_macs_per_cycle=accelerator.peak_macs_per_cycle,
        tool_version=options.tool_version, mapped=mapped, result=result,
        area=area_breakdown(accelerator, options.train),
        shape_sources=list(options.shape_sources), hierarchy=storage_levels(accelerator))
    from backends.elector.assumptions import nonlinearity_notes  # say what was assumed (cli)

    for note in nonlinearity_notes(module.function(function), accelerator):
        report.notes.append(note)
        logging.getLogger("tcc").warning(note)
    return CompileOutcome(module, mapped, result, report, times)


def evaluate_mapped(static, accelerator: Accelerator,  # noqa: ANN001
                    objective: str = MAPPER_OBJECTIVE, respect_attributes: bool = True,
                    check: bool = False, *, sim: str = "analytical",
                    pipeline: str = "", timeline: bool = True,
                    tile: tuple[int, int, int] | None = None, order: str | None = None,
                    mapping: tuple | None = None, stage=None,  # noqa: ANN001
                    times: dict[str, float] | None = None,
                    ) -> tuple[SimulationResult, MappedFunction]:
    """The one evaluation path of ``tcc compile`` and of a design-space
    search (co-design): map ``static`` (a
    :class:`~backends.elector.tiling.StaticFunction`) onto ``accelerator``,
    build the mapped function, simulate it.

    ``tile``/``order``: every matrix product mapped with that tile (clamped
    to each op) and loop order (None: the best for that tile), as
    :func:`~backends.elector.mapping.map_function` does it; ``mapping``:
    ``(mappings, plan)`` already chosen (``elector-map`` in a compile
    context), so no second search.  ``timeline=False``: the analytical
    simulator skips the utilisation timeline (only plots read it).
    ``stage``/``times``: progress stages and seconds per step (``tcc compile``).
    """
    import contextlib

    from backends.elector.mapping import map_function
    from backends.elector.tiling import schedule_function

    simulate = simulator(sim)
    stage = stage or (lambda label: contextlib.nullcontext())
    times = times if times is not None else {}
    t0 = time.perf_counter()
    with stage("mapping"):
        if mapping is None:
            forced = {"tile": tile, "order": order} if tile is not None else {}
            mappings, plan = map_function(static, accelerator, objective, respect_attributes,
                                          check, **forced)
        else:
            mappings, plan = mapping
        mapped = schedule_function(static, accelerator, mappings, pipeline, plan)
    times["schedule"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with stage(f"simulating ({sim})"):
        if sim == "analytical" and not timeline:
            result = simulate(mapped, accelerator, timeline=False)
        else:
            result = simulate(mapped, accelerator)
    times["simulate"] = time.perf_counter() - t0
    return result, mapped


def evaluate(static, accelerator: Accelerator, objective: str = MAPPER_OBJECTIVE,  # noqa: ANN001
             respect_attributes: bool = True, check: bool = False) -> SimulationResult:
    """Map (cached per op signature and design) and simulate analytically:
    :func:`evaluate_mapped` without the timeline, its result only."""
    return evaluate_mapped(static, accelerator, objective, respect_attributes, check,
                           timeline=False)[0]


# --------------------------------------------------------------------------- decoders


@dataclass(frozen=True)
class DecodePlan:
    """What a decoder run simulates: the prefill of ``context`` prompt tokens
    and ``steps`` decode steps; step ``j`` (1-based) feeds one token per
    sequence over a cache of ``context + j - 1`` tokens.  ``cache_lengths``
    are the cache lengths of the steps actually simulated (the others are
    interpolated linearly between their neighbours).  ``cache_inputs`` name
    the graph inputs holding the cache (key and value per layer)."""

    context: int
    steps: int
    cache_lengths: tuple[int, ...]
    cache_inputs: tuple[str, ...]
    layers: int
    kv_heads: int
    head_dim: int
    prefill: bool = True
    kv_cache: str = "auto"          # where the cache lives between steps (KV_CACHE_PLACEMENTS)
    weights: str = "auto"           # where the weights live between steps (WEIGHT_PLACEMENTS)

    @property
    def step_cache_lengths(self) -> list[int]:
        return [self.context + j for j in range(self.steps)]


#: ``--kv-cache``: ``auto`` keeps the cache in the activation buffer between
#: steps while it fits there and in main memory once it does not;
#: ``main-memory`` always there; ``on-chip`` always in the activation buffer
#: (refused when it does not fit).
KV_CACHE_PLACEMENTS = ("auto", "main-memory", "on-chip")


#: ``--decode-weights``: ``auto`` keeps the weights in the weight buffer between
#: decode steps when they all fit there (the prefill, or the step before, left
#: them there); ``main-memory`` loads them from main memory every step.  The
#: prefill always loads them (a cold start).
WEIGHT_PLACEMENTS = ("auto", "main-memory")


def cache_on_chip(plan: DecodePlan, past: int, bytes_per_token: float,
                  capacity: float) -> bool:
    """Whether the cache of ``past`` tokens lives in the activation buffer
    (``capacity`` bytes) at the start of a decode step."""
    if plan.kv_cache == "main-memory":
        return False
    if plan.kv_cache == "on-chip":
        return True
    return bytes_per_token * past <= capacity


def replace_plan(plan: DecodePlan, cache_lengths: tuple[int, ...]) -> DecodePlan:
    from dataclasses import replace

    return replace(plan, cache_lengths=cache_lengths)


def decode_cache_lengths(context: int, steps: int, samples: int | None) -> tuple[int, ...]:
    """Cache lengths to simulate: every step's when ``samples`` is None or
    at least ``steps``, else ``samples`` (>= 2) evenly spaced lengths
    including the first (``context``) and the last (``context + steps - 1``)."""
    last = context + steps - 1
    if samples is None or samples >= steps:
        return tuple(range(context, last + 1))
    if samples < 2:
        raise UserError(f"--decode-samples {samples}: interpolating {steps} decode steps needs "
                        "at least 2 simulated cache lengths (the first and the last)")
    picked = {context + round(i * (steps - 1) / (samples - 1)) for i in range(samples)}
    return tuple(sorted(picked))


def append_cache_outputs(module: Module, cache_inputs: tuple[str, ...] | list[str]) -> int:
    """Make a decode step append to its cache instead of copying it.

    An exported decode step returns ``present = concat(past, new)``: the
    whole cache, rewritten every step.  A KV-cache implementation writes
    only the new token's keys and values in place.  Each function result
    that is a ``tensor.concat`` whose first operand is a cache input becomes
    that concat's other operand (the new rows); the concat stays as the
    attention's operand.  Returns how many results were rewritten."""
    func = module.function("forward")
    cache_args = {id(arg) for arg in func.args if arg.name in set(cache_inputs)}
    outputs = list(func.outputs)
    changed = 0
    for index, value in enumerate(outputs):
        op = value.producer if hasattr(value, "producer") else None
        if op is None or op.name != "tensor.concat" or len(op.operands) != 2:
            continue
        if id(op.operands[0]) in cache_args:
            outputs[index] = op.operands[1]
            changed += 1
    if changed:
        func.set_outputs(outputs, list(func.result_names))
    return changed


def cache_traffic(outcome: CompileOutcome, cache_inputs: tuple[str, ...] | list[str]
                  ) -> dict[str, list[float]]:
    """Bytes of the KV cache moved per level in one simulated step: the
    cache inputs, the ops that read them directly (the concatenation that
    appends the new rows) and their results, and the function results
    (the appended rows, or the whole cache after a prefill).  Level ->
    ``[read, written]``."""
    from backends.elector.schedule import LEVELS

    func = outcome.module.function("forward")
    names = set(cache_inputs)
    cache_ids = {id(arg) for arg in func.args if arg.name in names}
    returned = {id(v) for v in func.outputs}
    for index, op in enumerate(func):
        if op.name == "func.return":
            continue
        reads_cache = any(id(v) in cache_ids for v in op.operands)
        for k, res in enumerate(op.results):
            if reads_cache or id(res) in returned:
                if id(res) in returned and res.type.rank != 4:
                    continue               # logits: not the cache
                names.add(f"{op.name}#{index}" + (f".{k}" if len(op.results) > 1 else ""))
    out = {level: [0.0, 0.0] for level in LEVELS}
    for op in outcome.mapped.ops:
        for t in op.operands:
            if t.value not in names or t.role == "scores":
                continue
            out["main_memory"][0] += t.main_memory_read_bytes
            out["main_memory"][1] += t.main_memory_write_bytes
            out[t.level][0] += t.buffer_read_bytes
            out[t.level][1] += t.buffer_write_bytes
    return out


@dataclass
class DecodeOutcome:
    """The prefill outcome (None without a prefill graph), the decode-step
    outcomes by cache length, and the :class:`~backends.elector.report.DecodeReport`."""

    prefill: CompileOutcome | None
    steps: dict[int, CompileOutcome]
    report: object
    seconds: dict[str, float] = field(default_factory=dict)


def compile_decode(build, options: CompileOptions, plan: DecodePlan,  # noqa: ANN001
                   accelerator: Accelerator | None = None) -> DecodeOutcome:
    """Compile a decoder's prefill and decode steps (see :class:`DecodePlan`).

    ``build(tokens, past)`` returns a fresh IR module: ``past == 0`` the
    prefill graph bound to ``tokens = plan.context`` prompt tokens, else the
    decode-step graph bound to one token over a cache of ``past`` tokens.
    Each is compiled by :func:`compile_module` with ``options`` (its batch;
    ``seq`` set to the tokens of the step); decode steps first get
    :func:`append_cache_outputs`."""
    from dataclasses import replace

    from backends.elector.report import DecodeReport
    from backends.elector.target import build_target

    if options.train:
        raise UserError("--train does not apply to a decoder's prefill and decode steps; "
                        "drop --train, or compile a training step without --context/--decode-steps")
    if plan.kv_cache not in KV_CACHE_PLACEMENTS:
        raise UserError(f"unknown --kv-cache {plan.kv_cache!r}; accepted: "
                        + ", ".join(KV_CACHE_PLACEMENTS))
    if accelerator is None:     # parsed once here; every step's compile_module reuses it
        accelerator = build_target(options.hw).accelerator
    from backends.elector.mapping import format_bytes
    from backends.elector.tiling import ATTR_RESIDENT_ARGS

    per_token = (2 * plan.layers * plan.kv_heads * plan.head_dim * (options.batch or 1)
                 * accelerator.data_width_bits / 8)
    capacity = accelerator.activation_buffer.size_bytes
    last = plan.context + plan.steps - 1
    if plan.kv_cache == "on-chip" and per_token * last > capacity:
        raise UserError(
            f"--kv-cache on-chip: the cache of {last:,} tokens takes {format_bytes(per_token * last)}"
            f" ({format_bytes(per_token)} per token), more than the "
            f"{format_bytes(capacity)} activation buffer of {accelerator.name} (it holds "
            f"{int(capacity // per_token):,} tokens); use --kv-cache auto or main-memory, or "
            "fewer tokens")
    if plan.kv_cache == "auto":
        fit = int(capacity // per_token)
        if plan.cache_lengths[0] <= fit < plan.cache_lengths[-1] and fit not in plan.cache_lengths:
            # the step where the cache leaves the buffer: simulate both sides of it
            extra = {fit, fit + 1} & set(plan.step_cache_lengths)
            plan = replace_plan(plan, tuple(sorted(set(plan.cache_lengths) | extra)))
    times: dict[str, float] = {"import": 0.0, "compile": 0.0}
    prefill = None
    if plan.prefill:
        t0 = time.perf_counter()
        module = build(plan.context, 0)
        times["import"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        prefill = compile_module(module, replace(options, seq=plan.context), accelerator)
        prefill.report.notes.append(f"prefill: {plan.context} prompt tokens per sequence from an "
                                    "empty cache; its latency is the time to first token")
        times["compile"] += time.perf_counter() - t0
    if plan.weights not in WEIGHT_PLACEMENTS:
        raise UserError(f"unknown --decode-weights {plan.weights!r}; accepted: "
                        + ", ".join(WEIGHT_PLACEMENTS))
    steps: dict[int, CompileOutcome] = {}
    appended: dict[int, int] = {}
    weight_bytes = None
    weights_on_chip = False
    for past in plan.cache_lengths:
        t0 = time.perf_counter()
        module = build(1, past)
        if weight_bytes is None:
            weight_bytes = sum(p.type.numel for p in module.params.values()) \
                * accelerator.data_width_bits / 8
            weights_on_chip = (plan.weights == "auto"
                               and weight_bytes <= accelerator.weight_buffer.size_bytes)
        appended[past] = append_cache_outputs(module, plan.cache_inputs)
        if cache_on_chip(plan, past, per_token, capacity):
            module.attributes = module.attributes.with_(
                **{ATTR_RESIDENT_ARGS: tuple(plan.cache_inputs)})
        times["import"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        steps[past] = compile_module(module, replace(options, seq=1,
                                                     weights_on_chip=weights_on_chip),
                                     accelerator)
        steps[past].report.notes.append(
            f"decode step: 1 token per sequence over a cache of {past} tokens"
            + (" (appended in place)" if appended[past] else "") + "; the cache starts in "
            + ("the activation buffer" if cache_on_chip(plan, past, per_token, capacity)
               else "main memory") + ", the weights in "
            + ("the weight buffer" if weights_on_chip else "main memory"))
        times["compile"] += time.perf_counter() - t0
    traffic = {past: cache_traffic(outcome, plan.cache_inputs) for past, outcome in steps.items()}
    prefill_traffic = cache_traffic(prefill, ()) if prefill is not None else None
    placement = {past: ("activation_buffer" if cache_on_chip(plan, past, per_token, capacity)
                        else "main_memory") for past in plan.cache_lengths}
    report = DecodeReport(
        placement=placement, weight_bytes=weight_bytes or 0.0,
        weight_buffer_bytes=accelerator.weight_buffer.size_bytes,
        weights_on_chip=weights_on_chip,
        model=options.model_name, source=options.source, design=accelerator.name,
        design_hash=steps[plan.cache_lengths[0]].report.design_hash,
        clock_hz=accelerator.clock_hz, tool_version=options.tool_version,
        batch=options.batch, plan=plan,
        bytes_per_element=accelerator.data_width_bits / 8,
        activation_buffer_bytes=accelerator.activation_buffer.size_bytes,
        prefill=prefill.report if prefill is not None else None,
        steps={past: outcome.report for past, outcome in steps.items()},
        cache_traffic=traffic, prefill_cache_traffic=prefill_traffic,
        appended=appended, shape_sources=list(options.shape_sources))
    return DecodeOutcome(prefill, steps, report, times)
