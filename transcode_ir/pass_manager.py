"""The pass manager and its instruments.

:class:`PassManager` runs a pipeline over a module.  By default it verifies
the input once and the module after every pass, so a pass that produces
invalid IR is named at once (``verify_each=False`` turns that off).
Verification after a pass skips the functions that the pass left exactly as
they were last verified (see :class:`_IncrementalVerifier`): on a training
graph most passes touch few functions, and verifying is otherwise the
larger part of a pipeline's time.  Any
failure -- an exception in a pass or IR that does not verify after it -- is
raised as :class:`PassFailure`, which names the failing pass, its position
in the pipeline and the passes that ran before it.

Instruments (as in MLIR and TVM) observe the run without the passes knowing:

* :class:`PrintIRAfterAll`, :class:`PrintIRAfterPass` (named passes),
  :class:`PrintIRAfterChange`, :class:`PrintIRAfterFailure` print the module
  in its text form, under an MLIR-style header
  ``// -----// IR Dump After canonicalize (1/4) //----- //``;
* :class:`TimePasses` times each pass (and the verification after it) and
  prints a table when the pipeline ends: wall times, their share, and the
  CPU time of the process (on a shared machine wall time includes waiting
  for a core).

An instrument is any object with some of the hooks of
:class:`PassInstrument`; all hooks are optional.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from transcode_ir.core import Function, Module
from transcode_ir.errors import UserError
from transcode_ir.passes import (
    Pass,
    PassResult,
    Pipeline,
    format_pass,
    format_pipeline,
    parse_pipeline,
)
from transcode_ir.printer import print_module
from transcode_ir.verifier import verify_module

__all__ = [
    "PassFailure",
    "PassInstrument",
    "PassManager",
    "PassRecord",
    "PipelineRun",
    "PrintIRAfterAll",
    "PrintIRAfterChange",
    "PrintIRAfterFailure",
    "PrintIRAfterPass",
    "TimePasses",
    "run_pipeline",
]


class PassFailure(UserError):
    """A pass raised an exception, or left IR that does not verify.

    ``pass_name`` and ``index`` (0-based) locate the pass in the pipeline;
    ``ran_before`` lists the passes that ran before it; ``cause`` is the
    original exception (also chained as ``__cause__``).
    """

    def __init__(self, message: str, pass_name: str, index: int, ran_before: list[str],
                 cause: BaseException) -> None:
        super().__init__(message)
        self.pass_name = pass_name
        self.index = index
        self.ran_before = ran_before
        self.cause = cause


@dataclass
class PassRecord:
    """What happened when one pass ran."""

    pass_text: str          # the pipeline element, with options
    changed: bool
    seconds: float          # wall time of the pass
    verify_seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the pass and its verification (this process)


@dataclass
class PipelineRun:
    """The result of :meth:`PassManager.run`: the module (the same object that
    was passed in unless a pass returned a new one), whether anything changed,
    and one record per pass."""

    module: Module
    changed: bool
    records: list[PassRecord] = field(default_factory=list)
    pipeline: str = ""


class PassInstrument:
    """Hooks called by the pass manager.  Subclass and override what you need."""

    def before_pipeline(self, pipeline: Pipeline, module: Module) -> None:
        pass

    def before_pass(self, pass_: Pass, index: int, module: Module) -> None:
        pass

    def after_pass(self, pass_: Pass, index: int, module: Module, record: PassRecord) -> None:
        pass

    def after_failure(self, pass_: Pass, index: int, module: Module, error: BaseException) -> None:
        pass

    def after_pipeline(self, module: Module, run: PipelineRun) -> None:
        pass


def _header(pass_: Pass, index: int, total: int, what: str = "After") -> str:
    return f"// -----// IR Dump {what} {format_pass(pass_)} ({index + 1}/{total}) //----- //"


class _Printer(PassInstrument):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.total = 0

    @property
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def before_pipeline(self, pipeline: Pipeline, module: Module) -> None:
        self.total = len(pipeline)

    def dump(self, pass_: Pass, index: int, module: Module, what: str = "After") -> None:
        print(_header(pass_, index, self.total, what), file=self.out)
        try:
            text = print_module(module)
        except Exception as err:  # IR broken badly enough that it does not print
            text = f"// (the IR cannot be printed: {type(err).__name__}: {err})\n"
        self.out.write(text)
        self.out.flush()


class PrintIRAfterAll(_Printer):
    """Print the module after every pass."""

    def after_pass(self, pass_: Pass, index: int, module: Module, record: PassRecord) -> None:
        self.dump(pass_, index, module)


class PrintIRAfterPass(_Printer):
    """Print the module after each run of the named passes."""

    def __init__(self, names: Sequence[str] | str, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.names = {names} if isinstance(names, str) else set(names)

    def after_pass(self, pass_: Pass, index: int, module: Module, record: PassRecord) -> None:
        if pass_.name in self.names:
            self.dump(pass_, index, module)


class PrintIRAfterChange(_Printer):
    """Print the module after every pass that reports a change."""

    def after_pass(self, pass_: Pass, index: int, module: Module, record: PassRecord) -> None:
        if record.changed:
            self.dump(pass_, index, module)


class PrintIRAfterFailure(_Printer):
    """Print the module as the failing pass left it."""

    def after_failure(self, pass_: Pass, index: int, module: Module, error: BaseException) -> None:
        self.dump(pass_, index, module, "After Failure of")


class TimePasses(PassInstrument):
    """Time every pass and the verification after it; print a table at the end."""

    def __init__(self, stream: TextIO | None = None, print_at_end: bool = True) -> None:
        self.stream = stream
        self.print_at_end = print_at_end
        self.records: list[PassRecord] = []
        self.total_seconds = 0.0
        self._start = 0.0

    def before_pipeline(self, pipeline: Pipeline, module: Module) -> None:
        self.records = []
        self._start = time.perf_counter()

    def after_pass(self, pass_: Pass, index: int, module: Module, record: PassRecord) -> None:
        self.records.append(record)

    def after_pipeline(self, module: Module, run: PipelineRun) -> None:
        self.total_seconds = time.perf_counter() - self._start
        if self.print_at_end:
            out = self.stream if self.stream is not None else sys.stderr
            print(self.table(), file=out)

    def table(self) -> str:
        """The timing table: one row per pass, in pipeline order, and a total."""
        width = max([len(r.pass_text) for r in self.records] + [len("pass"), len("total")])
        total = self.total_seconds or sum(r.seconds + r.verify_seconds for r in self.records)
        lines = ["===" + "-" * (width + 40) + "===", "  ... Pass execution timing report ...",
                 "===" + "-" * (width + 40) + "===",
                 f"  {'pass':<{width}}  {'changed':>7}  {'pass (s)':>9}  "
                 f"{'verify (s)':>10}  {'%':>6}  {'cpu (s)':>8}"]
        for r in self.records:
            share = 100.0 * (r.seconds + r.verify_seconds) / total if total else 0.0
            lines.append(f"  {r.pass_text:<{width}}  {'yes' if r.changed else 'no':>7}  "
                         f"{r.seconds:9.4f}  {r.verify_seconds:10.4f}  {share:6.1f}  "
                         f"{r.cpu_seconds:8.4f}")
        lines.append(f"  {'total':<{width}}  {'':>7}  {sum(r.seconds for r in self.records):9.4f}  "
                     f"{sum(r.verify_seconds for r in self.records):10.4f}  {100.0:6.1f}  "
                     f"{sum(r.cpu_seconds for r in self.records):8.4f}")
        lines.append(f"  wall time of the pipeline: {total:.4f} s")
        return "\n".join(lines)


class _IncrementalVerifier:
    """Verifies a module after a pass, skipping functions the pass left as
    they were verified last time.

    A function's fingerprint holds its ops (by identity), their names,
    attributes and result types (both immutable, compared by value), their
    operands (by identity), and the function's arguments and result names.
    Any edit through the IR API changes it, so a function whose fingerprint
    is unchanged is the function that verified before.  When the parameters
    change (their names, types or data arrays) everything is verified again,
    since ``tensor.param`` ops check against them.  The fingerprints keep
    references to the objects, so an identity is never reused by the garbage
    collector while it is being compared.
    """

    def __init__(self) -> None:
        self.params: tuple[tuple[object, ...], ...] | None = None
        self.functions: dict[str, tuple[object, ...]] = {}
        self.module_id: int | None = None

    @staticmethod
    def _function_key(func: Function) -> tuple[object, ...]:
        ops = tuple([(op, op.name, op.attributes, tuple(op.operands),
                      tuple([r.type for r in op.results])) for op in func])
        args = tuple((a, a.name, a.type) for a in func.args)
        return (func, ops, args, tuple(func.result_names), func.module)

    @staticmethod
    def _params_key(module: Module) -> tuple[tuple[object, ...], ...]:
        return tuple((name, p.type, p.kind, p.data) for name, p in module.params.items())

    def verify(self, module: Module) -> None:
        from transcode_ir.verifier import verify_function

        params = self._params_key(module)
        same_module = self.module_id == id(module) and len(params) == len(self.params or ()) \
            and all(a[:3] == b[:3] and a[3] is b[3] for a, b in zip(params, self.params or ()))
        keys = {name: self._function_key(f) for name, f in module.functions.items()}
        if not same_module:
            verify_module(module)
        else:
            for name, func in module.functions.items():
                if self.functions.get(name) != keys[name]:
                    if func.module is not module:
                        verify_module(module)          # reports the broken back-pointer
                    verify_function(func)
        self.module_id, self.params, self.functions = id(module), params, keys


class PassManager:
    """Runs a pipeline (a string or a sequence of passes) over modules.

    >>> pm = PassManager("canonicalize,cse,dce", instruments=[TimePasses()])
    >>> run = pm.run(module)          # run.module, run.changed, run.records
    """

    def __init__(self, pipeline: str | Sequence[Pass], *, verify_each: bool = True,
                 verify_input: bool | None = None,
                 instruments: Sequence[PassInstrument] = (), pause_gc: bool = True) -> None:
        self.pipeline = parse_pipeline(pipeline)
        self.pause_gc = pause_gc
        self.verify_each = verify_each
        self.verify_input = verify_each if verify_input is None else verify_input
        self.instruments = list(instruments)

    def add_instrument(self, instrument: PassInstrument) -> None:
        self.instruments.append(instrument)

    def _notify(self, hook: str, *args: object) -> None:
        for inst in self.instruments:
            fn = getattr(inst, hook, None)
            if fn is not None:
                fn(*args)

    def run(self, module: Module) -> PipelineRun:
        """Run the pipeline over ``module``.

        With ``pause_gc`` (the default) Python's cyclic garbage collector is
        paused while the passes run and restored afterwards: IR objects form
        reference cycles (an op's results point back to it, values list their
        uses), so every full collection walks the whole IR; on a BERT-Base
        training graph that is a quarter of the pipeline's CPU time.
        """
        if not self.pause_gc or not gc.isenabled():
            return self._run(module)
        gc.disable()
        try:
            return self._run(module)
        finally:
            gc.enable()

    def _run(self, module: Module) -> PipelineRun:
        text = format_pipeline(self.pipeline)
        verifier = _IncrementalVerifier()
        if self.verify_input:
            try:
                verifier.verify(module)
            except UserError as err:
                raise UserError(f"the input IR does not verify (before any pass of pipeline "
                                f"'{text}'): {err}") from err
        run = PipelineRun(module, False, [], text)
        self._notify("before_pipeline", self.pipeline, module)
        names = [format_pass(p) for p in self.pipeline]
        for index, pass_ in enumerate(self.pipeline):
            self._notify("before_pass", pass_, index, run.module)
            cpu_start = time.process_time()
            start = time.perf_counter()
            try:
                result = pass_.apply(run.module)
            except Exception as err:
                self._notify("after_failure", pass_, index, run.module, err)
                raise self._failure(index, names, err, "failed") from err
            seconds = time.perf_counter() - start
            if isinstance(result, PassResult):
                changed = bool(result.changed)
                if result.module is not None:
                    run.module = result.module
            elif isinstance(result, bool):
                changed = result
            else:
                problem = TypeError(f"apply() returned {type(result).__name__}; a pass returns a "
                                    "bool (changed or not) or a PassResult")
                self._notify("after_failure", pass_, index, run.module, problem)
                raise self._failure(index, names, problem, "failed")
            record = PassRecord(names[index], changed, seconds)
            if self.verify_each:
                start = time.perf_counter()
                try:
                    verifier.verify(run.module)
                except UserError as err:
                    self._notify("after_failure", pass_, index, run.module, err)
                    raise self._failure(index, names, err,
                                        "produced IR that does not verify") from err
                record.verify_seconds = time.perf_counter() - start
            record.cpu_seconds = time.process_time() - cpu_start
            run.records.append(record)
            run.changed |= changed
            self._notify("after_pass", pass_, index, run.module, record)
        self._notify("after_pipeline", run.module, run)
        return run

    def _failure(self, index: int, names: list[str], err: BaseException, what: str) -> PassFailure:
        before = names[:index]
        if isinstance(err, UserError):
            cause = str(err)
        else:
            # A bug in the pass: say where it was raised so it can be found.
            frames = traceback.extract_tb(err.__traceback__)
            where = f" (raised at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            cause = f"{type(err).__name__}: {err}{where}"
        ran = ", ".join(before) if before else "none (it was the first)"
        message = (f"pass '{names[index]}' ({index + 1} of {len(names)}) {what}: {cause}\n"
                   f"  passes that ran before it: {ran}\n"
                   f"  pipeline: {format_pipeline(self.pipeline)}")
        return PassFailure(message, self.pipeline[index].name, index, before, err)


def run_pipeline(module: Module, pipeline: str | Sequence[Pass], *, verify_each: bool = True,
                 instruments: Sequence[PassInstrument] = ()) -> PipelineRun:
    """Parse ``pipeline`` and run it over ``module`` (a convenience wrapper)."""
    return PassManager(pipeline, verify_each=verify_each, instruments=instruments).run(module)
