"""Every op kind: exported, checked by onnx.checker, run by onnxruntime, and
compared with the reference interpreter; and no op kind left unaccounted for."""

from __future__ import annotations

import pytest

from backends.onnx import EMITTERS, NOT_EXPORTABLE, export_function, max_opset
from backends.onnx.exporter import decomposition_of
from tests.backend_onnx.checks import check_against_interpreter
from tests.backend_onnx.op_cases import CASES, OpCase, build_case
from transcode_ir import Op
from transcode_ir.opdefs import all_opdefs

#: The opsets where emitters change: 13 (oldest), 17 (LayerNormalization),
#: 18 (reduce axes as inputs, the default), 20 (Gelu), and the newest onnx knows.
OPSETS = sorted({13, 17, 18, 20, max_opset()})


def _decomposes(kind: str) -> bool:
    return decomposition_of(Op(kind, [], [])) is not None


def test_every_op_kind_is_exportable_or_listed_with_a_reason():
    unaccounted = [kind for kind in sorted(all_opdefs())
                   if kind not in EMITTERS and kind not in NOT_EXPORTABLE and not _decomposes(kind)]
    assert not unaccounted, (
        f"op kinds with no ONNX emitter, no decomposition and no entry in "
        f"backends.onnx.emitters.NOT_EXPORTABLE: {unaccounted}")
    for kind, reason in NOT_EXPORTABLE.items():
        assert kind not in EMITTERS, f"{kind} both has an emitter and is listed as not exportable"
        assert isinstance(reason, str) and len(reason) > 10, f"{kind}: give a real reason"


def test_no_emitter_for_an_unknown_op_kind():
    known = all_opdefs()
    stale = sorted(set(EMITTERS) - set(known)) + sorted(set(NOT_EXPORTABLE) - set(known))
    assert not stale, f"emitters or NOT_EXPORTABLE entries for op kinds that no longer exist: {stale}"


def test_cases_cover_every_exportable_op_kind():
    covered: set[str] = set()
    for case in CASES:
        module, _ = build_case(case)
        covered |= {op.name for op in module["forward"]}
    exportable = {kind for kind in all_opdefs()
                  if kind in EMITTERS or (kind not in NOT_EXPORTABLE and _decomposes(kind))}
    missing = sorted(exportable - covered)
    assert not missing, f"add a case to tests/backend_onnx/op_cases.py for: {missing}"


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op_kind_matches_interpreter(case: OpCase, opset: int):
    if opset < case.min_opset:
        pytest.skip(f"{case.id} needs opset {case.min_opset}")
    module, inputs = build_case(case)
    model = export_function(module, opset=opset)  # runs onnx.checker full_check
    check_against_interpreter(module, model, inputs)
