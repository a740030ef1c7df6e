"""The torch DynaProp runtime: prune small activations and gradients at run time.

:class:`DynaProp` attaches to a torch model with hooks, without copying or
changing its parameters or its code:

* **forward** — a forward hook on every prune-point module replaces the
  module's output ``y`` by ``y`` with every element of ``|y| ≤ τ_I`` set to
  ``+0``; every other element is returned bit for bit.  The replacement is an
  autograd function (:class:`_PruneFunction`) whose backward is the exact
  derivative of pruning (zero where pruned, one elsewhere) — the same
  arithmetic as ``torch.nn.functional.hardshrink``.
* **backward** — the point's gradient ``∂L/∂y`` (with respect to its unpruned
  output, so already zero where the forward pass pruned) has every element of
  ``|g| ≤ τ_T`` set to zero before it reaches the producing layer, whose
  backward matrix products (``∂L/∂x = ∂L/∂y · W`` and ``∂L/∂W = ∂L/∂yᵀ · x``)
  read it.  For τ_I > 0 this happens inside the same autograd function; for
  τ_I = 0 a tensor hook on the output does it.
* **weight gradients** — a hook on each parameter (weight and bias) of every
  ``nn.Linear`` in the model prunes that parameter's gradient with τ_T as it
  is produced, before it is accumulated into ``.grad`` and before any
  clipping or optimizer step.

The elementwise work runs in fused prune-and-count kernels
(:mod:`frontends.dynaprop.kernels`: native C on dense float32 CPU tensors,
eager torch otherwise; both bit-identical).  Thresholds are compared in the
tensor's dtype (τ is rounded to float32 for a float32 tensor, as
``hardshrink`` does).  With τ = 0 nothing is rewritten (``|x| ≤ 0`` selects
only exact zeros, which are already zero; leaving them also keeps the sign bit
of ``-0.0``), so a model with every τ = 0 computes outputs and gradients
*equal* to the unwrapped model's.  NaN is never pruned (``|NaN| ≤ τ`` is
false) and counts as nonzero.

Counting: each point keeps the number of elements and of nonzeros, forward
and backward separately, and likewise each Linear parameter's gradient.  The
native kernels return the count of the pass that pruned (a host integer: the
tensor is on the host); the torch backend keeps an int64 tensor on the
tensor's device, accumulated with ``add_`` and synchronised only when
:meth:`DynaProp.statistics` is called.  The forward count is taken on the
pruned output (what the next matrix product reads), the backward count on the
gradient after τ_T pruning (what the producing layer's backward reads).

Prune points and their names
============================

By default the points are found **by structure** on the first forward call
(:mod:`frontends.dynaprop.tracing`): the torch calls of the model are traced
once and the matcher the IR pass uses (:func:`passes.dynaprop.find_structural_points`)
finds the projections feeding attention, scores, probabilities, context, the
attention output and the FFN's activation and output, in any model (BERT,
DistilBERT, GPT-2, T5, Llama, ``nn.TransformerEncoder``, ...).  Points are named
``layer.<i>.<role>`` -- the names the IR pass gives the exported model, so a
profile drives the pass -- and carry the module path of the call as a label.
Later calls prune at those call sites (module path, invocation, call name and
count).  ``points=`` names module outputs to prune instead (every listed module's
output; a user's own ``PrunePoint`` identity modules, or any module).  Profiles
have no module prefix (``encoder_prefix`` is ``""``).

Weight gradients: every parameter of an ``nn.Linear`` (or GPT-2 ``Conv1D``)
and every parameter a traced Linear call reads (``nn.MultiheadAttention``'s
packed projection).
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from frontends.dynaprop.kernels import (
    Count,
    count_nonzero,
    mask_gradient,
    prune,
    prune_gradient,
    resolve_backend,
)
from frontends.dynaprop.statistics import Density, DynaPropStatistics, PointStatistics
from transcode_ir.errors import UserError

__all__ = [
    "DEFAULT_EXCLUDE",
    "DynaProp",
    "PrunePointInfo",
    "find_prune_points",
    "prune_tensor",
]

#: Last path components that automatic discovery never makes prune points.
DEFAULT_EXCLUDE: tuple[str, ...] = ("classifier",)

#: ``observer(path, direction, tensor)``: sees each point's tensor before pruning.
Observer = Callable[[str, str, torch.Tensor], None]

#: The runtime attached to each model (at most one: two would prune twice).
_ATTACHED: weakref.WeakKeyDictionary[nn.Module, DynaProp] = weakref.WeakKeyDictionary()

_ROLE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("attention.self.query", "query"),
    ("attention.self.key", "key"),
    ("attention.self.value", "value"),
    ("attention.self.scores", "scores"),
    ("attention.self.probs", "probs"),
    ("attention.self.context", "context"),
    ("attention.output.dense", "attention_output"),
    ("output.dense", "output"),
    ("pooler.dense", "pooler"),
    ("input_projection", "input_projection"),
)


def prune_tensor(tensor: torch.Tensor, tau: float) -> torch.Tensor:
    """``tensor`` with every element of ``|x| ≤ tau`` set to zero (the others untouched).

    ``tau == 0`` returns ``tensor`` itself.  Differentiable: the gradient is
    zero where an element was pruned and passes unchanged elsewhere.
    """
    tau = check_threshold(tau, "tau")
    if tau == 0.0:
        return tensor
    return F.hardshrink(tensor, tau)


def check_threshold(value: object, label: str) -> float:
    """A finite threshold ≥ 0 as a float, else :class:`UserError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{label}: expected a number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise UserError(f"{label}: expected a finite number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class PrunePointInfo:
    """Where a prune point is: module path, role (``query``, ``scores``, ...), layer."""

    path: str
    role: str
    layer: int | None
    label: str = ""          # the module path of the op (structural points), for people


def _role_of(path: str) -> str:
    for suffix, role in _ROLE_SUFFIXES:
        if path == suffix or path.endswith("." + suffix):
            return role
    if re.search(r"(^|\.)intermediate\.dense(_\d+)?$", path):
        return "intermediate"
    return path.rsplit(".", 1)[-1]


def _layer_of(path: str) -> int | None:
    match = re.search(r"(?:^|\.)layer\.(\d+)\.", path)
    return int(match.group(1)) if match else None


def _zoo_encoders(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(prefix, module)`` of each zoo ``EncoderModel`` inside ``model`` (without importing it)."""
    found = []
    for name, module in model.named_modules():
        cls = type(module)
        if cls.__name__ == "EncoderModel" and cls.__module__ == "frontends.zoo.modeling":
            found.append((f"{name}." if name else "", module))
    return found


def find_prune_points(
    model: nn.Module, *example: object, **example_kwargs: object
) -> list[PrunePointInfo]:
    """The prune points of ``model`` found by structure (see :mod:`frontends.dynaprop.tracing`)
    on one forward call ``model(*example, **example_kwargs)`` (run without gradients).

    Names are ``layer.<i>.<role>``, the same the IR pass gives the imported model;
    ``label`` is the module path the call was made in."""
    from frontends.dynaprop.tracing import CallSites, discover

    sites = CallSites(model)
    try:
        with _no_fast_path():
            _, points, _ = discover(model, sites, example, example_kwargs)
    finally:
        sites.remove()
    return [PrunePointInfo(p.name, p.role, p.layer, p.label) for p in points]


class _no_fast_path:
    """Switch off nn.MultiheadAttention's fused inference path (its internals must be
    visible as torch calls) for the duration."""

    def __enter__(self) -> None:
        mha = getattr(torch.backends, "mha", None)
        self.before = mha.get_fastpath_enabled() if mha is not None else None
        if mha is not None:
            mha.set_fastpath_enabled(False)

    def __exit__(self, *exc: object) -> None:
        if self.before is not None:
            torch.backends.mha.set_fastpath_enabled(self.before)


@dataclass
class _Counter:
    """Counts of one tensor stream (forward, backward or a parameter's gradient).

    Nonzeros from the native kernels arrive as Python ints (CPU), those from
    the torch backend as int64 tensors on the tensor's device; both are
    summed without synchronising until :meth:`density`.
    """

    elements: int = 0
    calls: int = 0
    host_nonzeros: int = 0
    device_nonzeros: torch.Tensor | None = None

    def add(self, elements: int, nonzeros: Count | None) -> None:
        if nonzeros is None:
            return
        self.calls += 1
        self.elements += elements
        if isinstance(nonzeros, int):
            self.host_nonzeros += nonzeros
        elif self.device_nonzeros is None:
            self.device_nonzeros = nonzeros
        else:
            self.device_nonzeros.add_(nonzeros)

    def density(self) -> Density | None:
        if self.calls == 0:
            return None
        nonzeros = self.host_nonzeros
        if self.device_nonzeros is not None:
            nonzeros += int(self.device_nonzeros.item())
        return Density(self.elements, self.elements - nonzeros)


@dataclass
class _Point:
    info: PrunePointInfo
    tau_i: float = 0.0
    tau_t: float = 0.0
    forward: _Counter = field(default_factory=_Counter)
    backward: _Counter = field(default_factory=_Counter)


@dataclass
class _Parameter:
    name: str
    tau_t: float = 0.0
    gradient: _Counter = field(default_factory=_Counter)


class DynaProp:
    """DynaProp pruning attached to a torch model (see the module docstring).

    >>> runtime = DynaProp(model, tau_i=0.01, tau_t=1e-4)          # doctest: +SKIP
    >>> loss_fn(model(batch)).backward()                             # doctest: +SKIP
    >>> runtime.statistics().activation_sparsity                     # doctest: +SKIP
    >>> runtime.remove()                                # doctest: +SKIP  (or ``with``)

    ``tau_i`` / ``tau_t`` are one threshold for every point, or a mapping from
    point name (and, for ``tau_t``, Linear parameter name) to threshold;
    points a mapping does not name keep τ = 0.  Points are found by structure
    on the first forward call; ``points`` (module paths) prunes those modules'
    outputs instead.  ``exclude`` is accepted for compatibility and has no
    effect (structural points never include classifier heads);
    ``prune_weight_gradients=False`` leaves parameter gradients
    alone (and uncounted); ``count=False`` skips counting where it is not
    free.  ``observer`` (used by calibration) is called with each point's
    tensor before pruning: ``observer(path, "forward", y)`` and
    ``observer(path, "backward", ∂L/∂y)`` (∂L/∂y already forward-masked).
    ``backend`` picks the kernels: ``"auto"`` (native when they build),
    ``"native"`` or ``"torch"``.  Set :attr:`enabled` to ``False`` to pause
    pruning and counting without detaching.  At most one runtime is attached
    to a model at a time.
    """

    def __init__(
        self,
        model: nn.Module,
        tau_i: float | Mapping[str, float] = 0.0,
        tau_t: float | Mapping[str, float] = 0.0,
        *,
        points: Iterable[str] | None = None,
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        prune_weight_gradients: bool = True,
        count: bool = True,
        observer: Observer | None = None,
        backend: str = "auto",
    ) -> None:
        if _ATTACHED.get(model) is not None:
            raise UserError(
                f"{type(model).__name__} already has a DynaProp runtime attached; call its "
                "remove() (or leave its `with` block) before attaching another"
            )
        self.backend = resolve_backend(backend)
        self._native = self.backend == "native"
        self.model = model
        self.count = count
        self.observer = observer
        self.enabled = True
        self.encoder_prefix = ""
        self._points: dict[str, _Point] = {}
        self._parameters: dict[str, _Parameter] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._prune_weight_gradients = prune_weight_gradients
        self._pending: tuple[object, object] = (tau_i, tau_t)
        self._structural = points is None
        self._sites = None
        self._site_points: dict[str, _Point] = {}
        self._site_names: set[str] = set()
        self._mode = None
        self._depth = 0
        self._discovering = False
        modules = dict(model.named_modules())
        if self._structural:
            from frontends.dynaprop.tracing import CallSites

            # before CallSites' own root hook: discovery runs the model before its frame
            self._handles.append(model.register_forward_pre_hook(
                self._enter, with_kwargs=True, prepend=True))
            self._sites = CallSites(model)
            self._handles.append(model.register_forward_hook(self._exit, always_call=True))
            self._fast_path = _no_fast_path()
            self._fast_path.__enter__()
        else:
            infos = [PrunePointInfo(path, _role_of(path), _layer_of(path)) for path in points]
            if not infos:
                raise UserError(f"{type(model).__name__}: points= names no prune point")
            for info in infos:
                if info.path not in modules:
                    raise UserError(
                        f"prune point {info.path!r} is not a module of {type(model).__name__}"
                    )
                if info.path in self._points:
                    raise UserError(f"prune point {info.path!r} is named twice")
                self._points[info.path] = _Point(info)
            for path, point in self._points.items():
                handle = modules[path].register_forward_hook(
                    functools.partial(self._forward_hook, point)
                )
                self._handles.append(handle)
        if prune_weight_gradients:
            for module_path, module in modules.items():
                if not isinstance(module, nn.Linear) and type(module).__name__ != "Conv1D":
                    continue
                for leaf, parameter in module.named_parameters(recurse=False):
                    self._hook_parameter(f"{module_path}.{leaf}" if module_path else leaf,
                                         parameter)
        if not self._structural:
            try:
                self.set_thresholds(tau_i, tau_t)
            except UserError:
                self.remove()
                raise
        else:   # checked now for form; names are checked when the points are found
            for value, label in ((tau_i, "tau_i"), (tau_t, "tau_t")):
                if not isinstance(value, Mapping):
                    check_threshold(value, label)
        _ATTACHED[model] = self

    def _hook_parameter(self, name: str, parameter: nn.Parameter) -> None:
        if not parameter.requires_grad or name in self._parameters:
            return
        record = _Parameter(name)
        self._parameters[name] = record
        self._handles.append(parameter.register_hook(functools.partial(self._weight_hook,
                                                                       record)))

    # ------------------------------------------------------------ structural mode

    def _enter(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._discovering:
            return
        if self._depth == 0:
            if not self._site_points:
                self._discover(args, kwargs)
            from frontends.dynaprop.tracing import TraceMode

            self._mode = TraceMode(self._sites, self._at_call, self._site_names)
            self._mode.__enter__()
        self._depth += 1

    def _exit(self, module: nn.Module, args: tuple, output: object) -> None:
        if self._discovering or self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0 and self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None

    def _discover(self, args: tuple, kwargs: dict) -> None:
        from frontends.dynaprop.tracing import discover

        self._discovering = True
        try:
            nodes, points, weights = discover(self.model, self._sites, args, kwargs)
        finally:
            self._discovering = False
        if not points:
            raise UserError(
                f"{type(self.model).__name__} has no DynaProp prune points: no attention (a "
                "softmax over the last axis of a product of two activations) and no "
                "feed-forward block (a Linear d->f, an activation, a Linear f->d) in its "
                "forward pass")
        for p in points:
            point = _Point(PrunePointInfo(p.name, p.role, p.layer, p.label))
            self._points[p.name] = point
            self._site_points[nodes[p.node].handle] = point
        self._site_names = {key.rsplit("|", 1)[1].rsplit("#", 1)[0] for key in self._site_points}
        if self._prune_weight_gradients:
            names = {id(param): name for name, param in self.model.named_parameters()}
            for params in weights.values():
                for param in params:
                    if id(param) in names:
                        self._hook_parameter(names[id(param)], param)
        tau_i, tau_t = self._pending
        self.set_thresholds(tau_i, tau_t)

    def _at_call(self, key: str, output: torch.Tensor) -> torch.Tensor:
        point = self._site_points.get(key)
        if point is None or not self.enabled:
            return output
        replaced = self._apply(point, output)
        return output if replaced is None else replaced

    # ------------------------------------------------------------------ API

    @property
    def points(self) -> list[PrunePointInfo]:
        """The prune points, in the order they were found (structural points are found on
        the first forward call: empty before it)."""
        return [point.info for point in self._points.values()]

    @property
    def parameter_names(self) -> list[str]:
        """Names of the Linear parameters whose gradients are pruned and counted."""
        return list(self._parameters)

    def set_thresholds(
        self,
        tau_i: float | Mapping[str, float] | None = None,
        tau_t: float | Mapping[str, float] | None = None,
    ) -> None:
        """Change τ_I and/or τ_T (``None`` keeps the current value).  Before a structural
        runtime has found its points (the first forward call), the values are kept and
        applied then."""
        if self._structural and not self._points:
            old_i, old_t = self._pending
            self._pending = (old_i if tau_i is None else tau_i, old_t if tau_t is None else tau_t)
            return
        if tau_i is not None:
            values = _per_name(tau_i, list(self._points), "tau_i")
            for path, point in self._points.items():
                point.tau_i = values[path]
        if tau_t is not None:
            names = list(self._points) + list(self._parameters)
            values = _per_name(tau_t, names, "tau_t")
            for path, point in self._points.items():
                point.tau_t = values[path]
            for name, record in self._parameters.items():
                record.tau_t = values[name]

    def thresholds(self) -> tuple[dict[str, float], dict[str, float]]:
        """``(tau_i per point, tau_t per point and parameter)``."""
        tau_i = {path: point.tau_i for path, point in self._points.items()}
        tau_t = {path: point.tau_t for path, point in self._points.items()}
        tau_t.update({name: record.tau_t for name, record in self._parameters.items()})
        return tau_i, tau_t

    def reset(self) -> None:
        """Zero every counter."""
        for point in self._points.values():
            point.forward = _Counter()
            point.backward = _Counter()
        for record in self._parameters.values():
            record.gradient = _Counter()

    def statistics(self) -> DynaPropStatistics:
        """Counts since the last :meth:`reset` (synchronises the counters once)."""
        points = {
            path: PointStatistics(
                path=path,
                role=point.info.role,
                layer=point.info.layer,
                label=point.info.label,
                tau_i=point.tau_i,
                tau_t=point.tau_t,
                forward=point.forward.density(),
                backward=point.backward.density(),
            )
            for path, point in self._points.items()
        }
        gradients = {
            name: density
            for name, record in self._parameters.items()
            if (density := record.gradient.density()) is not None
        }
        return DynaPropStatistics(points, gradients)

    def remove(self) -> None:
        """Detach every hook; the model is exactly as before."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._sites is not None:
            self._sites.remove()
            self._sites = None
        if getattr(self, "_fast_path", None) is not None:
            self._fast_path.__exit__(None, None, None)
            self._fast_path = None
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        if _ATTACHED.get(self.model) is self:
            del _ATTACHED[self.model]

    def __enter__(self) -> DynaProp:  # noqa: PYI034 (final in practice)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # ---------------------------------------------------------------- hooks

    def _forward_hook(
        self, point: _Point, module: nn.Module, inputs: tuple[object, ...], output: object
    ) -> torch.Tensor | None:
        if not self.enabled:
            return None
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"DynaProp prune point {point.info.path!r} returned "
                f"{type(output).__name__}, expected a tensor"
            )
        return self._apply(point, output)

    def _apply(self, point: _Point, output: torch.Tensor) -> torch.Tensor | None:
        """Prune and count ``output`` at ``point``; the replacement, or None to keep it."""
        if self.observer is not None:
            self.observer(point.info.path, "forward", output.detach())
        if point.tau_i > 0.0:
            return _PruneFunction.apply(output, self, point)
        if self.count:
            point.forward.add(output.numel(), count_nonzero(output.detach(), self._native))
        if output.requires_grad:
            output.register_hook(functools.partial(self._gradient_hook, point))
        return None

    def _gradient_hook(self, point: _Point, gradient: torch.Tensor) -> torch.Tensor | None:
        """Backward at a point with τ_I = 0: τ_T pruning and counting of ∂L/∂y."""
        if not self.enabled:
            return None
        if self.observer is not None:
            self.observer(point.info.path, "backward", gradient.detach())
        pruned, nonzeros = prune_gradient(gradient, None, point.tau_t, self._native, self.count)
        if self.count:
            point.backward.add(gradient.numel(), nonzeros)
        return pruned if pruned is not gradient else None

    def _weight_hook(self, record: _Parameter, gradient: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        pruned, nonzeros = prune_gradient(gradient, None, record.tau_t, self._native, self.count)
        if self.count:
            record.gradient.add(gradient.numel(), nonzeros)
        return pruned if pruned is not gradient else None


class _PruneFunction(torch.autograd.Function):
    """Pruning at a point with τ_I > 0: forward and backward in one fused pass each.

    forward: ``y = x`` with ``|x| ≤ τ_I`` zeroed (counted).  backward: the exact
    derivative of that (zero where ``y == 0``, which for τ_I > 0 is exactly
    where the forward pass pruned) followed by τ_T pruning (counted).  The
    same arithmetic as ``hardshrink`` and its derivative, bit for bit.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, runtime: DynaProp,
        point: _Point,
    ) -> torch.Tensor:
        pruned, nonzeros = prune(x, point.tau_i, runtime._native, runtime.count)
        if runtime.count:
            point.forward.add(x.numel(), nonzeros)
        ctx.runtime = runtime  # type: ignore[attr-defined]
        ctx.point = point  # type: ignore[attr-defined]
        ctx.save_for_backward(pruned)
        return pruned

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, gradient: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        (pruned,) = ctx.saved_tensors  # type: ignore[attr-defined]
        runtime: DynaProp = ctx.runtime  # type: ignore[attr-defined]
        point: _Point = ctx.point  # type: ignore[attr-defined]
        if not runtime.enabled:  # still the exact derivative of what the forward pass did
            return mask_gradient(gradient, pruned), None, None
        if runtime.observer is not None:
            masked = mask_gradient(gradient, pruned)
            runtime.observer(point.info.path, "backward", masked)
        result, nonzeros = prune_gradient(
            gradient, pruned, point.tau_t, runtime._native, runtime.count
        )
        if runtime.count:
            point.backward.add(gradient.numel(), nonzeros)
        return result, None, None


def _per_name(value: float | Mapping[str, float], names: list[str], label: str) -> dict[str, float]:
    """One threshold per name from a number or a partial mapping (unnamed → 0)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            shown = ", ".join(repr(name) for name in unknown[:5])
            raise UserError(
                f"{label}: unknown prune point or parameter {shown}; known names start with "
                f"{', '.join(repr(name) for name in names[:3])}, ..."
            )
        return {name: check_threshold(value.get(name, 0.0), f"{label}[{name}]") for name in names}
    number = check_threshold(value, label)
    return {name: number for name in names}
