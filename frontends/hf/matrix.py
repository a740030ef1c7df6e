"""The model-family matrix: every family × exporter through every stage.

One definition of each check, used by the tests (tests/families) and the
benchmark (bench/bench_families.py).  A *cell* is one stage for one family and
one exporter; each raises ``AssertionError`` (or the stage's own error) when
the stage fails and returns a short figure when it passes:

``export``     the plain HF call exported; onnxruntime = torch ≤ 1e-4
``import``     ``import_onnx``; the reference interpreter = onnxruntime ≤ 1e-4
``shared``     a parameter tied in torch (GPT-2's LM head, ALBERT's shared
               layer, T5's embedding) is one IR parameter, and no IR
               parameter duplicates another torch parameter
``inference``  ``tcc compile`` (default pipeline, analytical simulator)
``training``   ``tcc compile --train`` (autodiff, Adam)
``gradients``  the IR's ``@backward`` (autodiff, cross-entropy on the logits or the last
               hidden state) = torch autograd: the loss ≤ 1e-4 relative, every
               parameter gradient within 1e-4 of the largest gradient in the model
``event``      ``tcc compile --sim event``
``dynaprop``   ``cleanup,dynaprop{tau-i=0.01,density=0.5}``: every layer has
               DynaProp's points (q/k/v or qkv, scores, probs, context,
               attention output, FFN intermediate and output)
``to-onnx``    IR → ONNX (backends/onnx) run by onnxruntime = interpreter ≤ 1e-4

Tolerance (as tests/backend_onnx): ``|a − e| ≤ 1e-4·(|e| + max|e|)`` elementwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frontends.hf.families import MATRIX, Family, get_family

__all__ = ["CELLS", "EXPORTERS", "MATRIX", "RTOL", "TRACE_BATCH", "TRACE_SEQ", "Subject",
           "assert_close", "run_cell"]

RTOL = 1e-4
EXPORTERS = ("torchscript", "dynamo")
CELLS = ("export", "import", "shared", "inference", "training", "gradients", "event", "dynaprop",
         "to-onnx")
#: Example sizes of the exports; the checks run dynamic exports at other sizes.
TRACE_BATCH, TRACE_SEQ = 2, 16
CHECK_BATCH, CHECK_SEQ = 3, 11
HW = "acceltran-edge"


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = RTOL) -> float:
    """Elementwise ``|a − e| ≤ rtol·(|e| + max|e|)``; returns the largest relative error."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return 0.0
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    assert np.isfinite(a).all() == np.isfinite(e).all(), f"{what}: non-finite values differ"
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    error = np.abs(a - e)
    bad = error > rtol * (np.abs(e) + scale) + np.finfo(np.float32).tiny
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {e.size} elements differ; largest "
                           f"error {float(error.max()):.3g} at scale {scale:.3g}")
    return float(error.max()) / (scale or 1.0)


def _run_onnxruntime(path_or_proto: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    source = (path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString")
              else os.fspath(path_or_proto))
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [np.asarray(o) for o in session.run(None, {n: np.asarray(feeds[n]) for n in names})]


@dataclass
class Subject:
    """One family and one exporter: the torch model, the ONNX file, the imported IR."""

    family: Family
    exporter: str
    directory: Path
    model: Any = None          # torch module (built once per family)
    export: Any = None         # frontends.export.ExportResult
    module: Any = None         # imported transcode_ir Module (clone before passes)
    seconds: dict[str, float] | None = None

    @property
    def check_sizes(self) -> tuple[int, int]:
        dynamic = self.export is not None and self.export.dynamic
        return (CHECK_BATCH, CHECK_SEQ) if dynamic else (TRACE_BATCH, TRACE_SEQ)

    def feeds(self, batch: int | None = None, seq: int | None = None) -> dict[str, np.ndarray]:
        from frontends.hf import example_feeds

        return example_feeds(self.family, batch or TRACE_BATCH, seq or TRACE_SEQ, seed=3)

    def import_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: value.shape for name, value in self.feeds().items()}


def make_export(subject: Subject) -> str:
    from frontends.hf import build_family_model, export_family

    if subject.model is None:
        subject.model = build_family_model(subject.family, seed=0)
    path = subject.directory / f"{subject.family.name}-{subject.exporter}.onnx"
    subject.export = export_family(subject.model, path, subject.exporter, family=subject.family,
                                   batch=TRACE_BATCH, seq=TRACE_SEQ)
    from frontends.hf import run_torch

    feeds = subject.feeds(*subject.check_sizes)
    worst = 0.0
    for name, want, got in zip(subject.export.output_names, run_torch(subject.model, feeds),
                               _run_onnxruntime(path, feeds), strict=True):
        worst = max(worst, assert_close(got, want, f"onnxruntime vs torch, {name}"))
    return (f"{subject.export.cpu_seconds:.1f} s CPU, "
            f"{'dynamic' if subject.export.dynamic else 'static'}, ort err {worst:.0e}")


def make_import(subject: Subject) -> str:
    from frontends.onnx import import_onnx
    from transcode_ir import Interpreter

    assert subject.export is not None, "no export"
    subject.module = import_onnx(subject.export.path, subject.import_shapes(), copy_weights=True)
    feeds = subject.feeds()
    expected = _run_onnxruntime(subject.export.path, feeds)
    got = Interpreter(subject.module).run("forward", feeds)
    worst = 0.0
    for name, want, value in zip(subject.export.output_names, expected, got, strict=True):
        worst = max(worst, assert_close(value, want, f"interpreter vs onnxruntime, {name}"))
    return f"{len(list(subject.module['forward']))} ops, err {worst:.0e}"


def check_shared(subject: Subject) -> str:
    """Tied torch parameters are one IR parameter; no torch parameter is in two."""
    assert subject.module is not None, "no import"
    groups: dict[int, list[str]] = {}
    tensors: dict[int, Any] = {}
    for name, parameter in subject.model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
        tensors[id(parameter)] = parameter.detach().numpy()
    ir = [(name, np.asarray(p.data)) for name, p in subject.module.params.items()
          if p.data is not None]
    problems = []
    tied = 0
    for key, names in groups.items():
        value = tensors[key]
        if value.size < 64:        # small vectors may legitimately equal folded constants
            continue
        holders = [n for n, data in ir if data.shape == value.shape and np.array_equal(data, value)
                   or value.ndim == 2 and data.shape == value.T.shape
                   and np.array_equal(data, value.T)]
        if len(names) > 1:
            tied += 1
            if len(holders) != 1:
                problems.append(f"tied {names} is held by {len(holders)} IR parameters {holders}")
        elif len(holders) > 1:
            problems.append(f"{names[0]} is held by {len(holders)} IR parameters {holders}")
    assert not problems, "; ".join(problems)
    return f"{tied} tied group(s) one parameter each"


def _compile(subject: Subject, **options: Any) -> Any:
    from backends.elector.compile_pipeline import CompileOptions, compile_module

    assert subject.module is not None, "no import"
    batch, seq = TRACE_BATCH, TRACE_SEQ
    outcome = compile_module(subject.module.clone(),
                             CompileOptions(hw=HW, batch=batch, seq=seq,
                                            model_name=subject.family.name, **options))
    result = outcome.result
    latency = getattr(result, "latency_s", None) or getattr(result, "latency", None)
    assert latency is None or latency > 0, f"latency {latency}"
    return outcome


def _latency_text(outcome: Any) -> str:
    result = outcome.result
    for attr in ("latency_s", "latency", "seconds"):
        value = getattr(result, attr, None)
        if isinstance(value, (int, float)):
            return f"{value * 1e6:.1f} µs" if value < 1 else f"{value:.3g}"
    cycles = getattr(result, "cycles", None)
    return f"{cycles} cycles" if cycles is not None else "ok"


def compile_inference(subject: Subject) -> str:
    return _latency_text(_compile(subject))


def compile_training(subject: Subject) -> str:
    return _latency_text(_compile(subject, train=True, optimizer="adam"))


def check_gradients(subject: Subject) -> str:
    """``@backward`` against torch autograd on the same inputs and labels."""
    import torch

    from backends.elector.compile_pipeline import loss_output
    from transcode_ir import Interpreter, run_pipeline

    assert subject.module is not None, "no import"
    module = subject.module.clone()
    output = loss_output(module)
    names = list(module.function("forward").result_names)
    index = names.index(output) if output else 0
    options = "loss=cross-entropy,optimizer=sgd" + (f",output={output}" if output else "")
    module = run_pipeline(module, f"cleanup,autodiff{{{options}}}").module
    feeds = subject.feeds()
    prediction_shape = module.function("forward").outputs[index].type.shape
    rng = np.random.default_rng(5)
    labels = rng.integers(0, prediction_shape[-1], prediction_shape[:-1]).astype(np.int64)
    if "attention_mask" in feeds and labels.shape == feeds["attention_mask"].shape:
        labels[feeds["attention_mask"] == 0] = -100
    backward = module.function("backward")
    results = Interpreter(module).run("backward", {**feeds, "labels": labels})
    ir = dict(zip(backward.result_names, results))

    model = subject.model
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        outputs = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        if isinstance(outputs, torch.Tensor):
            prediction = outputs
        else:
            prediction = outputs[subject.export.output_names[index]]
        loss = torch.nn.functional.cross_entropy(
            prediction.reshape(-1, prediction.shape[-1]), torch.from_numpy(labels).reshape(-1),
            ignore_index=-100)
        loss.backward()
    assert_close(np.asarray(ir["loss"]).reshape(()), loss.detach().numpy().reshape(()), "loss")
    grads = {id(p): p.grad.numpy() for p in model.parameters() if p.grad is not None}
    values = {id(p): p.detach().numpy() for p in model.parameters()}
    scale = max(float(np.max(np.abs(g))) for g in grads.values())
    compared, problems = 0, []
    for name, param in module.params.items():
        key = f"{name}.grad"
        if key not in ir or param.data is None:
            continue
        data = np.asarray(param.data)
        match = [(k, False) for k, v in values.items() if v.shape == data.shape
                 and np.array_equal(v, data)]
        match += [(k, True) for k, v in values.items() if v.ndim == 2
                  and v.T.shape == data.shape and np.array_equal(v.T, data)]
        if len(match) != 1:
            continue           # merged or folded constants: no one torch parameter to compare
        k, transposed = match[0]
        want = grads.get(k, np.zeros_like(values[k]))
        want = want.T if transposed else want
        error = float(np.max(np.abs(np.asarray(ir[key]) - want)))
        compared += 1
        if error > RTOL * scale:
            problems.append(f"{name}: off by {error:.3g} (largest gradient {scale:.3g})")
    assert not problems, "gradients differ from torch: " + "; ".join(problems[:5])
    assert compared >= len(values) // 2, (
        f"only {compared} of {len(values)} parameters could be matched to torch's")
    return f"{compared} gradients = torch"


def compile_event(subject: Subject) -> str:
    return _latency_text(_compile(subject, sim="event"))


def check_dynaprop(subject: Subject) -> str:
    """Every layer gets DynaProp's prune points: the projections feeding attention
    (query, key, value or a fused qkv), scores, probs, context, attention output,
    the FFN's activation input and output (names ``layer.<i>.<role>``); the
    pruned module still runs."""
    from transcode_ir import Interpreter, run_pipeline

    assert subject.module is not None, "no import"
    module = run_pipeline(subject.module.clone(), "cleanup,dynaprop{tau-i=0.01,density=0.5}").module
    points = {str(op.attr("point")) for op in module["forward"] if op.name == "nn.prune"}
    missing = []
    for layer in range(subject.family.layers):
        roles = {p.split(".", 2)[2] for p in points if p.startswith(f"layer.{layer}.")}
        want = {"scores", "probs", "context", "attention_output", "intermediate", "output"}
        want |= {"qkv"} if "qkv" in roles else {"query", "key", "value"}
        missing += [f"layer.{layer}.{role}" for role in sorted(want - roles)]
    assert not missing, f"no prune point for {', '.join(missing)} (found {sorted(points)})"
    outputs = Interpreter(module).run("forward", subject.feeds())
    assert all(np.isfinite(np.asarray(o, dtype=np.float64)).all() for o in outputs
               if np.asarray(o).dtype.kind == "f"), "non-finite outputs after pruning"
    return f"{len(points)} prune points"


def check_to_onnx(subject: Subject) -> str:
    from backends.onnx import export_function
    from transcode_ir import Interpreter

    assert subject.module is not None, "no import"
    proto = export_function(subject.module)
    feeds = subject.feeds()
    expected = Interpreter(subject.module).run("forward", feeds)
    got = _run_onnxruntime(proto, feeds)
    worst = 0.0
    for index, (want, value) in enumerate(zip(expected, got, strict=True)):
        worst = max(worst, assert_close(value, want, f"IR→ONNX vs interpreter, output {index}"))
    return f"err {worst:.0e}"


_RUNNERS = {
    "export": make_export,
    "import": make_import,
    "shared": check_shared,
    "inference": compile_inference,
    "training": compile_training,
    "gradients": check_gradients,
    "event": compile_event,
    "dynaprop": check_dynaprop,
    "to-onnx": check_to_onnx,
}


def run_cell(subject: Subject, cell: str) -> str:
    """Run one cell; records its wall time in ``subject.seconds[cell]``."""
    start = time.perf_counter()
    try:
        return _RUNNERS[cell](subject)
    finally:
        if subject.seconds is None:
            subject.seconds = {}
        subject.seconds[cell] = time.perf_counter() - start


def subject(name: str, exporter: str, directory: Path) -> Subject:
    family = get_family(name)
    assert family is not None, name
    return Subject(family, exporter, Path(directory))
