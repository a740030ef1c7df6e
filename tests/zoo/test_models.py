"""torch models of the zoo: determinism, sizes, prune points, masking, classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from frontends.zoo import (
    ZOO,
    build_classifier,
    build_model,
    example_inputs,
    example_inputs_numpy,
    parse_description,
    prune_points,
)
from frontends.zoo.modeling import PrunePoint, dct_matrix, dft_matrices
from tests.zoo.conftest import EXPORT_TEST_MODELS, FLEXIBERT_MODELS
from transcode_ir.errors import UserError


@pytest.mark.parametrize("name", list(ZOO))
def test_builds_deterministically_from_the_seed(zoo_cache, name: str) -> None:
    model = zoo_cache.model(name)
    again = build_model(name, seed=0)
    other = build_model(name, seed=1)
    state, state_again, state_other = model.state_dict(), again.state_dict(), other.state_dict()
    assert list(state) == list(state_again) == list(state_other)
    for key, value in state.items():
        assert torch.equal(value, state_again[key]), key
        assert not torch.equal(value, state_other[key]), key
    assert not model.training and not again.training
    # parameter count computed without torch agrees with torch
    assert sum(p.numel() for p in model.parameters()) == ZOO[name].parameter_count()
    del again, other


def test_building_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    build_model("bert-tiny", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_weights_look_like_bert_but_nothing_is_trivial(zoo_cache) -> None:
    model = zoo_cache.model("flexibert-mix-c")
    for name, param in model.named_parameters():
        param = param.detach()
        assert not torch.all(param == 0), name
        assert not torch.all(param == 1), name
        if name.endswith("LayerNorm.weight"):
            assert abs(float(param.mean()) - 1.0) < 0.1, name
        elif param.dim() == 2 and "wma" not in name:
            assert abs(float(param.std()) - 0.02) < 0.005, name


def test_vocab_size_override() -> None:
    model = build_model("bert-tiny", vocab_size=1000)
    assert model.embeddings.word_embeddings.weight.shape == (1000, 128)
    with pytest.raises(UserError, match="unknown model"):
        build_model("bert-enormous")
    with pytest.raises(UserError, match="hidden"):
        build_model("l2:h100:sdp:ff512")


def test_example_inputs_pad_every_row() -> None:
    input_ids, attention_mask = example_inputs(batch=4, seq=32, vocab_size=500, seed=3)
    assert input_ids.dtype == torch.int64 and attention_mask.dtype == torch.int64
    assert input_ids.shape == attention_mask.shape == (4, 32)
    lengths = attention_mask.sum(1)
    assert torch.all(lengths >= 16) and torch.all(lengths < 32)
    assert torch.all(attention_mask[:, 0] == 1)
    # mask is a prefix of ones; padded ids are 0, real ids in [1, vocab)
    for row in range(4):
        n = int(lengths[row])
        assert torch.all(attention_mask[row, :n] == 1) and torch.all(attention_mask[row, n:] == 0)
        assert torch.all(input_ids[row, n:] == 0) and torch.all(input_ids[row, :n] >= 1)
    assert int(input_ids.max()) < 500
    numpy_ids, numpy_mask = example_inputs_numpy(4, 32, 500, 3)
    assert np.array_equal(numpy_ids, input_ids.numpy())
    assert np.array_equal(numpy_mask, attention_mask.numpy())
    assert not np.array_equal(example_inputs_numpy(4, 32, 500, 4)[0], numpy_ids)
    with pytest.raises(UserError, match="batch"):
        example_inputs_numpy(0, 8)


@pytest.mark.parametrize("name", EXPORT_TEST_MODELS)
def test_forward_shapes_and_padding_does_not_leak(zoo_cache, name: str) -> None:
    model = zoo_cache.model(name)
    input_ids, attention_mask = example_inputs(3, 24, seed=1)
    noisy_ids = input_ids.clone()
    noisy_ids[attention_mask == 0] = 777  # change only padded tokens
    with torch.no_grad():
        hidden, pooled = model(input_ids, attention_mask)
        hidden_noisy, pooled_noisy = model(noisy_ids, attention_mask)
        hidden_default, _ = model(input_ids)  # attention_mask defaults to all ones
    size = ZOO[name].output_size
    assert hidden.shape == (3, 24, size) and pooled.shape == (3, size)
    real = attention_mask.bool()
    assert torch.allclose(hidden[real], hidden_noisy[real], atol=1e-6)
    assert torch.allclose(pooled, pooled_noisy, atol=1e-6)
    assert not torch.allclose(hidden, hidden_default)  # the mask matters
    assert torch.isfinite(hidden).all()


@pytest.mark.parametrize("name", ("bert-tiny",) + FLEXIBERT_MODELS)
def test_prune_points_exist_and_see_the_documented_tensors(zoo_cache, name: str) -> None:
    model = zoo_cache.model(name)
    modules = dict(model.named_modules())
    config = ZOO[name]
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for point in prune_points(name):
        module = modules[point.path]
        expected = torch.nn.Linear if point.kind == "linear" else PrunePoint
        assert isinstance(module, expected), point
        handles.append(module.register_forward_hook(
            lambda _m, _i, out, path=point.path: seen.__setitem__(path, out.detach().clone())))
    # every PrunePoint in the model is a documented prune point
    documented = {p.path for p in prune_points(name)}
    for path, module in modules.items():
        if isinstance(module, PrunePoint):
            assert path in documented, path
    batch, seq = 2, 12
    input_ids, attention_mask = example_inputs(batch, seq, seed=2)
    try:
        with torch.no_grad():
            model(input_ids, attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    assert set(seen) == documented
    for index, layer in enumerate(config.layers):
        base = f"encoder.layer.{index}.attention.self"
        assert seen[f"{base}.context"].shape == (batch, seq, layer.hidden)
        if layer.num_attention_heads:
            shape = (batch, layer.num_attention_heads, seq, seq)
            assert seen[f"{base}.scores"].shape == shape
            probs = seen[f"{base}.probs"]
            assert probs.shape == shape
            assert torch.allclose(probs.sum(-1), torch.ones(shape[:-1]), atol=1e-5)
            # scores are after scale and mask: padded keys carry the -10000 mask
            padded = attention_mask[:, None, None, :].expand(shape) == 0
            assert torch.all(seen[f"{base}.scores"][padded] < -9000)
            assert torch.all(probs[padded] == 0)


def test_a_pruning_hook_changes_the_output(zoo_cache) -> None:
    """What the DynaProp runtime will do: zero |x| <= tau at a prune point."""
    model = zoo_cache.model("bert-tiny")
    input_ids, attention_mask = example_inputs(2, 16)
    with torch.no_grad():
        reference, _ = model(input_ids, attention_mask)
    # random weights give near-uniform probabilities: prune below their median
    def prune(_module, _inputs, out):  # noqa: ANN001, ANN202
        tau = out.abs().median()
        return torch.where(out.abs() <= tau, torch.zeros_like(out), out)

    handle = model.encoder.layer[0].attention.self.probs.register_forward_hook(prune)
    try:
        with torch.no_grad():
            pruned, _ = model(input_ids, attention_mask)
    finally:
        handle.remove()
    assert not torch.allclose(reference, pruned)


def test_token_mixing_matrices() -> None:
    n, d = 12, 8
    cos_n, sin_n = dft_matrices(n)
    cos_d, sin_d = dft_matrices(d)
    x = torch.randn(n, d, dtype=torch.float64)
    expected = torch.fft.fft2(x).real / math.sqrt(n * d)
    got = cos_n.double() @ x @ cos_d.double() - sin_n.double() @ x @ sin_d.double()
    assert torch.allclose(got, expected, atol=1e-6)
    dct = dct_matrix(n).double()
    assert torch.allclose(dct @ dct.T, torch.eye(n, dtype=torch.float64), atol=1e-6)
    # DCT-II of a constant vector has only the DC coefficient
    assert torch.allclose((dct @ torch.ones(n, dtype=torch.float64))[1:],
                          torch.zeros(n - 1, dtype=torch.float64), atol=1e-6)


def test_linear_transform_heads_at_full_length_are_the_transforms() -> None:
    """At seq == max_position_embeddings the dft head is exactly Re(F_s X F_d)."""
    from frontends.zoo.modeling import build_encoder

    config = parse_description("l2:h128:dft,dct:ff256", max_position_embeddings=16)
    model = build_encoder(config, seed=0)
    attention = model.encoder.layer[0].attention.self
    captured: dict[str, torch.Tensor] = {}
    attention.value.register_forward_hook(lambda _m, _i, out: captured.__setitem__("v", out))
    attention.context.register_forward_hook(lambda _m, _i, out: captured.__setitem__("c", out))
    input_ids = torch.randint(1, 100, (1, 16))
    with torch.no_grad():
        model(input_ids)
    value, context = captured["v"][0].double(), captured["c"][0].double()
    dft_head = value[:, :64]
    expected_dft = torch.fft.fft2(dft_head).real / math.sqrt(16 * 64)
    assert torch.allclose(context[:, :64], expected_dft, atol=1e-5)
    dct_head = value[:, 64:]
    expected_dct = dct_matrix(16).double() @ dct_head @ dct_matrix(64).double().T
    assert torch.allclose(context[:, 64:], expected_dct, atol=1e-5)


def test_classifier(zoo_cache) -> None:
    classifier = build_classifier("flexibert-mix-a", num_classes=3, seed=0)
    assert not classifier.training
    encoder_state = zoo_cache.model("flexibert-mix-a").state_dict()
    for key, value in classifier.bert.state_dict().items():
        assert torch.equal(value, encoder_state[key]), key
    input_ids, attention_mask = example_inputs(4, 16)
    with torch.no_grad():
        logits = classifier(input_ids, attention_mask)
    assert logits.shape == (4, 3)
    # trainable: a step of SGD changes the weights
    classifier.train()
    optimizer = torch.optim.SGD(classifier.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(
        classifier(input_ids, attention_mask), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    before = classifier.classifier.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, classifier.classifier.weight)
    modules = dict(classifier.named_modules())
    for point in prune_points("flexibert-mix-a", classifier=True):
        assert point.path in modules
    with pytest.raises(UserError, match="num_classes"):
        build_classifier("bert-tiny", num_classes=0)
