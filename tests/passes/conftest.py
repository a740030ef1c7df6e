"""Shared helpers of the pass tests.

* :func:`relative_error` -- ``max |actual - expected| / max |expected|`` over
  a whole tensor, the metric every gradient and value bound here uses.
* :func:`gradient_errors` -- that metric for every gradient of a model, with
  a floor for gradients that are zero in exact arithmetic.
* :func:`check_update` -- an optimizer step's result against torch's;
  :func:`set_torch_gradients` hands the IR's gradients to torch.
* :func:`torch_parameter` -- the torch parameter behind an IR parameter: the
  importer names a Linear weight whose transpose an exporter folded
  ``<module>.weight_transposed`` and stores it as ``[in, out]``.
* ``zoo_onnx`` (session-scoped) -- ``zoo_onnx(name, exporter) -> path``:
  a zoo model exported with ``frontends.export.export_onnx`` (seed 0, a
  :data:`VOCAB`-token vocabulary: the encoders keep their layers, widths and
  heads; only the embedding table is shorter), made once per test run in the
  run's shared export folder (``onnx_exports`` in tests/conftest.py, which
  tests/elector_compile, tests/backend_onnx and tests/dynaprop_ir read too)
  and imported here at batch :data:`BATCH`, sequence :data:`SEQ`.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SMALL_VOCAB

BATCH, SEQ, VOCAB, SEED = 2, 16, SMALL_VOCAB, 0


def _openblas() -> Any:
    """numpy's bundled OpenBLAS, or None (another BLAS, or not found)."""
    libs = os.path.join(os.path.dirname(np.__file__) + ".libs", "libscipy_openblas*.so")
    for path in glob.glob(libs):
        try:
            lib = ctypes.CDLL(path)
            lib.scipy_openblas_set_num_threads64_.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            continue
    return None


@pytest.fixture(scope="session", autouse=True)
def single_threaded_blas() -> Iterator[None]:
    """Run numpy's BLAS on one thread while these tests run.

    The interpreter multiplies small matrices (batch 2 × 16 tokens); on two
    cores shared with other work, OpenBLAS's second thread spins and waits
    and makes such a product 50× slower (0.15 s instead of 3 ms for
    32×768 @ 768×768).  The previous thread count is restored afterwards."""
    lib = _openblas()
    if lib is None:
        yield
        return
    previous = lib.scipy_openblas_get_num_threads64_()
    lib.scipy_openblas_set_num_threads64_(1)
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads64_(previous)


def relative_error(actual: Any, expected: Any) -> float:
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected), initial=0.0))
    diff = float(np.max(np.abs(actual - expected), initial=0.0))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def gradient_errors(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, float]:
    """Relative error of each gradient, ``max |Δ| / max(max |g|, 1e-3 · G)``
    where G is the largest gradient element of the whole model.

    The floor matters only for gradients that are zero in exact arithmetic
    (the key bias of softmax attention: softmax ignores a per-query constant),
    where both sides hold rounding noise of size ~1e-9 · G and a plain
    relative error would compare noise with noise.
    """
    overall = max(float(np.max(np.abs(np.asarray(g, np.float64)), initial=0.0))
                  for g in expected.values())
    errors = {}
    for name, g in expected.items():
        a, e = np.asarray(actual[name], np.float64), np.asarray(g, np.float64)
        assert a.shape == e.shape, f"{name}: shape {a.shape} != {e.shape}"
        scale = max(float(np.max(np.abs(e), initial=0.0)), 1e-3 * overall)
        errors[name] = float(np.max(np.abs(a - e), initial=0.0)) / scale if scale else 0.0
    return errors


def check_update(name: str, ir_new: Any, torch_new: Any, torch_old: Any, bound: float) -> None:
    """The IR's updated parameter against torch's, relative to the update
    ``Δ = torch_new - torch_old``: ``max |ir_new - torch_new| <= bound·max|Δ|``
    plus four float32 ulps of the parameter, the rounding that ``p - lr·g``
    incurs in float32 in either implementation (tiny updates of large weights
    are otherwise rounding noise)."""
    ir_new, torch_new, torch_old = (np.asarray(a, np.float64)
                                    for a in (ir_new, torch_new, torch_old))
    update = float(np.max(np.abs(torch_new - torch_old), initial=0.0))
    ulps = 4 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(torch_old), initial=0.0))
    diff = float(np.max(np.abs(ir_new - torch_new), initial=0.0))
    assert diff <= bound * update + ulps, (
        f"{name}: updated values differ by {diff:.3e}; the update is {update:.3e} "
        f"(allowed {bound:g} of it plus {ulps:.1e})")


def set_torch_gradients(module: Any, backward_results: list[Any], params: dict[str, Any]) -> None:
    """Store the gradients that the IR's @backward returned in torch's ``.grad``."""
    import torch

    names = module["backward"].result_names
    for name, grad in zip(names[1:], backward_results[1:]):
        ir_name = name[: -len(".grad")]
        torch_name, transposed = torch_parameter(ir_name, params)
        layout = grad.T if transposed else grad
        params[torch_name].grad = torch.from_numpy(np.ascontiguousarray(layout))


def zero_gradients(gradients: dict[str, Any], ratio: float = 1e-6) -> set[str]:
    """Parameters whose gradient is rounding noise (below ``ratio`` times the
    model's largest gradient element): zero in exact arithmetic, like the key
    bias of softmax attention.  Adam turns such noise into updates of ±lr
    whose signs no two implementations share, so update checks skip them and
    check the gradient's smallness instead."""
    overall = max(float(np.max(np.abs(np.asarray(g, np.float64)), initial=0.0))
                  for g in gradients.values())
    return {name for name, g in gradients.items()
            if float(np.max(np.abs(np.asarray(g, np.float64)), initial=0.0)) < ratio * overall}


def torch_parameter(ir_name: str, torch_params: dict[str, Any]) -> tuple[str, bool]:
    """(torch parameter name, whether the IR stores it transposed)."""
    if ir_name.endswith(".weight_transposed"):
        return ir_name[: -len("_transposed")], True
    if ir_name.endswith("_transposed") and ir_name[: -len("_transposed")] in torch_params:
        return ir_name[: -len("_transposed")], True
    return ir_name, False


def torch_array(ir_name: str, torch_tensors: dict[str, Any]) -> np.ndarray:
    """The torch tensor (a parameter or its gradient) in the IR's layout."""
    name, transposed = torch_parameter(ir_name, torch_tensors)
    array = torch_tensors[name].detach().numpy()
    return array.T if transposed else array


@pytest.fixture(scope="session")
def zoo_onnx(onnx_exports: Any) -> Callable[[str, str], Path]:
    try:
        import frontends.export  # noqa: F401
    except ImportError as err:  # pragma: no cover - the exporter landed
        pytest.skip(f"frontends.export is not available ({err})")

    def export(name: str, exporter: str = "torchscript") -> Path:
        return onnx_exports(name, exporter, vocab_size=VOCAB).path

    return export


@pytest.fixture(scope="session")
def zoo_module(zoo_onnx: Callable[[str, str], Path]) -> Callable[..., Any]:
    """``zoo_module(name, exporter="torchscript")``: a fresh import (callers mutate it)."""
    from frontends.onnx import import_onnx

    def load(name: str, exporter: str = "torchscript") -> Any:
        return import_onnx(zoo_onnx(name, exporter), {"input_ids": (BATCH, SEQ)}, name=name)

    return load


def zoo_inputs() -> dict[str, np.ndarray]:
    from frontends.zoo import example_inputs_numpy

    input_ids, attention_mask = example_inputs_numpy(BATCH, SEQ, VOCAB, SEED)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
