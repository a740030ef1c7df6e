"""Mapping: the tile and elector-map passes, named z3 constraints, caches, density."""

from __future__ import annotations

import pytest

from backends.elector import schedule
from backends.elector.compile_pipeline import evaluate
from backends.elector.mapping import MappingError, clear_caches, map_function
from backends.elector.tiling import StaticFunction
from transcode_ir import (
    Builder,
    Function,
    Module,
    SparsityEncoding,
    TensorType,
    parse_module,
    parse_pipeline,
    print_module,
    registered_passes,
    run_pipeline,
)
from transcode_ir.pass_manager import PassFailure


def _matmul_module(m: int, k: int, n: int, density: float | None = None) -> Module:
    module = Module("one")
    a_type = TensorType((1, m, k))
    if density is not None:
        a_type = a_type.with_encoding(SparsityEncoding(density, "assumed"))
    func = module.add_function(Function("forward", [a_type, TensorType((1, k, n))], ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", func.args[0], func.args[1], loc="layer.0.proj")],
                     ["out"])
    return module


def test_passes_are_registered_and_attribute_names_agree() -> None:
    import passes.tile as tile

    passes = registered_passes()
    assert "tile" in passes and "elector-map" in passes
    assert (tile.TILE_B, tile.TILE_X, tile.TILE_Y, tile.TILE_ORDER) == (
        schedule.ATTR_TILE_B, schedule.ATTR_TILE_X, schedule.ATTR_TILE_Y, schedule.ATTR_ORDER)
    assert len(schedule.LOOP_ORDERS) == 24 == len(set(schedule.LOOP_ORDERS))
    text = "tile{b=2,x=8,y=32,order=kjib},elector-map{hw=tiny-test,objective=energy}"
    assert str(parse_pipeline(text)) == text


def test_mapping_attributes_print_parse_and_are_kept(design) -> None:
    module = _matmul_module(32, 32, 32)
    run_pipeline(module, "tile{x=8,y=16,order=jikb},elector-map{hw=tiny-test}")
    text = print_module(module)
    assert 'tile:order = "jikb"' in text and "tile:x = 8" in text and "tile:y = 16" in text
    assert 'map:unit = "mac"' in text and 'map:design = "tiny-test@' in text
    again = parse_module(text)
    assert print_module(again) == text
    static = StaticFunction(again, "forward")
    (mapping,), _ = map_function(static, design("tiny-test"))
    assert (mapping.tile.x, mapping.tile.y, mapping.order) == (8, 16, "jikb")


def test_tile_pass_clamps_to_the_dims() -> None:
    module = _matmul_module(4, 64, 64)
    run_pipeline(module, "tile{b=4,x=16,y=128}")
    (op, _) = module.function("forward").ops
    assert (op.attr("tile:b"), op.attr("tile:x"), op.attr("tile:y")) == (1, 4, 64)
    module = _matmul_module(4, 64, 64)
    run_pipeline(module, "tile{b=4,x=16,y=128,clamp=false}")
    (op, _) = module.function("forward").ops
    assert (op.attr("tile:b"), op.attr("tile:x"), op.attr("tile:y")) == (4, 16, 128)


def test_forced_tile_overflowing_the_buffer_names_the_constraint() -> None:
    """tiny-test has 8 KiB of activation buffer; a 1x64x64 tile stages
    2 x 2 PEs x (10 + 10 + 10 KiB) = 120 KiB."""
    clear_caches()
    module = _matmul_module(64, 64, 64)
    with pytest.raises(PassFailure) as info:
        run_pipeline(module, "tile{x=64,y=64},elector-map{hw=tiny-test}")
    error = info.value.cause
    assert isinstance(error, MappingError)
    assert "activation-staging-fits" in error.constraints
    message = str(error)
    assert "tile 1x64x64 needs 2 (double buffering) x 2 PEs x (10 KiB + 10 KiB + 10 KiB)" in message
    assert "120 KiB of activation buffer, but tiny-test has 8 KiB" in message
    assert "layer.0.proj" in message


def test_forced_resident_weights_that_do_not_fit(design) -> None:
    """A 64x64 weight (10 KiB) forced resident in... a 16 KiB weight buffer fits;
    a 128x128 one (40 KiB) does not: weights-fit-weight-buffer."""
    module = Module("w")
    func = module.add_function(Function("forward", [TensorType((1, 16, 128))], ["x"]))
    module.add_param("w", type=TensorType((128, 128)))
    builder = Builder(func)
    out = builder.op("tensor.matmul", func.args[0], builder.param("w"), loc="dense")
    func.set_outputs([out], ["out"])
    run_pipeline(module, "elector-map{hw=tiny-test}")
    matmul = [op for op in func.ops if op.name == "tensor.matmul"][0]
    assert matmul.attr("map:weights") == "streamed"        # chosen: it does not fit
    matmul.set_attr("map:weights", "resident")
    with pytest.raises(MappingError) as info:
        map_function(StaticFunction(module, "forward"), design("tiny-test"))
    assert "weights-fit-weight-buffer" in info.value.constraints
    assert "do not fit the 16 KiB weight buffer" in str(info.value)


def test_a_design_nothing_fits_reports_the_unsat_core(design) -> None:
    """Softmax tiles of 32 on 512 PEs x 32 modules stage 2 x 16384 x 32 x 32 x 2.5 bytes
    = 80 MiB: no attention tile fits a 32 MiB activation buffer."""
    import dataclasses

    from backends.elector import SoftmaxUnits, validate_design

    accelerator = validate_design(dataclasses.replace(
        design("acceltran-server"), name="big-softmax", softmax=SoftmaxUnits(per_pe=32, tile=32)))
    module = Module("att")
    shape = TensorType((1, 2, 16, 8))
    func = module.add_function(Function("forward", [shape, TensorType((1, 2, 8, 16)), shape],
                                        ["q", "kt", "v"]))
    builder = Builder(func)
    out = builder.op("nn.attention", *func.args, loc="encoder.layer.0.attention.self")
    func.set_outputs([out], ["out"])
    with pytest.raises(MappingError) as info:
        map_function(StaticFunction(module, "forward"), accelerator)
    assert "activation-staging-fits" in info.value.constraints
    assert "tile-positive" not in str(info.value).split("\n", 1)[1]   # explained: staging only
    assert "cannot be mapped onto" in str(info.value)
    assert "80 MiB" in str(info.value)


def test_identical_layers_are_searched_once(zoo, design) -> None:
    from backends.elector import mapping, tiling

    clear_caches()
    static = zoo.static("bert-base", 2, 16)
    evaluate(static, design("acceltran-server"), check=True)
    products = sum(1 for info in static.ops if info.form in ("matmul", "attention"))
    assert products >= 12 * 6
    assert len(mapping._SEARCH_CACHE) < products / 4
    assert len(mapping._CHECK_CACHE) < products / 4
    assert len(tiling._PRODUCT_CACHE) < products / 4


@pytest.mark.parametrize("order", ["bijk", "kjib"])
def test_halving_density_never_increases_lane_cycles(order: str, design) -> None:
    tiny = design("tiny-test")
    previous = None
    for density in (1.0, 0.5, 0.25, 0.125, 0.0625):
        module = _matmul_module(32, 64, 32, density)
        run_pipeline(module, f"tile{{x=8,y=8,order={order}}}")
        static = StaticFunction(module, "forward")
        result = evaluate(static, tiny)
        (op,) = result.ops
        lanes = result.energy.by_class()["mac_lane"].dynamic_nj
        if previous is not None:
            assert lanes <= previous[0] + 1e-12
            assert op.compute_cycles <= previous[1]
        previous = (lanes, op.compute_cycles)


def test_dynaprop_densities_halved_on_bert_tiny(zoo, design) -> None:
    """With the mapping fixed, halving every pruned density never adds MAC-lane cycles."""
    pytest.importorskip("passes.dynaprop")
    from tests.elector_compile.conftest import mapped_pruned_bert_tiny

    edge = design("acceltran-edge")
    busy = []
    for density in (0.5, 0.25):
        mapped = mapped_pruned_bert_tiny(zoo, edge, density)
        busy.append([sum(w.busy_unit_cycles for w in op.work if w.unit == "mac")
                     for op in mapped.ops])
    assert len(busy[0]) == len(busy[1])
    assert all(b <= a for a, b in zip(*busy))
    assert sum(busy[1]) < sum(busy[0])


@pytest.mark.parametrize("shape", [(128, 128, 128), (128, 512, 128)])
def test_pruned_operand_never_maps_slower_than_dense(shape: tuple[int, int, int], design) -> None:
    """The searched mapping of a matmul with a pruned operand is never slower, nor
    busier on the MAC lanes, than the dense matmul's (docs/cost-model.md, "Pruned
    operands"): at each density the op's cycles and compute cycles stay at or
    under the dense figures."""
    edge = design("acceltran-edge")
    (dense,) = evaluate(StaticFunction(_matmul_module(*shape), "forward"), edge).ops
    for density in (0.95, 0.9, 0.8, 0.5, 0.25):
        (op,) = evaluate(StaticFunction(_matmul_module(*shape, density), "forward"), edge).ops
        assert op.end_cycle - op.start_cycle <= dense.end_cycle - dense.start_cycle + 1e-9
        assert op.compute_cycles <= dense.compute_cycles, density
