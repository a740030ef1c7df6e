"""Shared checks of the ONNX backend tests: run a model in onnxruntime and
compare with the reference interpreter.

Tolerance: floating outputs must agree within ``rtol`` (1e-4) relative to
the scale of the expected output, elementwise::

    |onnx - interpreter| <= rtol * (|interpreter| + max|interpreter|)

so tiny elements of a large output are not held to a tighter standard than
float32 arithmetic can meet.  Integer and bool outputs must be equal.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from transcode_ir import Module, run_function

__all__ = ["RTOL", "assert_close", "check_against_interpreter", "run_onnx"]

RTOL = 1e-4


def run_onnx(model: onnx.ModelProto | str, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model (proto or path) on CPU with onnxruntime."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    source = model if isinstance(model, str) else model.SerializeToString()
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [np.asarray(out) for out in session.run(None, {n: np.asarray(inputs[n]) for n in names})]


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str = "output",
                 rtol: float = RTOL) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind in "f":
        a, e = actual.astype(np.float64), expected.astype(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaNs differ"
        assert np.array_equal(a[np.isinf(e)], e[np.isinf(e)]), f"{what}: infinities differ"
        finite = np.isfinite(e)
        a, e = np.where(finite, a, 0.0), np.where(finite, e, 0.0)
        scale = float(np.max(np.abs(e))) if e.size else 0.0
        bad = np.abs(a - e) > rtol * (np.abs(e) + scale) + np.finfo(np.float32).tiny
        assert not bad.any(), (f"{what}: {int(bad.sum())} of {e.size} elements differ; largest "
                               f"error {float(np.max(np.abs(a - e))):.3g} at scale {scale:.3g}")
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def check_against_interpreter(module: Module, model: onnx.ModelProto | str,
                              inputs: Mapping[str, np.ndarray], func_name: str = "forward",
                              rtol: float = RTOL) -> list[np.ndarray]:
    """Run both and compare every output; returns the onnxruntime outputs."""
    func = module.function(func_name)
    expected = run_function(module, func_name, dict(inputs))
    actual = run_onnx(model, inputs)
    assert len(actual) >= len(expected)
    for name, got, want in zip(func.result_names, actual, expected):
        assert_close(got, want, f"@{func_name} result {name!r}", rtol)
    return actual
