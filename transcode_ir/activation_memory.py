"""Peak activation memory of a function, with and without DynaProp.

:func:`activation_memory` walks a function's op schedule (the order of its
ops) and computes the largest total size of the activations alive at once --
once with every value stored dense ("without DynaProp") and once with the
values that carry a :class:`~transcode_ir.types.SparsityEncoding` stored
compressed ("with DynaProp")::

    >>> from transcode_ir.activation_memory import activation_memory
    >>> memory = activation_memory(module, "train_step", data_width_bits=20)
    >>> memory.peak_bytes_dense, memory.peak_bytes_pruned      # also memory["peak_bytes_dense"]

What counts
===========

* **Activations** are the function's arguments and the results of its ops,
  except parameter reads (``tensor.param``: weights and optimizer state live
  in the weight buffer), inline constants (``tensor.constant``), the new
  parameter values an optimizer op makes (written straight back) and -- unless
  ``include_weight_gradients`` -- *weight-gradient values*: values used only
  to compute parameter gradients (the ``<param>.grad`` results of
  ``@backward``, the gradient operand of ``@train_step``'s optimizer ops, and
  whatever only they read, such as ``dW = xᵀ·dy`` or the embedding-table
  gradient).  Those are parameter-sized and belong with the weights; the
  activation gradients that flow back through the layers are activations.
* **Lifetime**: a value is alive from the op that makes it (arguments: from
  the start) to its last use; a result of the function lives to the end; a
  value never used lives only during the op that makes it.  At each op its
  operands and its results are alive together.
* **Views** (``tensor.reshape``, category ``view``) store nothing: they alias
  their operand, whose storage then lives as long as any alias.  Without
  DynaProp, ``nn.prune`` and ``grad.prune`` alias their first operand too
  (the model would not have them); with DynaProp they make new values,
  except an ``nn.prune`` with ``tau = 0``, which prunes nothing.  Both the
  unpruned and the pruned value stay alive when both are read later (the
  softmax backward reads the unpruned probabilities, the next product the
  pruned ones), as in the torch runtime.
* **Masks**: ``grad.prune`` (the straight-through gradient of a prune op)
  reads only where the pruned value is zero, so with DynaProp a value that
  nothing else reads any more is kept as its 1-bit-per-element mask until
  then (the accelerator's mask buffer).
* **Size** of a dense value: ``numel × w`` bits, with ``w`` =
  ``data_width_bits`` for floating-point values (the accelerator's data
  width: 20-bit fixed point in AccelTran) and the IR element width for
  integers and bools (token ids, labels, masks).  A value with a sparsity
  encoding of density ``d`` is stored compressed with DynaProp:
  ``ceil(d × numel) × w`` bits of nonzeros plus a 1-bit mask per element.
  Bits are rounded up to whole bytes per value.

The schedule is the function's op order as it stands; no rematerialisation
or reordering is modelled.  ``data_width_bits=None`` uses the IR element
width for floating-point values as well.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from transcode_ir.core import Function, Module, Op, Value
from transcode_ir.errors import UserError
from transcode_ir.opdefs import get_opdef
from transcode_ir.types import dtype_size

__all__ = ["ActivationMemory", "activation_memory", "value_bytes", "weight_gradient_values"]

_FLOATS = ("f16", "f32", "f64")


@dataclass(frozen=True)
class ActivationMemory(Mapping[str, Any]):
    """Peak activation memory of one function, dense and with DynaProp's compression.

    Read it as attributes or as a mapping (``memory["peak_bytes_pruned"]``).
    ``peak_op_dense``/``peak_op_pruned`` describe the op at which each peak
    occurs (``#index op.name loc``).  ``pruned_values`` counts the values
    stored compressed.
    """

    function: str
    data_width_bits: int | None
    peak_bytes_dense: int
    peak_bytes_pruned: int
    peak_op_dense: str
    peak_op_pruned: str
    pruned_values: int

    @property
    def reduction(self) -> float:
        """Fraction of the dense peak that DynaProp saves (0 when nothing is pruned)."""
        if self.peak_bytes_dense == 0:
            return 0.0
        return 1.0 - self.peak_bytes_pruned / self.peak_bytes_dense

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reduction"] = self.reduction
        return out

    # Mapping interface, so that callers may write memory["peak_bytes_dense"].
    def __getitem__(self, key: str) -> Any:
        if key == "reduction":
            return self.reduction
        if key in self.__dataclass_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.__dataclass_fields__) + ["reduction"])

    def __len__(self) -> int:
        return len(self.__dataclass_fields__) + 1


def value_bytes(value: Value, data_width_bits: int | None = 20, compressed: bool = True) -> int:
    """Bytes to store ``value``: dense, or (``compressed`` and it carries a sparsity encoding)
    its nonzeros plus a 1-bit mask per element."""
    t = value.type
    width = data_width_bits if (t.dtype in _FLOATS and data_width_bits is not None) \
        else 8 * dtype_size(t.dtype)
    if compressed and t.encoding is not None:
        bits = math.ceil(t.encoding.density * t.numel) * width + t.numel
    else:
        bits = t.numel * width
    return (bits + 7) // 8


def activation_memory(module: Module, func: str = "train_step",
                      data_width_bits: int | None = 20, *,
                      include_weight_gradients: bool = False) -> ActivationMemory:
    """Peak activation memory of ``module``'s function ``func`` over its op schedule, with
    every value dense and with pruned values compressed.  See the module docstring."""
    if data_width_bits is not None and (not isinstance(data_width_bits, int)
                                        or data_width_bits <= 0):
        raise UserError(f"data_width_bits must be a positive integer, got {data_width_bits!r}")
    try:
        function = module.function(func)
    except KeyError as err:
        hint = " (func='forward' for inference; train_step exists after autodiff)" \
            if func in ("train_step", "backward") else ""
        raise UserError(f"activation_memory: {err.args[0]}{hint}") from None
    excluded = set() if include_weight_gradients else weight_gradient_values(function)
    dense, dense_at = _peak(function, data_width_bits, False, excluded)
    pruned, pruned_at = _peak(function, data_width_bits, True, excluded)
    count = sum(1 for op in function for r in op.results
                if r.type.encoding is not None and _is_activation(op) and id(r) not in excluded)
    return ActivationMemory(func, data_width_bits, dense, pruned, dense_at, pruned_at, count)


def weight_gradient_values(func: Function) -> set[int]:
    """Ids of the values used only to compute parameter gradients (see the module docstring)."""
    sinks: set[tuple[int, int]] = set()
    ret = func.return_op
    if ret is not None:
        for index, name in enumerate(func.result_names):
            if name.endswith(".grad"):
                sinks.add((id(ret), index))
    ops = list(func)
    for op in ops:
        if get_opdef(op.name).category == "optimizer" and len(op.operands) > 1:
            sinks.add((id(op), 1))
    found: set[int] = set()
    for op in reversed(ops):
        for result in op.results:
            if result.uses and all((id(u.op), u.index) in sinks or
                                   (u.op.results and all(id(r) in found for r in u.op.results))
                                   for u in result.uses):
                found.add(id(result))
    return found


def _is_activation(op: Op) -> bool:
    """Parameters, constants and optimizer state are not activations."""
    return get_opdef(op.name).category not in ("constant", "optimizer")


def _aliases(op: Op, pruned: bool) -> bool:
    """Whether ``op``'s result shares its first operand's storage."""
    if not op.operands or len(op.results) != 1:
        return False
    if get_opdef(op.name).category == "sparsity":
        # A prune op with tau = 0 prunes nothing: no new value is made, with DynaProp or not.
        return not pruned or (op.name == "nn.prune" and float(op.attributes["tau"]) == 0.0)
    return get_opdef(op.name).category == "view"


def _peak(func: Function, width: int | None, pruned: bool, excluded: set[int]) -> tuple[int, str]:
    ops = [op for op in func]
    end_index = len(ops) - 1
    storage: dict[int, int] = {}         # value id -> id of the value that owns its storage
    size: dict[int, int] = {}            # storage id -> bytes
    mask: dict[int, int] = {}            # storage id -> bytes of its 1-bit-per-element mask
    start: dict[int, int] = {}           # storage id -> first op index alive
    last: dict[int, int] = {}            # storage id -> last op index it is read in full
    last_mask: dict[int, int] = {}       # storage id -> last op index only its mask is read

    def define(value: Value, index: int) -> None:
        storage[id(value)] = id(value)
        size[id(value)] = value_bytes(value, width, pruned)
        mask[id(value)] = (value.type.numel + 7) // 8
        start[id(value)] = last[id(value)] = index

    for arg in func.args:
        define(arg, 0)
    for index, op in enumerate(ops):
        for position, value in enumerate(op.operands):
            owner = storage.get(id(value))
            if owner is None:
                continue
            if op.name == "func.return":
                last[owner] = end_index
            elif op.name == "grad.prune" and position == 1:
                # The straight-through gradient reads only where the pruned value is zero:
                # its 1-bit mask (without DynaProp the op does not exist).
                if pruned:
                    last_mask[owner] = max(last_mask.get(owner, index), index)
            else:
                last[owner] = max(last[owner], index)
        if not _is_activation(op) or all(id(r) in excluded for r in op.results):
            continue
        if _aliases(op, pruned):
            owner = storage.get(id(op.operands[0]))
            if owner is not None:
                storage[id(op.results[0])] = owner
                continue
        for result in op.results:
            define(result, index)
    delta = [0] * (len(ops) + 1)
    for owner, nbytes in size.items():
        delta[start[owner]] += nbytes
        delta[last[owner] + 1] -= nbytes
        if last_mask.get(owner, -1) > last[owner]:
            delta[last[owner] + 1] += mask[owner]
            delta[last_mask[owner] + 1] -= mask[owner]
    live, peak, where = 0, 0, -1
    for index in range(len(ops)):
        live += delta[index]
        if live > peak:
            peak, where = live, index
    if where < 0:
        return 0, "(nothing alive)"
    op = ops[where]
    return peak, f"#{where} {op.name}" + (f' loc("{op.loc}")' if op.loc else "")
