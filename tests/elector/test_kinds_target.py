"""The module-kind registry and the Target built once per design.

* area and technology read the registry (required kinds and their lookup
  parameters are the built-in kinds');
* ``kinds.busy_cycles`` -- the one busy rule -- agrees with the simulators'
  ``costing.busy_module_cycles`` on every kind a design has;
* inside a compile context the elector-map pass takes the context's target
  (the design is not parsed again) and leaves its mapping for the compiler.
"""

from __future__ import annotations

import pytest

from backends.elector.area import area_breakdown, module_inventory
from backends.elector.costing import busy_module_cycles
from backends.elector.design_library import resolve_design
from backends.elector.kinds import busy_cycles, module_instances, module_kind, module_kinds
from backends.elector.target import build_target, compile_context, current_context, target_for
from backends.elector.technology import MODULE_PARAMETERS, REQUIRED_MODULE_KINDS


def test_registry_is_the_technologys_list_of_kinds() -> None:
    builtin = [kind.name for kind in module_kinds() if kind.builtin]
    assert tuple(builtin) == REQUIRED_MODULE_KINDS
    for name in builtin:
        assert MODULE_PARAMETERS[name] == module_kind(name).technology_parameters


@pytest.mark.parametrize("training", [False, True])
def test_inventory_counts_follow_the_kind_rules(training: bool) -> None:
    edge = resolve_design("acceltran-edge")       # 64 PEs x 16 lanes, 4 softmax per PE
    counts = {i.kind: i.count for i in module_inventory(edge, training)}
    assert counts["mac_lane"] == counts["fifo"] == counts["pre_sparsity"] == 64 * 16
    assert counts["softmax"] == 64 * 4
    assert counts["layer_norm"] == counts["dataflow"] == counts["dma"] == 64
    assert ("stochastic_rounding" in counts) == training
    assert module_instances(edge, training) is module_instances(edge, training)   # cached


@pytest.mark.parametrize("design", ["acceltran-edge", "tiny-test"])
def test_one_busy_rule_matches_the_simulators(design: str) -> None:
    accelerator = resolve_design(design)
    activity = {"mac": 1000.0, "softmax": 120.0, "layernorm": 30.0, "dma": 7.0,
                "sparsity": 11.0}
    rule = busy_cycles(activity, 50.0, lanes_per_pe=accelerator.pe_array.lanes,
                       softmax_per_pe=accelerator.softmax.per_pe)
    simulators = busy_module_cycles(accelerator, activity, 50.0, training=True)
    for instance in module_inventory(accelerator, training=True):
        assert rule[instance.kind] == pytest.approx(simulators[instance.kind]), instance.kind
    # worked by hand for the dataflow module: lane-cycles / lanes per PE
    # + softmax module-cycles / softmax per PE + layer-norm module-cycles
    lanes, per_pe = accelerator.pe_array.lanes, accelerator.softmax.per_pe
    assert rule["dataflow"] == pytest.approx(1000 / lanes + 120 / per_pe + 30)
    assert rule["dma"] == 57.0 and rule["post_sparsity"] == 1011.0


def test_target_derives_once_and_names_its_design() -> None:
    target = build_target("acceltran-edge")
    assert target.accelerator == resolve_design("acceltran-edge")
    assert target.levels is target.levels
    assert target.names("acceltran-edge") and not target.names("acceltran-server")
    assert target.consts().pes == 64
    assert area_breakdown(target.accelerator).total_mm2 == pytest.approx(54.06, rel=1e-3)


def _matmul_module(m: int, k: int, n: int):
    from transcode_ir import Builder, Function, Module, TensorType

    module = Module("one")
    func = module.add_function(Function("forward", [TensorType((1, m, k)),
                                                    TensorType((1, k, n))], ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", func.args[0], func.args[1], loc="proj")],
                     ["out"])
    return module


def test_map_pass_uses_the_context_target_and_leaves_its_mapping(monkeypatch) -> None:
    from backends.elector import design_library
    from transcode_ir import run_pipeline

    target = build_target("tiny-test")
    module = _matmul_module(32, 32, 32)

    def no_parsing(name):  # noqa: ANN001, ANN202
        raise AssertionError(f"the design {name!r} was resolved again")

    monkeypatch.setattr(design_library, "resolve_design", no_parsing)
    assert current_context() is None
    with compile_context(target) as context:
        assert target_for("tiny-test") is target
        run_pipeline(module, "elector-map{hw=tiny-test}")
    assert current_context() is None
    record = context.mapping_of(module.function("forward"), target.accelerator)
    assert record is not None and len(record.mappings) == len(record.static.ops) == 1
    assert record.mappings[0].tile is not None
    assert context.mapping_of(module.function("forward"),
                              resolve_design("acceltran-edge")) is None   # another design


def test_compile_module_simulates_the_pass_mapping() -> None:
    from backends.elector.compile_pipeline import CompileOptions, compile_module

    module = _matmul_module(32, 64, 32)
    reference = _matmul_module(32, 64, 32)
    outcome = compile_module(module, CompileOptions(hw="tiny-test"))
    # the same model mapped by a separate run of the pass, then simulated
    from backends.elector.analytical import simulate_analytical
    from backends.elector.mapping import map_function
    from backends.elector.tiling import StaticFunction, schedule_function
    from transcode_ir import run_pipeline

    run_pipeline(reference, "default,elector-map{hw=tiny-test}")
    static = StaticFunction(reference, "forward")
    accelerator = resolve_design("tiny-test")
    mappings, plan = map_function(static, accelerator)
    expected = simulate_analytical(schedule_function(static, accelerator, mappings, plan=plan),
                                   accelerator)
    assert outcome.result.cycles == expected.cycles
    assert outcome.result.energy.total_nj == pytest.approx(expected.energy.total_nj)


def test_compile_parses_builds_and_maps_once(monkeypatch) -> None:
    """tcc compile's path: one design resolution, one static view and one
    mapping search per compile (elector-map's result is simulated)."""
    from backends.elector import design_library, mapping, tiling
    from backends.elector.compile_pipeline import CompileOptions, compile_module

    calls = {"resolve": 0, "map": 0, "static": 0}
    real_resolve, real_map = design_library.resolve_design, mapping.map_function
    real_init = tiling.StaticFunction.__init__

    def resolve(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["resolve"] += 1
        return real_resolve(*args, **kwargs)

    def map_function(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["map"] += 1
        return real_map(*args, **kwargs)

    def init(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls["static"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(design_library, "resolve_design", resolve)
    monkeypatch.setattr(mapping, "map_function", map_function)
    monkeypatch.setattr(tiling.StaticFunction, "__init__", init)
    compile_module(_matmul_module(16, 32, 16), CompileOptions(hw="tiny-test"))
    assert calls == {"resolve": 1, "map": 1, "static": 1}


def test_unit_classes_and_their_kinds_come_from_the_registry() -> None:
    from backends.elector.kinds import unit_module_kinds
    from backends.elector.schedule import UNIT_MODULE_KINDS

    derived = unit_module_kinds()
    assert {unit: kinds for unit, kinds in UNIT_MODULE_KINDS.items() if kinds} == derived


def test_constraints_a_kind_names_exist_in_the_mapping_table() -> None:
    from backends.elector.mapping import PRODUCT_CONSTRAINTS, ROW_CONSTRAINTS

    table = {constraint.name for constraint in PRODUCT_CONSTRAINTS + ROW_CONSTRAINTS}
    named = {name for kind in module_kinds() for name in kind.constraints}
    assert named and named <= table, named - table
