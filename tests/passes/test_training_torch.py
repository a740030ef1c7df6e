"""The training graph against torch: small models built here with torch
(Linear, GELU, LayerNorm, softmax attention, conv1d, ReLU), exported to ONNX
by the TorchScript exporter, imported, differentiated by ``autodiff`` and
run by the interpreter.

Bounds: every parameter's gradient within 1e-4 relative error of torch
autograd (``max |Δ| / max |g_torch|``, see ``conftest.gradient_errors`` for
the floor used for gradients that are zero in exact arithmetic); one
``@train_step`` with SGD and one with
Adam give the parameters ``torch.optim`` gives, within 1e-4 relative error of
the update ``p_new - p_old`` (``conftest.check_update``; Adam is given the
IR's gradients, see the test's docstring).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from frontends.onnx import import_onnx  # noqa: E402
from tests.passes.conftest import (  # noqa: E402
    check_update,
    gradient_errors,
    relative_error,
    set_torch_gradients,
    torch_array,
)  # noqa: E402
from transcode_ir import (  # noqa: E402
    Interpreter,
    PassManager,
    print_module,
    structurally_equal,
    verify_module,
)
from transcode_ir.passes import parse_pipeline  # noqa: E402

BOUND = 1e-4


class Encoderish(nn.Module):
    """Linear + GELU, LayerNorm, two-head softmax attention, grouped conv1d, ReLU."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.ln = nn.LayerNorm(16)
        self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1, groups=4)
        self.out = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln(F.gelu(self.fc1(x)))
        b, s, _ = h.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, 2, 8).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(8) + mask
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, s, 16)
        c = self.conv(context.transpose(1, 2)).transpose(1, 2)
        return self.out(torch.relu(h + c))


class Regressor(nn.Module):
    """A plain MLP with a tanh-approximated GELU, for the mse loss."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def inputs_for(model: nn.Module) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    if isinstance(model, Encoderish):
        mask = np.zeros((2, 1, 1, 6), np.float32)
        mask[1, ..., 4:] = -10000.0
        return {"x": rng.standard_normal((2, 6, 8)).astype(np.float32), "mask": mask}
    return {"x": rng.standard_normal((4, 6)).astype(np.float32)}


_EXPORTS: dict[tuple[str, int], Path] = {}


def export(model: nn.Module, path: Path, opset: int = 17):  # -> Module
    """Export ``model`` (the freshly seeded instance of its class) once per
    session and opset; import a fresh module each time."""
    key = (type(model).__name__, opset)
    if key not in _EXPORTS:
        model.eval()
        feeds = inputs_for(model)
        torch.onnx.export(model, tuple(torch.from_numpy(v) for v in feeds.values()), str(path),
                          input_names=list(feeds), output_names=["logits"], dynamo=False,
                          opset_version=opset)
        _EXPORTS[key] = path
    module = import_onnx(_EXPORTS[key])
    verify_module(module)
    return module


def torch_loss(model: nn.Module, loss: str, feeds: dict[str, np.ndarray],
               reference: np.ndarray) -> torch.Tensor:
    out = model(*(torch.from_numpy(v) for v in feeds.values()))
    if loss == "cross-entropy":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]),
                               torch.from_numpy(reference).reshape(-1))
    return F.mse_loss(out, torch.from_numpy(reference))


def reference_for(module, loss: str) -> np.ndarray:  # noqa: ANN001
    rng = np.random.default_rng(2)
    shape = module["forward"].outputs[0].type.shape
    if loss == "cross-entropy":
        labels = rng.integers(0, shape[-1], shape[:-1])
        labels.reshape(-1)[3] = -100           # an ignored position, as torch allows
        return labels
    return rng.standard_normal(shape).astype(np.float32)


CASES = [(Encoderish, "cross-entropy"), (Regressor, "mse")]


@pytest.mark.parametrize("make, loss", CASES, ids=["encoderish-ce", "regressor-mse"])
@pytest.mark.parametrize("pipeline",
                         ["cleanup,autodiff{{loss={loss},optimizer=sgd}},cleanup,fuse,dce",
                          "default,autodiff{{loss={loss},optimizer=sgd}}"],
                         ids=["differentiate-then-fuse", "fuse-then-differentiate"])
def test_gradients_match_torch_autograd(make: type, loss: str, pipeline: str,
                                        tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = make()
    module = export(model, tmp_path / "model.onnx")
    PassManager(pipeline.format(loss=loss)).run(module)
    feeds = inputs_for(model)
    reference = reference_for(module, loss)
    label = "labels" if loss == "cross-entropy" else "target"
    results = Interpreter(module).run("backward", {**feeds, label: reference})
    names = module["backward"].result_names

    model.zero_grad()
    expected_loss = torch_loss(model, loss, feeds, reference)
    expected_loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert relative_error(results[0], expected_loss.item()) < BOUND
    trained = [n[: -len(".grad")] for n in names[1:]]
    assert len(trained) == len(grads), trained
    errors = gradient_errors(dict(zip(trained, results[1:])),
                             {name: torch_array(name, grads) for name in trained})
    assert max(errors.values()) < BOUND, errors


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_train_step_matches_torch_optim(optimizer: str, tmp_path: Path) -> None:
    """Two steps (Adam's moments and step counter carry over).  SGD runs end
    to end on both sides.  Adam turns tiny gradients into updates of about
    ±lr, so it amplifies the rounding differences of tiny gradient elements
    (and turns the key bias's zero-in-exact-arithmetic gradient into ±lr of
    random sign); torch.optim.Adam is therefore given the gradients of the
    IR's @backward, so that the comparison is of the optimizer update that
    @train_step performs.  The gradients themselves are compared with torch
    autograd above."""
    torch.manual_seed(0)
    model = Encoderish()
    module = export(model, tmp_path / "model.onnx")
    lr = 0.05 if optimizer == "sgd" else 1e-3
    PassManager(f"cleanup,autodiff{{loss=cross-entropy,optimizer={optimizer},lr={lr}}},"
                "cleanup,fuse,dce").run(module)
    feeds = {**inputs_for(model), "labels": reference_for(module, "cross-entropy")}
    interpreter = Interpreter(module)
    params = dict(model.named_parameters())
    opt = torch.optim.SGD(model.parameters(), lr=lr) if optimizer == "sgd" else \
        torch.optim.Adam(model.parameters(), lr=lr)
    initial = {n: p.detach().clone() for n, p in params.items()}
    for _ in range(2):
        opt.zero_grad()
        expected = torch_loss(model, "cross-entropy", inputs_for(model), feeds["labels"])
        expected.backward()
        if optimizer == "adam":
            set_torch_gradients(module, interpreter.run("backward", feeds), params)
        (loss,) = interpreter.run("train_step", feeds, update_params=True)
        assert relative_error(loss, expected.item()) < BOUND
        opt.step()
    assert int(module.params["optimizer.step"].data) == 2
    for name, param in module.params.items():
        if param.kind == "weight":
            check_update(name, param.data, torch_array(name, params), torch_array(name, initial),
                         BOUND)
    if optimizer == "adam":
        state = opt.state[model.fc1.weight]
        np.testing.assert_allclose(module.params["fc1.weight_transposed.adam_m"].data,
                                   state["exp_avg"].numpy().T, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(module.params["fc1.weight_transposed.adam_v"].data,
                                   state["exp_avg_sq"].numpy().T, rtol=1e-5, atol=1e-12)


def test_training_module_round_trips_through_text(tmp_path: Path) -> None:
    """The training graph is an ordinary module: print -> parse -> print is
    identical, it verifies, and the reparsed module computes the same."""
    from transcode_ir import load_module, save_module

    torch.manual_seed(0)
    model = Encoderish()
    module = export(model, tmp_path / "model.onnx")
    PassManager("training").run(module)
    path = save_module(module, tmp_path / "train.tir")
    again = load_module(path)
    verify_module(again)
    assert print_module(again) == print_module(module)
    assert structurally_equal(again, module)
    feeds = {**inputs_for(model), "labels": reference_for(module, "cross-entropy")}
    a = Interpreter(module).run("backward", feeds)
    b = Interpreter(again).run("backward", feeds)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_decomposed_layer_norm_export_canonicalises_like_the_fused_one(tmp_path: Path) -> None:
    """Opset 13 has no LayerNormalization, so the exporter decomposes it;
    after the default pipeline both exports are the same IR."""
    torch.manual_seed(0)
    model = Encoderish()
    fused = export(model, tmp_path / "o17.onnx", opset=17)
    decomposed = export(model, tmp_path / "o13.onnx", opset=13)
    assert any(op.name == "tensor.reduce_mean" for op in decomposed["forward"])
    for m in (fused, decomposed):
        PassManager("default").run(m)
        m.name, m.attributes = "model", fused.attributes
    assert structurally_equal(fused, decomposed), "\n".join(
        line for line in print_module(decomposed).splitlines()
        if line not in print_module(fused).splitlines())


def test_training_pipeline_is_named_and_canonical() -> None:
    text = str(parse_pipeline("training"))
    assert text == ("canonicalize,fold-constants,canonicalize,cse,dce,"
                    "autodiff{loss=cross-entropy,optimizer=adam},"
                    "canonicalize,fold-constants,canonicalize,cse,dce,fuse,dce")
