"""Passes on the model zoo: torch export -> ONNX -> IR (batch 2, sequence 16,
a 512-token vocabulary; see ``conftest.zoo_onnx`` for the export cache).

* BERT-Tiny and ``flexibert-mix-c`` (all seven head types: sdp, wma, dft,
  dct, conv5, conv9, conv13): interpreter gradients of an mse loss on
  ``pooler_output`` match torch autograd within 1e-4 for every parameter, and
  one ``@train_step`` with SGD and one with Adam match ``torch.optim``.
* Both exporters' BERT-Tiny canonicalise to structurally equal IR.
* Every clean-up and fusion pass leaves the interpreter's outputs of every
  zoo model unchanged (1e-5 relative; raised GELU/layer norm compute in
  float64 and round once, and a fused attention scales by 1/√d instead of
  dividing by √d).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frontends.zoo import build_model, list_models  # noqa: E402
from tests.passes.conftest import (  # noqa: E402
    SEED,
    VOCAB,
    check_update,
    gradient_errors,
    relative_error,
    set_torch_gradients,
    torch_array,
    torch_parameter,
    zoo_inputs,
)
from transcode_ir import (  # noqa: E402
    Interpreter,
    Module,
    PassInstrument,
    PassManager,
    print_module,
    structurally_equal,
)

BOUND = 1e-4
GRADIENT_MODELS = ["bert-tiny", "flexibert-mix-c"]


def torch_model(name: str) -> Any:
    return build_model(name, seed=SEED, vocab_size=VOCAB).eval()


def torch_pooled_loss(model: Any, feeds: dict[str, np.ndarray], target: np.ndarray) -> Any:
    _, pooled = model(torch.from_numpy(feeds["input_ids"]),
                      attention_mask=torch.from_numpy(feeds["attention_mask"]))
    return torch.nn.functional.mse_loss(pooled, torch.from_numpy(target))


def training_module(zoo_module: Any, name: str, optimizer: str, lr: float) -> Module:
    module = zoo_module(name)
    PassManager(f"cleanup,autodiff{{loss=mse,optimizer={optimizer},lr={lr},"
                "output=pooler_output},cleanup,fuse,dce").run(module)
    return module


def target_for(module: Module) -> np.ndarray:
    forward = module["forward"]
    shape = forward.outputs[forward.result_names.index("pooler_output")].type.shape
    return np.random.default_rng(3).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_zoo_gradients_and_sgd_step_match_torch(name: str, zoo_module: Any) -> None:
    module = training_module(zoo_module, name, "sgd", 0.1)
    feeds, target = zoo_inputs(), target_for(module)
    names = module["backward"].result_names
    results = Interpreter(module).run("backward", {**feeds, "target": target})

    model = torch_model(name)
    params = dict(model.named_parameters())
    loss = torch_pooled_loss(model, feeds, target)
    loss.backward()
    assert relative_error(results[0], loss.item()) < BOUND
    trained = [n[: -len(".grad")] for n in names[1:]]
    assert sorted(torch_parameter(n, params)[0] for n in trained) == sorted(params)
    torch_grads = {n: torch_array(n, {k: p.grad for k, p in params.items()}) for n in trained}
    errors = gradient_errors(dict(zip(trained, results[1:])), torch_grads)
    worst = max(errors, key=errors.get)
    assert errors[worst] < BOUND, f"{worst}: {errors[worst]:.2e}"

    # One SGD step: the same update as torch.optim.SGD.
    Interpreter(module).run("train_step", {**feeds, "target": target}, update_params=True)
    initial = {n: p.detach().clone() for n, p in params.items()}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    for n in trained:
        check_update(n, module.params[n].data, torch_array(n, params), torch_array(n, initial),
                     BOUND)


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_zoo_adam_step_matches_torch(name: str, zoo_module: Any) -> None:
    """torch.optim.Adam is given @backward's gradients (Adam amplifies the
    rounding of tiny gradient elements into updates of about ±lr; the
    gradients are compared with autograd in the test above)."""
    lr = 1e-3
    module = training_module(zoo_module, name, "adam", lr)
    feeds = {**zoo_inputs(), "target": target_for(module)}
    interpreter = Interpreter(module)
    model = torch_model(name)
    params = dict(model.named_parameters())
    initial = {n: p.detach().clone() for n, p in params.items()}
    set_torch_gradients(module, interpreter.run("backward", feeds), params)
    (loss,) = interpreter.run("train_step", feeds, update_params=True)
    expected = torch_pooled_loss(model, feeds, feeds["target"])
    assert relative_error(loss, expected.item()) < BOUND
    torch.optim.Adam(model.parameters(), lr=lr).step()
    trained = [n for n, p in module.params.items() if p.kind == "weight"]
    for n in trained:
        check_update(n, module.params[n].data, torch_array(n, params), torch_array(n, initial),
                     BOUND)
    assert int(module.params["optimizer.step"].data) == 1
    states = [n for n, p in module.params.items() if p.kind == "state"]
    assert len(states) == 2 * len(trained) + 1


def test_both_exporters_canonicalise_bert_tiny_to_the_same_ir(zoo_module: Any) -> None:
    """Parameter names agree (the importer names exporter-made initializers
    after the module that uses them), so the comparison is exact: same text,
    same parameter data.  Only the provenance attributes (opset, producer)
    may differ."""
    params = dict(torch_model("bert-tiny").named_parameters())
    modules = {}
    for exporter in ("torchscript", "dynamo"):
        module = zoo_module("bert-tiny", exporter)
        weights = [n for n, p in module.params.items() if p.kind == "weight"]
        assert sorted(torch_parameter(n, params)[0] for n in weights) == sorted(params), exporter
        PassManager("default").run(module)
        modules[exporter] = module
    a, b = modules["torchscript"], modules["dynamo"]
    assert set(a.attributes) == set(b.attributes)
    b.attributes = a.attributes
    if not structurally_equal(a, b):
        left, right = print_module(a).splitlines(), print_module(b).splitlines()
        diff = [f"- {x}\n+ {y}" for x, y in zip(left, right) if x != y][:10]
        pytest.fail("the exporters' BERT-Tiny differ after canonicalisation:\n" + "\n".join(diff))


class OutputsUnchanged(PassInstrument):
    """Runs @forward after every pass and compares with the input's outputs."""

    def __init__(self, feeds: dict[str, np.ndarray], bound: float) -> None:
        self.feeds, self.bound = feeds, bound
        self.reference: list[np.ndarray] | None = None
        self.checked: list[str] = []
        self.last_text = ""

    def before_pipeline(self, pipeline: Any, module: Module) -> None:
        self.reference = Interpreter(module).run("forward", self.feeds)
        self.last_text = print_module(module)

    def after_pass(self, pass_: Any, index: int, module: Module, record: Any) -> None:
        text = print_module(module)
        if text == self.last_text:        # the IR did not change: neither can the outputs
            self.checked.append(record.pass_text)
            return
        self.last_text = text
        outputs = Interpreter(module).run("forward", self.feeds)
        for name, got, want in zip(module["forward"].result_names, outputs, self.reference):
            error = relative_error(got, want)
            assert error < self.bound, f"{record.pass_text} changed {name} by {error:.2e}"
        self.checked.append(record.pass_text)


@pytest.mark.parametrize("name", list_models())
def test_cleanup_and_fusion_keep_interpreter_outputs(name: str, zoo_module: Any) -> None:
    module = zoo_module(name)
    check = OutputsUnchanged(zoo_inputs(), 1e-5)
    run = PassManager("raise-ops,canonicalize,fold-constants,cse,dce,fuse{attention=false},"
                      "fuse{linear=false},default", instruments=[check]).run(module)
    assert len(check.checked) == len(run.records)
    names = [op.name for op in run.module["forward"]]
    assert "nn.linear" in names
    assert "nn.attention" in names          # every zoo model has sdp or wma heads
