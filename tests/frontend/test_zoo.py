"""The main check of the importer: every zoo model, both torch exporters.

For each (model, exporter) the ONNX file (batch 1, sequence 16, exported once
and cached, see ``conftest.py``) is imported, and

* ``run_function`` must equal onnxruntime on the same file:
  ``max |ir − ort| / max |ort| ≤ 1e-4`` for every output;
* print → parse → print of the imported module is identical, and both verify;
* every op carries its torch module path, the weights are exactly the model's
  trainable parameters (their element count equals the zoo's parameter count),
  and both exporters give the same module paths and weight names.

Matrix: TorchScript (opset 17, dynamic batch/sequence) for every model, plus
opset 13 for bert-tiny (LayerNorm decomposed); dynamo for every model but
bert-base, each of opsets 18-20 with dynamic shapes (bert-tiny and the
FlexiBERT models: the very files tests/zoo exports and checks, shared, see
tests/conftest.py) and with static shapes (bert-mini, -small, -medium: torch.export
with dynamic shapes is 2-3x slower for the larger ones).
``TCC_ZOO_FULL=1`` adds dynamo exports of bert-base and dynamic shapes
everywhere.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pytest

from frontends.zoo import example_inputs_numpy, get_config, list_models
from tests.frontend.conftest import ZOO_BATCH, ZOO_SEQUENCE, relative_error, run_onnxruntime
from transcode_ir import parse_module, print_module, run_function, verify_module

TOLERANCE = 1e-4
FULL = os.environ.get("TCC_ZOO_FULL") == "1"

# Dynamo exports: opset, and whether to keep batch/sequence symbolic.
DYNAMO = {
    "bert-tiny": (18, True),
    "bert-mini": (19, False),
    "bert-small": (18, False),
    "bert-medium": (20, False),
    "flexibert-mix-a": (18, True),
    "flexibert-mix-b": (19, True),
    "flexibert-mix-c": (20, True),
}


def _matrix() -> list[Any]:
    cases = []
    for name in list_models():
        cases.append(pytest.param(name, "torchscript", None, True, id=f"{name}-torchscript"))
        if name in DYNAMO:
            opset, dynamic = DYNAMO[name]
            cases.append(pytest.param(name, "dynamo", opset, dynamic or FULL,
                                      id=f"{name}-dynamo{opset}"))
        elif FULL:
            cases.append(pytest.param(name, "dynamo", 18, True, id=f"{name}-dynamo18"))
    cases.append(pytest.param("bert-tiny", "torchscript", 13, True, id="bert-tiny-torchscript13"))
    return cases


MATRIX = _matrix()


def _feeds(name: str) -> dict[str, np.ndarray]:
    input_ids, attention_mask = example_inputs_numpy(ZOO_BATCH, ZOO_SEQUENCE,
                                                     get_config(name).vocab_size, seed=1)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.mark.parametrize("name,exporter,opset,dynamic", MATRIX)
def test_interpreter_matches_onnxruntime(zoo_import: Any, name: str, exporter: str,
                                         opset: int | None, dynamic: bool) -> None:
    path, module = zoo_import(name, exporter, opset, dynamic)
    feeds = _feeds(name)
    expected = run_onnxruntime(path, feeds)
    actual = run_function(module, "forward", feeds)
    assert module["forward"].result_names == ["last_hidden_state", "pooler_output"]
    for output, got, want in zip(module["forward"].result_names, actual, expected):
        error = relative_error(got, want)
        assert error <= TOLERANCE, f"{name} ({exporter}) {output}: max-abs-error / " \
                                   f"max-abs-reference = {error:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("name,exporter,opset,dynamic", MATRIX)
def test_text_round_trip_is_exact(zoo_import: Any, name: str, exporter: str,
                                  opset: int | None, dynamic: bool) -> None:
    _, module = zoo_import(name, exporter, opset, dynamic)
    verify_module(module)
    text = print_module(module)
    again = parse_module(text, f"{name}.tir", {n: p.data for n, p in module.params.items()})
    verify_module(again)
    assert print_module(again) == text


_MODULE_PATH = re.compile(r"^(embeddings|encoder|pooler)(\.[A-Za-z0-9_]+)*$")
_WEIGHT_NAME = re.compile(r"^(embeddings|encoder|pooler)\.[A-Za-z0-9_.]+"
                          r"\.(weight|bias|wma_weight)(_transposed)?$")


@pytest.mark.parametrize("name,exporter,opset,dynamic", MATRIX)
def test_source_names_and_weights(zoo_import: Any, name: str, exporter: str,
                                  opset: int | None, dynamic: bool) -> None:
    _, module = zoo_import(name, exporter, opset, dynamic)
    function = module["forward"]
    assert [a.name for a in function.args] == ["input_ids", "attention_mask"]
    for op in function:
        if op.loc is not None:
            assert _MODULE_PATH.match(op.loc), f"{op.name} has loc {op.loc!r}"
        elif op.name in ("tensor.matmul", "nn.layer_norm", "nn.softmax", "nn.gelu",
                         "nn.conv1d", "tensor.param"):
            pytest.fail(f"{op.name} has no loc")
    for param in module.params.values():
        if param.kind == "weight":
            assert _WEIGHT_NAME.match(param.name), f"weight named {param.name!r}"
    config = get_config(name)
    expected = config.parameter_count()
    if exporter == "dynamo" and not dynamic:
        # With static shapes the dynamo exporter looks up the (all-zero) token
        # types at export time: that table is folded into a constant.
        assert module.params["embeddings.token_type_embeddings.weight_folded"].kind == "constant"
        expected -= config.type_vocab_size * config.embedding_size
    assert module.num_parameters == expected
    matmul_locs = {op.loc for op in function if op.name == "tensor.matmul"}
    assert "pooler.dense" in matmul_locs
    assert any(loc.endswith("attention.self.query") for loc in matmul_locs)


@pytest.mark.parametrize("name", ["bert-tiny", "flexibert-mix-a", "flexibert-mix-b"])
def test_both_exporters_give_the_same_names(zoo_import: Any, name: str) -> None:
    opset, dynamic = DYNAMO[name]
    _, torchscript = zoo_import(name, "torchscript", None, True)
    _, dynamo = zoo_import(name, "dynamo", opset, dynamic or FULL)

    def locs(module: Any, kinds: tuple[str, ...]) -> set[str | None]:
        return {op.loc for op in module["forward"] if op.name in kinds}

    kinds = ("tensor.matmul", "nn.layer_norm", "nn.softmax", "nn.gelu", "nn.conv1d",
             "tensor.gather")
    assert locs(torchscript, kinds) == locs(dynamo, kinds)
    weights = {n for n, p in torchscript.params.items() if p.kind == "weight"}
    assert weights == {n for n, p in dynamo.params.items() if p.kind == "weight"}
