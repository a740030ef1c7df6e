"""Search strategies behind one ask/tell interface (:class:`Strategy`), and their registry.

=============  ==========================================================
name           what it is
=============  ==========================================================
``random``     uniform random (exhaustive, without replacement, on small spaces)
``evolution``  regularised (aging) evolution
``boshcode``   BOSHCODE-style neural surrogate + GOBI (imports torch)
``tpe``        optuna's TPE sampler (external baseline)
``nsga2``      optuna's NSGA-II (multi-objective; external baseline)
=============  ==========================================================

The registry works like the pass registry (:mod:`transcode_ir.passes`): a
strategy is described by a frozen dataclass of its options
(:class:`StrategyOptions`: a class variable ``name``, options as typed fields
made with :func:`~transcode_ir.passes.option`), registered with
:func:`register_strategy`.  The same text form reaches the command line and
the Python API -- ``boshcode{initial=8,patience=10}`` -- parsed by the pass
options' own parser (typed, exact floats, one error naming the option and what
is accepted) and printed back canonically (options at their defaults
omitted), as a pipeline element is::

    spec = parse_strategy("boshcode{initial=8,patience=10}")   # BoshcodeOptions(...)
    str(spec)                                                   # 'boshcode{initial=8,patience=10}'
    search = spec.build(space, objective, seed=0)               # the Strategy object

Registering an options class is cheap: the strategy's module (torch, optuna)
is imported by :meth:`StrategyOptions.build` only.  :func:`make_strategy`
builds one by name (or text form) with keyword overrides.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from tools.codesign.strategies.base import Observation, Strategy
from transcode_ir.errors import UserError
from transcode_ir.passes import option

__all__ = [
    "STRATEGIES",
    "BoshcodeOptions",
    "EvolutionOptions",
    "NsgaOptions",
    "Observation",
    "RandomOptions",
    "Strategy",
    "StrategyOptions",
    "TpeOptions",
    "make_strategy",
    "parse_strategy",
    "register_strategy",
    "registered_strategies",
]


@dataclass(frozen=True)
class StrategyOptions:
    """Base class of a strategy's options (see the module docstring).

    Subclasses set ``name``, declare options as fields and implement
    :meth:`build`.  The first docstring line is the one-line description
    ``tcc sweep --list-strategies`` shows."""

    name: ClassVar[str] = ""

    def build(self, space: Any, objective: Any, seed: int = 0) -> Strategy:
        raise NotImplementedError(f"strategy {self.name!r} does not implement build()")

    def options(self) -> dict[str, Any]:
        """Every option by field name (what the strategy object receives)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults (what a sweep records)."""
        from transcode_ir.passes import pass_options

        return {o.field: getattr(self, o.field) for o in pass_options(type(self))  # type: ignore[arg-type]
                if o.required or getattr(self, o.field) != o.default}

    def __str__(self) -> str:
        from transcode_ir.passes import format_pass

        return format_pass(self)  # type: ignore[arg-type]

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else ""


_STRATEGIES: dict[str, type[StrategyOptions]] = {}


def register_strategy(cls: type[StrategyOptions]) -> type[StrategyOptions]:
    """Class decorator: make a strategy's options class known by its ``name``."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise ValueError(f"strategy name {name!r} must be kebab-case")
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"strategy {name!r}: options must be a frozen dataclass")
    existing = _STRATEGIES.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"strategy {name!r} is registered twice ({existing.__module__} and "
                         f"{cls.__module__})")
    _STRATEGIES[name] = cls
    return cls


def registered_strategies() -> dict[str, type[StrategyOptions]]:
    """Name -> options class of every registered strategy."""
    return dict(_STRATEGIES)


_ELEMENT = re.compile(r"\s*([A-Za-z0-9_\-]+)\s*(?:\{(.*)\})?\s*\Z", re.DOTALL)


def parse_strategy(text: str | StrategyOptions, **overrides: Any) -> StrategyOptions:
    """A strategy's options from its text form (``boshcode{initial=8}``) or an
    options object, with keyword ``overrides`` (field names) on top."""
    from transcode_ir.passes import PipelineError, _instantiate

    if isinstance(text, StrategyOptions):
        spec = text
    else:
        match = _ELEMENT.match(str(text))
        if match is None or str(text).count("{") != str(text).count("}"):
            raise UserError(f"strategy {text!r}: expected NAME or NAME{{option=value,...}}, e.g. "
                            "boshcode{initial=8,patience=10}; accepted names: "
                            + ", ".join(_STRATEGIES))
        name, body = match.group(1).lower(), match.group(2) or ""
        cls = _STRATEGIES.get(name)
        if cls is None:
            raise UserError(f"unknown strategy {name!r}; accepted: {', '.join(_STRATEGIES)}")
        try:   # the pass options' parser: typed values, the same messages
            spec = _instantiate(cls, body)  # type: ignore[arg-type]
        except PipelineError as err:
            raise UserError(str(err).replace(f"pass '{name}'", f"strategy '{name}'")
                            .replace("this pass takes", "this strategy takes")) from None
    if overrides:
        fields = {f.name for f in dataclasses.fields(spec)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise UserError(f"strategy {spec.name!r} has no option {unknown[0]!r}; accepted: "
                            + (", ".join(sorted(fields)) or "none"))
        try:
            spec = dataclasses.replace(spec, **overrides)
        except (TypeError, ValueError) as err:
            raise UserError(f"strategy {spec.name!r}: {err}") from None
    return spec


def make_strategy(name: str | StrategyOptions, space: Any, objective: Any, seed: int = 0,
                  **options: Any) -> Strategy:
    """The strategy ``name`` (a registered name, its text form or an options
    object) with keyword ``options`` on top, built for ``space``."""
    return parse_strategy(name, **options).build(space, objective, seed)


# --------------------------------------------------------------------------- built-ins


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@register_strategy
@dataclass(frozen=True)
class RandomOptions(StrategyOptions):
    """Uniform random search (exhaustive, without replacement, on small spaces)."""

    name: ClassVar[str] = "random"
    enumerate_limit: int = option(20_000, "walk the whole space shuffled when it has at most "
                                          "this many points")

    def __post_init__(self) -> None:
        _check(self.enumerate_limit >= 0, "enumerate-limit must be >= 0")

    def build(self, space: Any, objective: Any, seed: int = 0) -> Strategy:
        from tools.codesign.strategies.simple import RandomStrategy

        return RandomStrategy(space, objective, seed, **self.options())


@register_strategy
@dataclass(frozen=True)
class EvolutionOptions(StrategyOptions):
    """Regularised (aging) evolution, Real et al. 2019."""

    name: ClassVar[str] = "evolution"
    population: int = option(32, "members kept (the oldest leaves)")
    sample: int = option(8, "members drawn per tournament")
    crossover: float = option(0.1, "probability that a child mixes two winners")

    def __post_init__(self) -> None:
        _check(self.population >= 1 and self.sample >= 1, "population and sample must be >= 1")
        _check(0.0 <= self.crossover <= 1.0, f"crossover is a probability, got {self.crossover}")

    def build(self, space: Any, objective: Any, seed: int = 0) -> Strategy:
        from tools.codesign.strategies.simple import EvolutionStrategy

        return EvolutionStrategy(space, objective, seed, **self.options())


@register_strategy
@dataclass(frozen=True)
class BoshcodeOptions(StrategyOptions):
    """BOSHCODE-style neural surrogate with uncertainty and GOBI (imports torch)."""

    name: ClassVar[str] = "boshcode"
    initial: int = option(24, "random points before the surrogate proposes")
    k: float = option(0.5, "weight of the uncertainty in the acquisition mu + k sigma")
    hidden: int = option(64, "hidden width of the surrogate networks")
    dropout: float = option(0.1, "teacher dropout (Monte-Carlo uncertainty)")
    mc_samples: int = option(16, "Monte-Carlo dropout passes")
    epochs: int = option(200, "training steps the first time")
    warm_epochs: int = option(50, "training steps after each later round")
    gobi_starts: int = option(8, "gradient-search starts per round")
    gobi_steps: int = option(40, "gradient steps per start")
    pool: int = option(256, "random candidates pooled with GOBI's")
    patience: int | None = option(None, "stop when the best has not improved for this many "
                                        "rounds (the paper: 10; none: run the budget)")

    def __post_init__(self) -> None:
        _check(self.initial >= 1, "initial must be >= 1")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        for label in ("hidden", "mc_samples", "epochs", "gobi_starts", "pool"):
            _check(getattr(self, label) >= 1, f"{label.replace('_', '-')} must be >= 1")
        _check(self.warm_epochs >= 0 and self.gobi_steps >= 0,
               "warm-epochs and gobi-steps must be >= 0")
        _check(self.patience is None or self.patience >= 1, "patience must be >= 1 (or none)")

    def build(self, space: Any, objective: Any, seed: int = 0) -> Strategy:
        from tools.codesign.strategies.boshcode import BoshcodeStrategy

        return BoshcodeStrategy(space, objective, seed, **self.options())


@register_strategy
@dataclass(frozen=True)
class TpeOptions(StrategyOptions):
    """optuna's TPE sampler (external baseline; single objective)."""

    name: ClassVar[str] = "tpe"
    startup: int = option(20, "random trials before TPE models the space")

    def __post_init__(self) -> None:
        _check(self.startup >= 0, "startup must be >= 0")

    def build(self, space: Any, objective: Any, seed: int = 0) -> Strategy:
        from tools.codesign.strategies.optuna_search import OptunaStrategy

        return OptunaStrategy(space, objective, seed, sampler="tpe", startup=self.startup)


@register_strategy
@dataclass(frozen=True)
class NsgaOptions(StrategyOptions):
    """optuna's NSGA-II (multi-objective; external baseline)."""

    name: ClassVar[str] = "nsga2"
    population: int = option(32, "population size")

    def __post_init__(self) -> None:
        _check(self.population >= 2, "population must be >= 2")

    def build(self, space: Any, objective: Any, seed: int = 0) -> Strategy:
        from tools.codesign.strategies.optuna_search import OptunaStrategy

        return OptunaStrategy(space, objective, seed, sampler="nsga2",
                              population=self.population)


#: The built-in strategies' names (users add more with :func:`register_strategy`).
STRATEGIES: tuple[str, ...] = tuple(_STRATEGIES)
