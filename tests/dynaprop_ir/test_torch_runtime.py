"""The pruned model in onnxruntime against the torch DynaProp runtime (frontends/dynaprop):
same weights, same data, same τ_I -- the same accuracy and the same measured sparsity at
every prune point.

A BERT-Tiny classifier for ListOps (the task of the DynaProp study; its seeded weights,
untrained: a few dozen training steps do not lift it above the majority class, and the
comparison needs equal weights, not good ones) is run by the torch runtime on
validation rows, which measures a density profile; the classifier goes to
ONNX and into the IR, ``dynaprop{profile=...}`` inserts the prune ops (their densities
must be the profile's), and the pruned IR goes back to ONNX with every prune result as an
extra output, so that onnxruntime's zeros can be counted point by point.
"""

from __future__ import annotations

import numpy as np
import pytest

import passes.dynaprop  # noqa: F401  (registers the pass)
from passes.dynaprop import prune_records
from transcode_ir import run_pipeline

TAU_I = 0.02
ROWS, SEQ = 64, 32


@pytest.fixture(scope="module")
def classifier_setup(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    torch = pytest.importorskip("torch")
    from frontends.dynaprop import DynaProp
    from frontends.dynaprop.profile import build_profile, write_profile
    from frontends.export import export_onnx
    from frontends.tasks import ListOpsConfig, generate_listops
    from frontends.tasks.trainer import build_for_task

    data = generate_listops(ListOpsConfig(train_size=0, validation_size=ROWS, test_size=0,
                                          max_length=SEQ, seed=0))
    model = build_for_task("bert-tiny", data, seed=0).eval()
    split = data.validation
    ids, mask = torch.from_numpy(split.input_ids), torch.from_numpy(split.attention_mask)
    with DynaProp(model, TAU_I) as runtime, torch.no_grad():
        logits = model(ids, mask).numpy()
        statistics = runtime.statistics()
        prefix = runtime.encoder_prefix
    folder = tmp_path_factory.mktemp("classifier")
    profile = write_profile(build_profile(
        statistics, model="bert-tiny", seed=0, mode="inference", tau_i=TAU_I, tau_t=0.0,
        data={"task": "listops", "batches": 1}, module_prefix=prefix), folder / "profile.json")
    onnx_path = folder / "classifier.onnx"
    export_onnx(model, onnx_path, exporter="torchscript", batch=ROWS, seq=SEQ)
    return split, logits, statistics, prefix, profile, onnx_path


def test_pruned_model_in_onnxruntime_matches_the_torch_runtime(
        classifier_setup: tuple) -> None:
    from backends.onnx import export_function
    from frontends.onnx import import_onnx
    from tests.backend_onnx.checks import run_onnx

    split, torch_logits, statistics, prefix, profile, onnx_path = classifier_setup
    module = import_onnx(onnx_path, {"input_ids": (ROWS, SEQ), "attention_mask": (ROWS, SEQ)})
    module = run_pipeline(module, f"cleanup,dynaprop{{profile={profile}}}").module

    # The IR carries the runtime's densities, under the runtime's names.
    records = prune_records(module)
    assert sorted(r.point for r in records) == sorted(statistics.points)
    for record in records:
        assert record.source == "profile" and record.tau == TAU_I
        assert record.density == pytest.approx(statistics.points[record.point].forward.density,
                                               abs=1e-12)

    # onnxruntime: the logits and every pruned value.
    forward = module["forward"]
    prunes = [op for op in forward if op.name == "nn.prune"]
    forward.set_outputs(forward.outputs + [op.results[0] for op in prunes],
                        forward.result_names + [op.attr("point") for op in prunes])
    outputs = run_onnx(export_function(module),
                       {"input_ids": split.input_ids, "attention_mask": split.attention_mask})
    logits, pruned = outputs[0], dict(zip((op.attr("point") for op in prunes), outputs[1:]))

    # Accuracy: the same predictions, except where torch's top two logits are within
    # float rounding of each other.
    top2 = np.sort(torch_logits, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4
    torch_pred, ort_pred = torch_logits.argmax(1), logits.argmax(1)
    assert (torch_pred[clear] == ort_pred[clear]).all()
    torch_accuracy = float((torch_pred == split.labels).mean())
    ort_accuracy = float((ort_pred == split.labels).mean())
    assert abs(torch_accuracy - ort_accuracy) <= (~clear).sum() / ROWS
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-3, atol=1e-3)

    # Sparsity: zeros counted in onnxruntime's pruned values equal the runtime's counts,
    # up to elements within float rounding of tau.
    for point, value in pruned.items():
        want = statistics.points[point].forward
        assert value.size == want.elements, point
        zeros = int(value.size - np.count_nonzero(value))
        assert abs(zeros - want.zeros) <= max(2, 1e-3 * want.elements), (point, zeros, want)
    total = sum(v.size - np.count_nonzero(v) for v in pruned.values()) / \
        sum(v.size for v in pruned.values())
    assert total == pytest.approx(statistics.activation_sparsity, abs=1e-3)
    assert 0.05 < total < 0.95      # pruning did something, and not everything
