"""DynaProp on every transformers family of the matrix (frontends/hf), stock exports.

For each family (small random-weight model, TorchScript export at batch 1, sequence 16,
cached in pytest's cache directory):

* the IR pass finds the prune points by structure -- projections feeding attention,
  scores, probabilities, context, attention output, the FFN's activation and output --
  whatever the modules are called;
* the torch runtime, attached to the same model, finds the same points under the same
  names, and its profile drives the IR pass: every point has its density, equal to what
  the interpreter measures on the same inputs;
* with those measured densities (τ_I = 0.02) the compiled cost (cycles and energy on
  acceltran-edge) is never above the unpruned model's.

About 40 s of CPU for all twelve once the exports are cached (first run: about 2 min).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import passes.dynaprop  # noqa: F401  (registers the pass)
from passes.dynaprop import prune_records
from transcode_ir import run_pipeline

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from frontends.hf import MATRIX, build_family_model, example_feeds, export_family  # noqa: E402

TAU_I, BATCH, SEQ = 0.02, 1, 16
ATTENTION = {"scores", "probs", "context", "attention_output"}
FFN = {"intermediate", "output"}


def _key(name: str) -> str:
    from importlib.metadata import version

    import frontends.hf

    digest = hashlib.sha256(f"{name} {BATCH} {SEQ} {version('torch')} "
                            f"{version('transformers')}".encode())
    for source in sorted(Path(frontends.hf.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def family_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    cache = getattr(request.config, "cache", None)
    directory = Path(cache.mkdir("dynaprop_families")) if cache is not None else \
        tmp_path_factory.mktemp("dynaprop_families")

    def export(name: str) -> Path:
        path = directory / f"{name}-{_key(name)}.onnx"
        if not path.exists():
            partial = directory / f"{name}.{os.getpid()}.partial.onnx"
            export_family(name, partial, "torchscript", batch=BATCH, seq=SEQ, check=False)
            partial.replace(path)
        return path

    return export


def _compile(module, pipeline: str):  # noqa: ANN001, ANN202
    from backends.elector.compile_pipeline import CompileOptions, compile_module

    return compile_module(module, CompileOptions(hw="acceltran-edge", pipeline=pipeline)).result


@pytest.mark.parametrize("name", MATRIX)
def test_family_points_profile_and_cost(name: str, family_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    from frontends.dynaprop import DynaProp
    from frontends.dynaprop.profile import build_profile, write_profile
    from frontends.onnx import import_onnx

    feeds = example_feeds(name, BATCH, SEQ, 0)
    module = import_onnx(family_onnx(name), {k: v.shape for k, v in feeds.items()})

    # the torch runtime on the same model and inputs: points by structure, a profile
    model = build_family_model(name, 0)
    with DynaProp(model, TAU_I) as runtime, torch.no_grad():
        model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        statistics = runtime.statistics()
    profile = write_profile(build_profile(
        statistics, model=name, seed=0, mode="inference", tau_i=TAU_I, tau_t=0.0,
        data={"task": "example inputs", "batches": 1}), tmp_path / "profile.json")

    # the IR pass: the same points, found by structure; the interpreter measures the
    # same densities as the runtime on the same inputs
    npz = tmp_path / "inputs.npz"
    np.savez(npz, **feeds)
    measured = run_pipeline(module.clone(),
                            f"cleanup,dynaprop{{tau-i={TAU_I},calibration={npz}}}").module
    records = {r.point: r for r in prune_records(measured)}
    assert sorted(records) == sorted(statistics.points)
    assert ATTENTION | FFN <= {n.split(".", 2)[2] for n in records}, sorted(records)
    projections = {n.split(".", 2)[2] for n in records} & {"query", "key", "value", "qkv"}
    assert projections in ({"query", "key", "value"}, {"qkv"}), sorted(records)
    for point, record in records.items():
        want = statistics.points[point].forward.density
        # an element within float rounding of tau may land on either side
        assert record.density == pytest.approx(want, abs=2e-3), point

    # the runtime's profile drives the pass (fused pipeline); measured sparsity never
    # makes the model cost more
    dense = _compile(module.clone(), "default")
    pruned_module = run_pipeline(module.clone(), f"default,dynaprop{{profile={profile}}}").module
    assert {r.source for r in prune_records(pruned_module)} == {"profile"}
    pruned = _compile(module.clone(), f"default,dynaprop{{profile={profile}}}")
    assert pruned.cycles <= dense.cycles
    assert pruned.energy.total_nj <= dense.energy.total_nj
