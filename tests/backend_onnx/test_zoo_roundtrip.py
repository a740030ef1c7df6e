"""Round trips of the zoo models: torch → ONNX → IR (frontends.onnx) → ONNX
(this backend) → onnxruntime, equal to the IR interpreter within 1e-4.

* every zoo model, as imported;
* the small ones after the ``default`` pipeline (fused ``nn.linear`` and
  ``nn.attention`` on real graphs);
* two of them as training graphs: ``@train_step`` (cross-entropy, SGD) with
  every parameter write as an extra output.

Skips, saying why, while the zoo exporter or the ONNX importer is missing.
Fixtures (cached torch exports) are in ``conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends.onnx import export_function
from frontends.zoo import ZOO
from tests.backend_onnx.checks import RTOL, assert_close, check_against_interpreter, run_onnx
from transcode_ir import Interpreter

ZOO_NAMES = sorted(ZOO)
SMALL = ["bert-tiny", "flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_roundtrip(zoo_models, name):
    zoo = zoo_models(name)
    model = export_function(zoo.module)  # opset 18, checked with full_check
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    check_against_interpreter(zoo.module, model, zoo.inputs)


@pytest.mark.parametrize("name", SMALL)
def test_zoo_model_after_fusion_roundtrip(zoo_models, name):
    from transcode_ir.pass_manager import run_pipeline

    zoo = zoo_models(name)
    module = zoo.module.clone()
    run_pipeline(module, "default")
    kinds = {op.name for op in module["forward"]}
    assert {"nn.linear", "nn.attention"} <= kinds
    check_against_interpreter(module, export_function(module), zoo.inputs)


@pytest.mark.parametrize("name", ["bert-tiny", "flexibert-mix-b"])
def test_zoo_train_step_roundtrip(zoo_models, name):
    """``@train_step`` with cross-entropy and SGD at lr = 1, so that each
    parameter's change is minus its gradient.  The loss must agree within
    1e-4; every parameter change within 1e-4 of the largest change in the
    model (some gradients are zero up to rounding -- the key bias's, exactly
    so in exact arithmetic -- and have no scale of their own), give or take
    one float32 rounding of the new value.

    SGD rather than Adam: Adam's first step divides each gradient by its own
    magnitude plus 1e-8, which turns rounding differences in gradients near
    1e-8 into changes of ~1e-6; ``optim.adam`` itself is tested op by op.
    """
    from transcode_ir.pass_manager import run_pipeline

    zoo = zoo_models(name)
    module = zoo.module.clone()
    run_pipeline(module, "cleanup,autodiff{loss=cross-entropy,optimizer=sgd,lr=1.0,"
                         "output=last_hidden_state},cleanup,fuse,dce")
    hidden = module["forward"].outputs[0].type.shape[-1]
    labels = np.random.default_rng(0).integers(0, hidden, zoo.inputs["input_ids"].shape)
    labels[zoo.inputs["attention_mask"] == 0] = -100
    inputs = {**zoo.inputs, "labels": labels}

    model = export_function(module, "train_step")
    interpreter = Interpreter(module)
    (loss,) = interpreter.run("train_step", inputs)
    outputs = run_onnx(model, inputs)
    names = [o.name for o in model.graph.output]
    assert names[0] == "loss" and len(names) == 1 + len(interpreter.last_updates) > 10
    assert_close(outputs[0], loss, "loss")

    changes = {}
    for output_name, got in zip(names[1:], outputs[1:]):
        param = output_name.removesuffix(".updated")
        old = module.params[param].data
        want = interpreter.last_updates[param]
        changes[param] = (got.astype(np.float64) - old, want.astype(np.float64) - old,
                          np.spacing(np.abs(old).astype(np.float32)).astype(np.float64))
    scale = max(float(np.max(np.abs(want))) for _, want, _ in changes.values())
    for param, (got, want, rounding) in changes.items():
        excess = np.abs(got - want) - RTOL * scale - rounding
        assert excess.max() <= 0, (f"{param}: change off by {float(np.max(np.abs(got - want))):.3g}"
                                   f" with the largest change {scale:.3g}")
