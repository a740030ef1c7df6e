"""Find DynaProp prune points in any torch model by structure, and prune at them (torch).

The torch runtime sees a model as the sequence of torch calls its forward pass
makes, through a :class:`torch.overrides.TorchFunctionMode`:

* **discovery** (once, on the first forward call, under ``no_grad`` with the
  random state restored afterwards): every call becomes a
  :class:`passes.dynaprop.GraphNode` -- ``F.linear``/``addmm``/a product by a
  parameter is a Linear, a product of two activations a ``matmul``,
  ``softmax`` over the last axis, GELU/ReLU/SiLU/sigmoid/tanh an activation,
  reshapes/transposes/splits/dropout moves, elementwise arithmetic ``ew``,
  anything else a barrier -- and :func:`passes.dynaprop.find_structural_points`,
  the same matcher the IR pass runs on the imported graph, names the points
  (``layer.<i>.<role>``);
* **pruning** (every later call): each call gets a *call-site key*, the
  module path, which invocation of that module this is in the forward call,
  the function's name and how many calls of that name the module invocation
  made before; the result of a call whose key is a prune point is pruned
  (and counted) before the model sees it.

``F.scaled_dot_product_attention`` (the default attention of Hugging Face
models and of ``nn.MultiheadAttention`` without weights) is evaluated as its
definition -- ``softmax(q·kᵀ·scale + mask)·v`` in explicit calls -- so that
its scores, probabilities and context are prune points like any other
attention's (it then computes in float32 what the fused kernel computes, up
to rounding).  ``nn.MultiheadAttention``'s fused inference fast path is
switched off while a runtime is attached.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from passes.dynaprop import GraphNode, StructuralPoint, find_structural_points

__all__ = ["CallSites", "discover", "node_kind"]

_LINEAR = {"linear"}
#: Composite functionals whose insides are traced (see :meth:`TraceMode._open_up`).
_OPEN_UP = {"multi_head_attention_forward"}
_PRODUCTS = {"matmul", "__matmul__", "__rmatmul__", "bmm", "baddbmm", "mm", "addmm"}
_SOFTMAX = {"softmax", "_softmax"}
_ACT = {"gelu", "relu", "relu_", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
        "erf", "gelu_", "hardswish", "mish"}
_MOVE = {"view", "reshape", "transpose", "transpose_", "permute", "contiguous", "flatten",
         "unflatten", "split", "chunk", "unbind", "__getitem__", "cat", "concat", "stack",
         "expand", "expand_as", "to", "float", "half", "type_as", "type", "dropout",
         "dropout_", "clone", "narrow", "squeeze", "unsqueeze", "repeat_interleave",
         "repeat", "view_as", "reshape_as", "t", "T", "mT", "split_with_sizes", "detach",
         "native_dropout", "feature_dropout", "alpha_dropout"}
_EW = {"add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__",
       "__isub__", "mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_",
       "__truediv__", "__rtruediv__", "__itruediv__", "neg", "__neg__", "where",
       "masked_fill", "masked_fill_", "true_divide", "multiply", "subtract"}


def _tensors(items: Iterable[Any]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for item in items:
        if isinstance(item, torch.Tensor):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out.extend(_tensors(item))
    return out


def node_kind(name: str, args: tuple, kwargs: dict, known: Callable[[Any], bool]
              ) -> tuple[str, list[Any], tuple[int, int] | None]:
    """``(kind, activation operands, Linear width)`` of a torch call (see the module
    docstring); ``known(t)`` says whether ``t`` is an activation of the traced model."""
    if name in _LINEAR and len(args) >= 2:
        w = args[1]
        return "linear", [args[0]], (int(w.shape[1]), int(w.shape[0]))
    if name in _PRODUCTS:
        a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") and len(args) >= 3 \
            else (args[0], args[1]) if len(args) >= 2 else (None, None)
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and known(a):
            if not known(b) and b.dim() == 2:
                return "linear", [a], (int(b.shape[0]), int(b.shape[1]))
            if known(b):
                return "matmul", [a, b], None
        return "other", _tensors(args), None
    if name in _SOFTMAX:
        x = args[0] if args else kwargs.get("input")
        dim = args[1] if len(args) > 1 else kwargs.get("dim", -1)
        if isinstance(x, torch.Tensor) and dim is not None and int(dim) % max(x.dim(), 1) \
                == x.dim() - 1:
            return "softmax", [x], None
        return "other", _tensors(args), None
    if name in _ACT:
        return "act", _tensors(args)[:1], None
    if name in _MOVE:
        return "move", _tensors(args) + _tensors(kwargs.values()), None
    if name in _EW:
        return "ew", _tensors(args) + _tensors(kwargs.values()), None
    return "other", _tensors(args) + _tensors(kwargs.values()), None


class CallSites:
    """Call-site keys: module path, its invocation in this forward call, call name and count.

    Module forward pre-/post-hooks push and pop frames; :meth:`key` names the next
    call of ``name`` in the innermost frame.  Keys are the same on every forward call
    that takes the same path through the code (a shared module, as in ALBERT, is told
    apart by its invocation number)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.stack: list[tuple[str, int, dict[str, int]]] = []
        self.invocations: dict[str, int] = {}
        self.handles: list[Any] = []
        for path, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._push(path)))
            self.handles.append(module.register_forward_hook(self._pop, always_call=True))

    def _push(self, path: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple) -> None:
            if not self.stack:
                self.invocations = {}
            count = self.invocations.get(path, 0)
            self.invocations[path] = count + 1
            self.stack.append((path, count, {}))
        return hook

    def _pop(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if self.stack:
            self.stack.pop()

    @property
    def path(self) -> str:
        return self.stack[-1][0] if self.stack else ""

    def key(self, name: str) -> str:
        if not self.stack:
            return f"@0|{name}"
        path, invocation, counts = self.stack[-1]
        k = counts.get(name, 0)
        counts[name] = k + 1
        return f"{path}@{invocation}|{name}#{k}"

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


class TraceMode(TorchFunctionMode):
    """Discovery (``on_result is None``: record nodes) or pruning (``on_result(key, t)``
    may replace a call's result)."""

    def __init__(self, sites: CallSites,
                 on_result: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
                 names: set[str] | None = None) -> None:
        super().__init__()
        self.sites = sites
        self.on_result = on_result
        #: When pruning: the call names that have prune points (keys count per name, so
        #: calls of other names need no bookkeeping at all).
        self.names = names
        self.nodes: list[GraphNode] = []
        self._node_of: dict[int, tuple[int, weakref.ref]] = {}
        self.weights: dict[str, list[torch.Tensor]] = {}

    # -- discovery bookkeeping
    def _node(self, t: Any) -> int | None:
        if not isinstance(t, torch.Tensor):
            return None
        entry = self._node_of.get(id(t))
        if entry is None or entry[1]() is not t:
            return None
        return entry[0]

    def _known(self, t: Any) -> bool:
        return self._node(t) is not None or getattr(t, "_dynaprop_input", False)

    def _record(self, name: str, args: tuple, kwargs: dict, result: Any, key: str) -> None:
        if name in ("size", "dim", "__get__", "numel", "__len__", "item", "tolist"):
            return
        kind, operands, width = node_kind(name, args, kwargs, self._known)
        inputs = [self._node(t) for t in operands]
        if all(i is None for i in inputs) and not any(getattr(t, "_dynaprop_input", False)
                                                    for t in operands):
            return                                  # arithmetic on weights and constants
        index = len(self.nodes)
        self.nodes.append(GraphNode(index, kind, inputs, self.sites.path, width, key))
        if kind == "linear":
            self.weights[key] = [t for t in _tensors(args) + _tensors(kwargs.values())
                                 if isinstance(t, torch.nn.Parameter)]
        for t in _tensors([result]):
            self._node_of[id(t)] = (index, weakref.ref(t))

    # -- the mode
    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "scaled_dot_product_attention":
            return self._sdpa(*args, **kwargs)
        if name in _OPEN_UP:
            return self._open_up(func, args, kwargs)
        if self.names is not None and name not in self.names:
            return func(*args, **kwargs)
        key = self.sites.key(name)
        result = func(*args, **kwargs)
        if self.on_result is None:
            self._record(name, args, kwargs, result, key)
        elif isinstance(result, torch.Tensor):
            result = self.on_result(key, result)
        return result

    def _open_up(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run a composite functional (``F.multi_head_attention_forward``) with this mode
        active inside it, so that its projections, softmax and products are traced and
        pruned like any other.  Its own torch-function check is bypassed for the call
        (it would hand the whole function to this mode again)."""
        original = F.has_torch_function
        F.has_torch_function = lambda *a, **k: False
        try:
            with self:
                return func(*args, **kwargs)
        finally:
            F.has_torch_function = original

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self.__torch_function__(func, (), args, kwargs)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:
        """``softmax(q·kᵀ·scale + mask)·v`` in explicit (traced, prunable) calls."""
        call = self._call
        if enable_gqa and k.shape[-3] != q.shape[-3]:
            groups = q.shape[-3] // k.shape[-3]
            k = call(torch.repeat_interleave, k, groups, -3)
            v = call(torch.repeat_interleave, v, groups, -3)
        factor = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
        scores = call(torch.mul, call(torch.matmul, q, call(torch.transpose, k, -2, -1)), factor)
        if is_causal:
            length, keys = q.shape[-2], k.shape[-2]
            allowed = torch.ones(length, keys, dtype=torch.bool, device=q.device).tril()
            scores = call(torch.masked_fill, scores, ~allowed, float("-inf"))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = call(torch.masked_fill, scores, ~attn_mask, float("-inf"))
            else:
                scores = call(torch.add, scores, attn_mask)
        probs = call(torch.softmax, scores, -1)
        if dropout_p > 0.0:
            probs = call(F.dropout, probs, dropout_p, True)
        return call(torch.matmul, probs, v)


def discover(model: torch.nn.Module, sites: CallSites, args: tuple, kwargs: dict
             ) -> tuple[list[GraphNode], list[StructuralPoint], dict[str, list[torch.Tensor]]]:
    """Run ``model(*args, **kwargs)`` once without gradients, tracing it; returns the graph,
    its prune points and the parameters each Linear call site read.  The random state is
    restored afterwards (dropout in training mode draws numbers)."""
    cpu_state = torch.random.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    for t in _tensors(list(args) + list(kwargs.values())):
        if t.is_floating_point() or t.dtype in (torch.int64, torch.int32):
            t._dynaprop_input = True     # noqa: SLF001  (model inputs are activations)
    mode = TraceMode(sites)
    try:
        with torch.no_grad(), mode:
            model(*args, **kwargs)
    finally:
        torch.random.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        for t in _tensors(list(args) + list(kwargs.values())):
            if hasattr(t, "_dynaprop_input"):
                del t._dynaprop_input
    return mode.nodes, find_structural_points(mode.nodes), mode.weights
