"""Source names from both exporters, made-up names, and default dimension sizes."""

from __future__ import annotations

import onnx
import pytest
from onnx import helper

from frontends.onnx.names import is_generated_name, module_path_of, source_location
from frontends.onnx.shapes import InputSignature, bind_input_shapes, default_size


def node(name: str, scopes: list[str] | None = None) -> onnx.NodeProto:
    made = helper.make_node("Relu", ["x"], ["y"], name=name)
    if scopes is not None:
        entry = made.metadata_props.add()
        entry.key, entry.value = "pkg.torch.onnx.name_scopes", repr(scopes)
    return made


@pytest.mark.parametrize("name,expected", [
    ("/encoder/layer.0/attention/self/query/MatMul", "encoder.layer.0.attention.self.query"),
    ("/encoder/layer.0/intermediate/Erf", "encoder.layer.0.intermediate"),
    ("/Mul", ""),
    ("/pooler@1/dense/Gemm", "pooler.dense"),
    ("Constant_78", None),
    ("", None),
])
def test_torchscript_names(name: str, expected: str | None) -> None:
    assert module_path_of(node(name)) == expected


@pytest.mark.parametrize("scopes,expected", [
    (["", "encoder", "encoder.layer.0", "encoder.layer.0.attention.self.query", "linear"],
     "encoder.layer.0.attention.self.query"),
    (["", "pooler", "tanh"], "pooler"),
    (["", "zeros_like"], ""),
    (["_empty_nn_module_stack_from_metadata_hook", "sym_size_int_10"], ""),
    (["", "encoder", "encoder.layer.0@1", "encoder.layer.0@1.output", "add"],
     "encoder.layer.0.output"),
])
def test_dynamo_names(scopes: list[str], expected: str) -> None:
    assert module_path_of(node("node_Add_3", scopes)) == expected


def test_source_location_falls_back_to_the_node_name() -> None:
    assert source_location(node("my_layer")) == "my_layer"
    assert source_location(node("/Sub")) is None
    assert source_location(node("")) is None


@pytest.mark.parametrize("name,generated", [
    ("onnx::MatMul_273", True), ("val_33", True), ("/embeddings/Constant_output_0", True),
    ("Constant_90", True), ("encoder.layer.0.attention.self.query.weight", False),
    ("pooler.dense.bias", False), ("w", False),
])
def test_generated_names(name: str, generated: bool) -> None:
    assert is_generated_name(name) is generated


@pytest.mark.parametrize("symbol,axis,rank,size", [
    ("batch", 0, 2, 1), ("batch_size", 1, 3, 1), ("sequence", 1, 2, 128), ("seq_len", 0, 1, 128),
    ("s43", 0, 2, 1), ("s53", 1, 2, 128), (None, 0, 3, 1), (None, 2, 3, 128), ("N", 0, 1, 128),
])
def test_default_sizes(symbol: str | None, axis: int, rank: int, size: int) -> None:
    assert default_size(symbol, axis, rank) == size


def test_bindings_share_symbols_and_report_them() -> None:
    signatures = [InputSignature("input_ids", ("batch", "sequence")),
                  InputSignature("attention_mask", ("batch", "sequence")),
                  InputSignature("position", (None,))]
    shapes, symbols = bind_input_shapes(signatures, {"attention_mask": (4, 32)})
    assert shapes == {"attention_mask": (4, 32), "input_ids": (4, 32), "position": (128,)}
    assert symbols == {"batch": 4, "sequence": 32}
