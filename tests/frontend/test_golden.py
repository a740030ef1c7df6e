"""Golden tests of the ONNX importer on small models written in ONNX text.

For every case in :mod:`tests.frontend.golden_cases`:

* the imported module, printed, must equal ``golden/<case>.tir`` exactly, and
  print → parse → print must be identical;
* the interpreter (``run_function``) must agree with onnxruntime on the same
  model: ``max|ir − ort| / max|ort| ≤ 1e-5`` per output (bool outputs exactly).

To accept new or changed snapshots after checking the diff, run::

    TCC_ACCEPT=1 .venv/bin/pytest tests/frontend/test_golden.py

which rewrites ``golden/*.tir`` from the current importer (and deletes
snapshots that no case produces any more).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

from frontends.onnx import import_onnx
from tests.frontend.conftest import relative_error, run_onnxruntime
from tests.frontend.golden_cases import CASES, GoldenCase, make_inputs
from transcode_ir import parse_module, print_module, run_function, verify_module

GOLDEN_DIR = Path(__file__).parent / "golden"
ACCEPT = os.environ.get("TCC_ACCEPT") == "1"
TOLERANCE = 1e-5


def build_model(case: GoldenCase) -> onnx.ModelProto:
    model = onnx.parser.parse_model(case.text)
    for node in model.graph.node:
        scopes = case.node_scopes.get(node.name)
        if scopes is not None:
            entry = node.metadata_props.add()
            entry.key, entry.value = "pkg.torch.onnx.name_scopes", repr(scopes)
    onnx.checker.check_model(model)
    return model


def import_case(case: GoldenCase):  # -> Module
    module = import_onnx(build_model(case), case.input_shapes, name=case.name)
    verify_module(module)
    return module


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_imported_text_matches_snapshot(case: GoldenCase) -> None:
    module = import_case(case)
    text = print_module(module)
    snapshot = GOLDEN_DIR / f"{case.name}.tir"
    if ACCEPT:
        GOLDEN_DIR.mkdir(exist_ok=True)
        snapshot.write_text(text)
    assert snapshot.exists(), f"no snapshot {snapshot}; run with TCC_ACCEPT=1 to create it"
    expected = snapshot.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            "expected", "imported"))
        pytest.fail(f"imported IR differs from {snapshot.name} (TCC_ACCEPT=1 accepts):\n{diff}")
    reparsed = parse_module(text, params={n: p.data for n, p in module.params.items()})
    assert print_module(reparsed) == text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_interpreter_matches_onnxruntime(case: GoldenCase) -> None:
    model = build_model(case)
    module = import_case(case)
    inputs = make_inputs(case, module["forward"])
    expected = run_onnxruntime(model, inputs)
    actual = run_function(module, "forward", inputs)
    assert len(actual) == len(expected)
    for name, got, want in zip(module["forward"].result_names, actual, expected):
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
        error = relative_error(got, want)
        assert error <= TOLERANCE, f"{case.name}.{name}: relative error {error:.3g}"


def test_no_stale_snapshots() -> None:
    names = {c.name for c in CASES}
    stale = sorted(p.name for p in GOLDEN_DIR.glob("*.tir") if p.stem not in names)
    if ACCEPT:
        for name in stale:
            (GOLDEN_DIR / name).unlink()
        stale = []
    assert not stale, f"snapshots without a case: {stale} (TCC_ACCEPT=1 removes them)"


def test_snapshots_show_the_folding_and_naming_rules() -> None:
    """Spot checks that the snapshots say what the importer promises."""
    by_name = {c.name: c for c in CASES}
    shape_chain = print_module(import_case(by_name["shape_chain_reshape"]))
    assert "Shape" not in shape_chain and "tensor.gather" not in shape_chain
    assert "tensor.reshape(%x) {shape = [2, 5, 2, -1]}" not in shape_chain
    assert "{shape = [2, 5, 2, 4]}" in shape_chain

    torchscript = print_module(import_case(by_name["gelu_torchscript"]))
    dynamo = print_module(import_case(by_name["gelu_dynamo"]))
    for text in (torchscript, dynamo):
        assert "nn.gelu" in text and "arith.erf" not in text
        assert 'loc("encoder.layer.0.intermediate")' in text
    assert "@encoder.layer.0.intermediate.dense.weight_transposed" in dynamo
    assert 'loc("encoder.layer.0.intermediate.dense")' in dynamo

    folded = import_case(by_name["folded_parameters"])
    kinds = {name: param.kind for name, param in folded.params.items()}
    # The 8x16 fill of ConstantOfShape is a broadcast array: one element and a tensor.expand.
    assert kinds == {"table": "constant",
                     "proj.weight_transposed": "weight", "scale.constant": "constant"}
    assert "tensor.expand" in print_module(folded)
    assert folded.params["proj.weight_transposed"].type.shape == (8, 16)

    mask = print_module(import_case(by_name["where_equal_mask"]))
    assert "arith.select" in mask and "tensor.expand" in mask and "arith.equal" in mask
    assert mask.count("arith.equal") == 1  # the Equal on shapes is folded


def test_decomposed_gelu_can_be_kept() -> None:
    case = next(c for c in CASES if c.name == "gelu_torchscript")
    module = import_onnx(build_model(case), case.input_shapes, recognize_gelu=False)
    names = [op.name for op in module["forward"]]
    assert "nn.gelu" not in names and "arith.erf" in names
    inputs = make_inputs(case, module["forward"])
    (expected,) = run_onnxruntime(build_model(case), inputs)
    (actual,) = run_function(module, "forward", inputs)
    assert relative_error(actual, expected) <= TOLERANCE


def test_default_dimensions() -> None:
    """batch -> 1, sequence -> 128; unnamed-style symbols by position."""
    case = next(c for c in CASES if c.name == "gelu_torchscript")
    module = import_onnx(build_model(case))
    assert module["forward"].args[0].type.shape == (1, 128, 8)
    dynamo = next(c for c in CASES if c.name == "gelu_dynamo")  # dims s0, s1
    module = import_onnx(build_model(dynamo))
    assert module["forward"].args[0].type.shape == (1, 128, 4)
    assert module.attributes["onnx:dims"] == ("s0=1", "s1=128")


def test_shared_symbols_bind_together() -> None:
    case = next(c for c in CASES if c.name == "where_equal_mask")
    module = import_onnx(build_model(case), {"mask": (3, 7)})
    shapes = {a.name: a.type.shape for a in module["forward"].args}
    assert shapes == {"scores": (3, 2, 7, 7), "mask": (3, 7)}


def test_weights_are_read_only_views_unless_copied(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "folded_parameters")
    path = tmp_path / "model.onnx"
    onnx.save(build_model(case), str(path))
    mapped = import_onnx(path)
    copied = import_onnx(path, copy_weights=True)
    for name in mapped.params:
        assert np.array_equal(mapped.params[name].data, copied.params[name].data)
    assert copied.params["proj.weight_transposed"].data.flags.writeable
