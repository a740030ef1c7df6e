"""The torch DynaProp runtime: exact pruning forward and backward, counters, τ = 0 identity."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F
from torch import nn

from frontends.dynaprop import DynaProp, find_prune_points, prune_tensor
from frontends.dynaprop.kernels import native_available, prune, prune_gradient
from frontends.zoo import build_classifier, build_model, example_inputs
from transcode_ir.errors import UserError

torch.set_num_threads(1)


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous().view(torch.int32)


# ---------------------------------------------------------------------------
# hand-made tensors
# ---------------------------------------------------------------------------


def test_prune_tensor_is_exact_on_hand_made_values() -> None:
    tau = 0.25
    x = torch.tensor(
        [0.0, -0.0, 0.25, -0.25, 0.2500001, -0.2500001, 1e-30, -1e-30, 3.0, -7.5,
         float("inf"), -float("inf"), float("nan")],
        dtype=torch.float32,
    )
    y = prune_tensor(x, tau)
    pruned = x.abs() <= torch.tensor(tau, dtype=torch.float32)
    assert pruned.tolist() == [True] * 4 + [False, False, True, True] + [False] * 5
    assert torch.all(y[pruned] == 0)
    kept = ~pruned & ~x.isnan()
    assert torch.equal(bits(y[kept]), bits(x[kept]))  # bit for bit
    assert math.isnan(y[-1].item())  # NaN is never pruned


def test_prune_tensor_random_bitwise_and_identity_at_zero() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(64, 33, generator=generator) * 0.1
    x[::7] = 0.0
    for tau in (1e-4, 0.01, 0.05, 0.3):
        y = prune_tensor(x, tau)
        mask = x.abs() <= torch.tensor(tau, dtype=x.dtype)
        assert torch.equal(bits(y[~mask]), bits(x[~mask]))
        assert torch.count_nonzero(y[mask]) == 0
    assert prune_tensor(x, 0.0) is x


@pytest.mark.skipif(not native_available()[0], reason="no C compiler for the native kernels")
def test_native_kernels_equal_the_torch_ones_bitwise() -> None:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(6, 5, 7, generator=generator) * 0.1
    x[0, 0, :3] = torch.tensor([0.0, -0.0, float("nan")])
    forward = F.hardshrink(x, 0.05)
    for tau in (0.0, 0.01, 0.05):
        for native in (True, False):
            y, nonzeros = prune(x, tau, native)
            assert torch.equal(bits(y), bits(F.hardshrink(x, tau))) if tau else True
            assert float(nonzeros) == float((y != 0).sum())
        # gradients: contiguous, transposed (dense, other strides), and non-dense
        for g in (x.clone(), x.transpose(0, 2).contiguous().transpose(0, 2), x[:, :, ::2]):
            mask = forward if g.shape == forward.shape else None
            reference, count = prune_gradient(g, mask, tau, native=False)
            result, native_count = prune_gradient(g, mask, tau, native=True)
            assert torch.equal(bits(result.contiguous()), bits(reference.contiguous()))
            assert float(native_count) == float(count)


def test_threshold_is_compared_in_the_tensor_dtype() -> None:
    # float32(0.1) > 0.1 (double): an element equal to float32(0.1) is at the threshold.
    x = torch.tensor([0.1, -0.1], dtype=torch.float32)
    assert torch.count_nonzero(prune_tensor(x, 0.1)) == 0


class TwoLayer(nn.Module):
    """A hand-checkable model: Linear → PrunePoint → Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 3)
        self.middle = PrunePoint()
        self.second = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.middle(self.first(x)))


class PrunePoint(nn.Module):
    """A user's own identity marker: discovered by its class name."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_backward_pruning_by_hand_on_a_small_model() -> None:
    torch.manual_seed(0)
    model = TwoLayer()
    x = torch.randn(5, 4)
    tau_i, tau_t = 0.2, 0.05
    with DynaProp(model, tau_i, tau_t, points=["first", "middle"]) as runtime:
        out = model(x)
        out.pow(2).sum().backward()
        stats = runtime.statistics()
    # Reference by hand, from the same weights.
    w1, b1 = model.first.weight.detach(), model.first.bias.detach()
    w2, b2 = model.second.weight.detach(), model.second.bias.detach()
    h_raw = x @ w1.T + b1
    keep = h_raw.abs() > tau_i
    h = torch.where(keep, h_raw, torch.zeros(()))  # pruned at "first", then "middle" again
    expected_out = h @ w2.T + b2
    assert torch.equal(out.detach(), expected_out)
    g_out = 2 * expected_out
    grad_w2 = g_out.T @ h
    grad_b2 = g_out.sum(0)
    g_h = g_out @ w2  # gradient at the output of "middle"
    g_h = torch.where(g_h.abs() > tau_t, g_h, torch.zeros(()))  # τ_T at "middle"
    g_h = torch.where(keep, g_h, torch.zeros(()))  # derivative of the "first" pruning
    g_h = torch.where(g_h.abs() > tau_t, g_h, torch.zeros(()))  # τ_T at "first"
    grad_w1 = g_h.T @ x
    grad_b1 = g_h.sum(0)

    def pruned(g: torch.Tensor) -> torch.Tensor:
        return torch.where(g.abs() > tau_t, g, torch.zeros(()))

    torch.testing.assert_close(model.second.weight.grad, pruned(grad_w2), rtol=1e-6, atol=0)
    torch.testing.assert_close(model.second.bias.grad, pruned(grad_b2), rtol=1e-6, atol=0)
    torch.testing.assert_close(model.first.weight.grad, pruned(grad_w1), rtol=1e-6, atol=0)
    torch.testing.assert_close(model.first.bias.grad, pruned(grad_b1), rtol=1e-6, atol=0)
    # counters: forward zeros of the pruned activation, at both points
    zeros = int((~keep).sum())
    assert stats.points["first"].forward is not None
    assert stats.points["first"].forward.zeros == zeros
    assert stats.points["middle"].forward.zeros == zeros
    assert stats.points["first"].forward.elements == 15
    assert stats.points["first"].backward.zeros == int((g_h == 0).sum())
    assert set(stats.weight_gradients) == {
        "first.weight", "first.bias", "second.weight", "second.bias"
    }


def test_counters_accumulate_and_reset() -> None:
    model = TwoLayer()
    runtime = DynaProp(model, 0.0, 0.0, points=["middle"], prune_weight_gradients=False)
    with torch.no_grad():
        model.first.weight.zero_()
        model.first.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
        model(torch.randn(2, 4))
        model(torch.randn(3, 4))
    density = runtime.statistics().points["middle"].forward
    assert (density.elements, density.zeros) == (15, 10)
    assert runtime.statistics().points["middle"].backward is None  # no backward ran
    runtime.reset()
    assert runtime.statistics().points["middle"].forward is None
    runtime.remove()


# ---------------------------------------------------------------------------
# zoo models
# ---------------------------------------------------------------------------


def _classifier_step(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor,
                     labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # dropout, when the model is in train mode
    logits = model(ids, mask)
    F.cross_entropy(logits, labels).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


@pytest.fixture(scope="module")
def zoo_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, mask = example_inputs(4, 24, vocab_size=50, seed=5)
    return ids, mask, torch.tensor([1, 7, 3, 0])


@pytest.mark.parametrize("train_mode", [False, True])
def test_tau_zero_equals_unwrapped_exactly(zoo_batch, train_mode: bool) -> None:
    ids, mask, labels = zoo_batch
    model = build_classifier("bert-tiny", 10, seed=1, vocab_size=50).train(train_mode)
    reference_logits, reference_grads = _classifier_step(model, ids, mask, labels)
    with DynaProp(model, 0.0, 0.0) as runtime:
        logits, grads = _classifier_step(model, ids, mask, labels)
        stats = runtime.statistics()
    assert torch.equal(logits, reference_logits)
    assert grads.keys() == reference_grads.keys()
    assert len(grads) == len(list(model.parameters()))
    for name in reference_grads:
        assert torch.equal(grads[name], reference_grads[name]), name
    # ... and it still counted every point in both directions
    assert all(p.forward is not None and p.backward is not None for p in stats.points.values())


def test_tau_zero_equals_unwrapped_on_a_heterogeneous_encoder() -> None:
    model = build_model("flexibert-mix-a", seed=2, vocab_size=40)
    ids, mask = example_inputs(2, 12, vocab_size=40, seed=1)

    def step() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        hidden, pooled = model(ids, mask)
        (hidden.square().mean() + pooled.sum()).backward()
        return pooled.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                 if p.grad is not None}

    reference = step()
    with DynaProp(model):
        wrapped = step()
    assert torch.equal(wrapped[0], reference[0])
    assert all(torch.equal(wrapped[1][n], reference[1][n]) for n in reference[1])


class _ReferencePrune(torch.autograd.Function):
    """An independent implementation: where() forward, where() backward (mask then τ_T)."""

    @staticmethod
    def forward(ctx, y, tau_i, tau_t):  # type: ignore[no-untyped-def,override]
        keep = y.abs() > torch.tensor(tau_i, dtype=y.dtype)
        ctx.save_for_backward(keep)
        ctx.tau_t = tau_t
        return torch.where(keep, y, torch.zeros((), dtype=y.dtype))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
        (keep,) = ctx.saved_tensors
        zero = torch.zeros((), dtype=grad.dtype)
        grad = torch.where(keep, grad, zero)
        grad = torch.where(grad.abs() > torch.tensor(ctx.tau_t, dtype=grad.dtype), grad, zero)
        return grad, None, None


def _reference_step(model: nn.Module, paths: list[str], tau_i: float, tau_t: float,
                    ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):  # type: ignore[no-untyped-def]
    modules = dict(model.named_modules())
    handles = [
        modules[path].register_forward_hook(
            lambda module, inputs, output: _ReferencePrune.apply(output, tau_i, tau_t)
        )
        for path in paths
    ]
    try:
        logits, grads = _classifier_step(model, ids, mask, labels)
    finally:
        for handle in handles:
            handle.remove()
    linear_params = {
        f"{path}.{leaf}" for path, module in modules.items() if isinstance(module, nn.Linear)
        for leaf, _ in module.named_parameters(recurse=False)
    }
    zero = torch.zeros(())
    for name in grads:
        if name in linear_params:
            grads[name] = torch.where(grads[name].abs() > tau_t, grads[name], zero)
    return logits, grads


BACKENDS = ["torch"] + (["native"] if native_available()[0] else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_zoo_pruning_matches_an_independent_reference_forward_and_backward(
    zoo_batch, backend: str
) -> None:
    ids, mask, labels = zoo_batch
    model = build_classifier("bert-tiny", 10, seed=4, vocab_size=50)
    tau_i, tau_t = 0.03, 2e-4
    # The structural points, and the zoo module whose output is each one's value (the
    # reference prunes module outputs): Linears and the FFN's activation by their label,
    # scores/probs/context by the zoo's PrunePoint modules inside the self-attention.
    points = find_prune_points(model, ids, mask)
    module_of = {p.path: f"{p.label}.{p.role}" if p.role in ("scores", "probs", "context")
                 else p.label for p in points}
    assert len(points) == 18
    paths = list(module_of.values())
    expected_logits, expected_grads = _reference_step(model, paths, tau_i, tau_t, ids, mask, labels)

    raw: dict[str, torch.Tensor] = {}
    with DynaProp(model, tau_i, tau_t, backend=backend,
                  observer=lambda p, d, t: raw.__setitem__((p, d), t.clone())) as runtime:
        assert runtime.backend == backend
        seen: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        capture = [modules[p].register_forward_hook(
            lambda m, i, o, p=p: seen.__setitem__(p, o.detach().clone())) for p in paths]
        logits, grads = _classifier_step(model, ids, mask, labels)
        for handle in capture:
            handle.remove()
        stats = runtime.statistics()

    assert torch.equal(logits, expected_logits)
    for name in expected_grads:
        assert torch.equal(grads[name], expected_grads[name]), name
    # every point: zero at or under τ_I, bit-identical above, and counted exactly
    for path, module_path in module_of.items():
        before, after = raw[(path, "forward")], seen[module_path]
        if before.shape != after.shape:     # context: before the heads are merged
            after = after.reshape(*before.shape[:1], before.shape[2], before.shape[1],
                                  before.shape[3]).transpose(1, 2)
        keep = before.abs() > torch.tensor(tau_i)
        assert torch.equal(bits(after[keep]), bits(before[keep])), path
        assert torch.count_nonzero(after[~keep]) == 0, path
        assert stats.points[path].forward.zeros == int((after == 0).sum()), path
        gradient = raw[(path, "backward")]
        pruned_gradient = torch.where(gradient.abs() > tau_t, gradient, torch.zeros(()))
        assert stats.points[path].backward.zeros == int((pruned_gradient == 0).sum()), path
    for name, density in stats.weight_gradients.items():
        assert density.zeros == int((grads[name] == 0).sum()), name
    assert stats.activation_sparsity > 0.1 and stats.gradient_sparsity > 0.1


def test_removed_runtime_leaves_the_model_as_before(zoo_batch) -> None:
    ids, mask, labels = zoo_batch
    model = build_classifier("bert-tiny", 10, seed=1, vocab_size=50)
    reference = _classifier_step(model, ids, mask, labels)
    runtime = DynaProp(model, 0.1, 1e-3)
    pruned = _classifier_step(model, ids, mask, labels)
    assert not torch.equal(pruned[0], reference[0])
    runtime.remove()
    again = _classifier_step(model, ids, mask, labels)
    assert torch.equal(again[0], reference[0])
    assert all(torch.equal(again[1][n], reference[1][n]) for n in reference[1])
    DynaProp(model).remove()  # and another one can attach now


def test_prune_points_of_zoo_and_generic_models() -> None:
    """Points are found by structure and named layer.<i>.<role>; module paths are labels."""
    classifier = build_classifier("bert-tiny", 3, seed=0, vocab_size=20)
    ids, mask = example_inputs(2, 8, vocab_size=20, seed=0)
    found = find_prune_points(classifier, ids, mask)
    roles = ["value", "query", "key", "scores", "probs", "context", "attention_output",
             "intermediate", "output"]
    assert sorted(p.path for p in found) == sorted(f"layer.{i}.{r}" for i in range(2)
                                                   for r in roles)
    by_name = {p.path: p for p in found}
    assert by_name["layer.1.query"].label == "bert.encoder.layer.1.attention.self.query"
    assert by_name["layer.0.intermediate"].label == "bert.encoder.layer.0.intermediate"
    # nothing outside attention and the FFNs: not the pooler, not the classifier
    assert not any("pooler" in p.label or "classifier" in p.label for p in found)
    runtime = DynaProp(classifier)
    assert runtime.points == []          # found on the first forward call
    with torch.no_grad():
        classifier(ids, mask)
    assert [p.path for p in runtime.points] == [p.path for p in found]
    runtime.remove()


class _Renamed(nn.Module):
    """Attention and an FFN under names that look like nothing in BERT."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Linear(8, 24)           # q, k, v in one projection
        self.beta = nn.Linear(8, 8)
        self.gamma = nn.Linear(8, 32)
        self.delta = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.alpha(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, dim=-1)
        x = x + self.beta(weights @ v)
        return x + self.delta(F.silu(self.gamma(x)))


def test_prune_points_found_under_any_names() -> None:
    model = _Renamed()
    x = torch.randn(2, 5, 8)
    found = {p.path: p.label for p in find_prune_points(model, x)}
    assert found == {"layer.0.qkv": "alpha", "layer.0.scores": "", "layer.0.probs": "",
                     "layer.0.context": "", "layer.0.attention_output": "beta",
                     "layer.0.intermediate": "", "layer.0.output": "delta"}
    with DynaProp(model, 0.05) as runtime, torch.no_grad():
        model(x)
        stats = runtime.statistics()
    assert set(stats.points) == set(found)
    assert all(p.forward is not None for p in stats.points.values())


def test_a_model_without_structure_has_no_points() -> None:
    model = TwoLayer()
    runtime = DynaProp(model)
    with pytest.raises(UserError, match="no DynaProp prune points"), torch.no_grad():
        model(torch.randn(2, 4))
    runtime.remove()


def test_runtime_user_errors() -> None:
    model = TwoLayer()
    with pytest.raises(UserError, match="tau_i: expected a finite number >= 0"):
        DynaProp(model, tau_i=-0.1, points=["first"])
    with pytest.raises(UserError, match="unknown prune point or parameter 'nope'"):
        DynaProp(model, tau_i={"nope": 0.1}, points=["first"])
    with pytest.raises(UserError, match="is not a module"):
        DynaProp(model, points=["missing"])
    runtime = DynaProp(model, points=["first"])
    with pytest.raises(UserError, match="already has a DynaProp runtime"):
        DynaProp(model, points=["first"])
    runtime.remove()


def test_per_point_thresholds() -> None:
    model = TwoLayer()
    with DynaProp(model, {"middle": 10.0}, 0.0, points=["first", "middle", "second"]) \
            as runtime:
        with torch.no_grad():
            out = model(torch.randn(3, 4))
        tau_i, _ = runtime.thresholds()
        stats = runtime.statistics()
    assert tau_i == {"first": 0.0, "middle": 10.0, "second": 0.0}
    assert stats.points["middle"].forward.density == 0.0
    assert torch.equal(out, model.second.bias.detach().expand(3, 2))


def test_importing_the_packages_does_not_import_torch() -> None:
    code = (
        "import sys, frontends.dynaprop, frontends.tasks, tools.commands.dynaprop\n"
        "from frontends.dynaprop import Density, read_profile\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_count_false_counts_nothing_but_still_prunes(backend: str) -> None:
    model = TwoLayer()
    x = torch.randn(4, 4)
    with DynaProp(model, 10.0, 1.0, count=False, backend=backend,
                  points=["first", "middle", "second"]) as runtime:
        out = model(x)
        out.sum().backward()
        stats = runtime.statistics()
    assert all(p.forward is None and p.backward is None for p in stats.points.values())
    assert stats.weight_gradients == {}
    assert torch.count_nonzero(model.first.weight.grad) == 0  # everything pruned
