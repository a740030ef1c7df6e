"""The optimised mapping search gives, bit for bit, what a straightforward one gives.

The search keeps the design-independent part of each op's candidate costs
across designs (:class:`backends.elector.tiling.ProductStage`), drops loop
orders that move the same bytes as an earlier one, checks the constraints per
tile and prices only the feasible candidates; derived op costs are kept across
designs too.  Here, over random designs of transcode-space and several zoo
models (inference and a training step), every chosen mapping is compared with
the search as first written (every tile x every loop order of the grid costed
with :func:`~backends.elector.tiling.matmul_costs`, every constraint checked
on every candidate, no caches), and every mapped op and simulation result
(or infeasibility message) with a run from cleared caches.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends.elector.analytical import simulate_analytical
from backends.elector.design_library import resolve_space
from backends.elector.mapping import (
    _BATCH_TILES,
    _TILE_SIZES,
    MappingError,
    _constraints_for,
    _NumpyOps,
    _pick,
    _signature,
    _Vars,
    clear_caches,
    constraint_context,
    map_function,
)
from backends.elector.schedule import LOOP_ORDERS, OpMapping, TileShape
from backends.elector.tiling import (
    hardware_consts,
    matmul_costs,
    operand_specs,
    schedule_function,
    spill_level_bytes,
)

# (model, batch, seq, training step, designs): the sizes test_properties uses
# (the lowered models are shared within a session).
MODELS = (("bert-tiny", 2, 32, False, 24), ("bert-mini", 2, 32, False, 16),
          ("flexibert-mix-a", 2, 32, False, 16), ("bert-tiny", 2, 32, True, 8))
OBJECTIVES = ("latency", "energy", "edp")


def _reference_search(info, hw, plan, default: TileShape, objective: str) -> OpMapping:
    """The product search as first written (module docstring)."""
    batch, m, k, n = info.dims
    tiles = {(b, x, y) for b in _BATCH_TILES if b <= max(batch, 1)
             for x in _TILE_SIZES if x <= max(m, 1)
             for y in _TILE_SIZES if y <= max(k, n, 1)}
    if default.b <= batch and default.x <= m and default.y <= max(k, n):
        tiles.add((default.b, default.x, default.y))
    grid = np.array(sorted(tiles), dtype=np.int64)
    orders = np.repeat(np.arange(len(LOOP_ORDERS)), len(grid))
    grid = np.tile(grid, (len(LOOP_ORDERS), 1))
    b, x, y = grid[:, 0], grid[:, 1], grid[:, 2]
    inputs, outputs = operand_specs(info, plan, None)
    costs = matmul_costs(info, hw, b, x, y, orders, inputs, outputs[0],
                         spill_level_bytes(info, plan))
    c = constraint_context(info, hw, plan, "mac")
    streamed = any(s.streamed for s in inputs if s.ref.is_param and s.role in ("lhs", "rhs"))
    v = _Vars(b, x, y, not streamed)
    feasible = np.ones(len(b), dtype=bool)
    for constraint in _constraints_for(c):
        feasible &= np.broadcast_to(np.asarray(constraint.holds(v, c, _NumpyOps)), feasible.shape)
    if not feasible.any():
        return None
    best = _pick(costs.cycles, costs.energy_nj, feasible, objective)
    weights = None
    if info.weight_ref is not None:
        weights = "streamed" if streamed else "resident"
    return OpMapping("mac", TileShape(int(b[best]), int(x[best]), int(y[best])),
                     LOOP_ORDERS[int(orders[best])], weights)


def _run(static, accelerator, objective: str):
    """Mappings, mapped ops and the simulated cycles and energy (or the error)."""
    try:
        mappings, plan = map_function(static, accelerator, objective, check=False)
    except MappingError as err:
        # The whole message: the unsat core it quotes is minimised, so it does
        # not depend on what the solver checked before.
        return ("infeasible", str(err)), None, None
    mapped = schedule_function(static, accelerator, mappings, "", plan)
    result = simulate_analytical(mapped, accelerator, timeline=False)
    return ((tuple(mappings), mapped.ops, result.cycles, result.energy.dynamic_nj,
             result.energy.leakage_nj), mappings, plan)


@pytest.mark.parametrize(("model", "batch", "seq", "train", "designs"), MODELS)
def test_search_matches_a_straightforward_search(zoo, model, batch, seq, train, designs) -> None:
    static = zoo.static(model, batch, seq, train)
    space = resolve_space("transcode-space")
    indices = space.sample_indices(designs, seed=11)
    accelerators = [space.point(i) for i in indices]
    clear_caches()
    warm = []                     # caches filled by the designs before each one
    for n, accelerator in enumerate(accelerators):
        objective = OBJECTIVES[n % len(OBJECTIVES)]
        outcome, mappings, plan = _run(static, accelerator, objective)
        warm.append(outcome)
        if mappings is None:
            continue
        hw = hardware_consts(accelerator, static.training)
        default = TileShape(*accelerator.mapping.tiles)
        expected = {}             # per op signature (identical layers: one search)
        for info, mapping in zip(static.ops, mappings):
            if info.form in ("matmul", "attention"):
                key = _signature(info, plan, hw)
                if key not in expected:
                    expected[key] = _reference_search(info, hw, plan, default, objective)
                assert mapping == expected[key], (
                    f"{model}: {info.kind} at {info.loc} on design {indices[n]}")
    assert sum(outcome[0] != "infeasible" for outcome in warm) >= designs // 3
    for n, accelerator in enumerate(accelerators):
        clear_caches()
        cold, _, _ = _run(static, accelerator, OBJECTIVES[n % len(OBJECTIVES)])
        assert cold == warm[n], f"{model}: design {indices[n]} differs with cleared caches"
