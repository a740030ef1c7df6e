"""Round trip of every zoo model: torch → ONNX → IR (frontends.onnx) → ONNX
(this backend) → onnxruntime, equal to the IR interpreter within 1e-4.

Skips, saying why, while the zoo exporter or the ONNX importer is missing.
"""

from __future__ import annotations

import pytest

from backends.onnx import export_function
from frontends.zoo import ZOO
from tests.backend_onnx.checks import check_against_interpreter

ZOO_NAMES = sorted(ZOO)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_roundtrip(zoo_models, name):
    zoo = zoo_models(name)
    model = export_function(zoo.module)  # opset 18, checked with full_check
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    check_against_interpreter(zoo.module, model, zoo.inputs)
