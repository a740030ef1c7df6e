"""ONNX export with both exporters: validity, numerics against torch, names, ops, metadata."""

from __future__ import annotations

import ast
from collections import Counter

import numpy as np
import onnx
import pytest

from frontends.export import export_onnx, module_path_of, run_onnxruntime, verify_export
from frontends.zoo import ZOO, example_inputs_numpy, prune_points
from tests.zoo.conftest import DYNAMO_TEST_OPSETS, EXPORT_TEST_MODELS, TRACE_BATCH, TRACE_SEQ
from transcode_ir.errors import UserError

EXPORTERS = ("torchscript", "dynamo")
TOLERANCE = 1e-4  # max |onnxruntime - torch| / max |torch|, per output

#: Every op type either exporter emits for zoo models (torch 2.13).  An importer
#: that handles these handles the whole zoo.
EXPECTED_OP_TYPES = {
    "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "Div", "Erf", "Expand",
    "Gather", "Gelu", "Gemm", "LayerNormalization", "MatMul", "Mul", "Reshape", "Shape", "Slice",
    "Softmax", "Sub", "Tanh", "Transpose", "Unsqueeze",
}


def _expected_opset(name: str, exporter: str) -> int:
    if exporter == "torchscript":
        return 17
    return DYNAMO_TEST_OPSETS.get(name) or 18


def _dims(value_info: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", EXPORT_TEST_MODELS)
def test_export_runs_in_onnxruntime_and_matches_torch(zoo_cache, name: str, exporter: str) -> None:
    result = zoo_cache.export(name, exporter)
    model = zoo_cache.model(name)
    assert result.dynamic and result.exporter == exporter
    proto = onnx.load(result.path)
    onnx.checker.check_model(proto)
    opset = _expected_opset(name, exporter)
    assert result.opset == opset
    assert {o.domain: o.version for o in proto.opset_import}[""] == opset
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in proto.graph.output] == ["last_hidden_state", "pooler_output"]
    for graph_input in proto.graph.input:
        assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert _dims(graph_input) == ["batch", "sequence"]
    hidden = ZOO[name].output_size
    assert _dims(proto.graph.output[0]) == ["batch", "sequence", hidden]
    assert _dims(proto.graph.output[1]) == ["batch", hidden]
    # at sizes other than the traced (2, 16): the dimensions really are symbolic
    for batch, seq in ((3, 37), (1, 128)):
        error = verify_export(model, result.path, batch=batch, seq=seq, seed=7)
        assert error <= TOLERANCE, (batch, seq, error)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", EXPORT_TEST_MODELS)
def test_ops_and_module_paths(zoo_cache, name: str, exporter: str) -> None:
    proto = onnx.load(zoo_cache.export(name, exporter).path)
    ops = Counter(node.op_type for node in proto.graph.node)
    assert set(ops) <= EXPECTED_OP_TYPES, set(ops) - EXPECTED_OP_TYPES
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)
    config = ZOO[name]
    conv_heads = sum(config.head_type_counts().get(t, 0) for t in ("conv5", "conv9", "conv13"))
    assert ("Conv" in ops) == bool(conv_heads)
    # exact GELU: Div/Erf/Add/Mul/Mul below opset 20, the Gelu op from opset 20 (dynamo)
    gelu = "Gelu" if _expected_opset(name, exporter) >= 20 else "Erf"
    assert ops[gelu] == sum(len(layer.ff) for layer in config.layers)
    assert ops["Erf" if gelu == "Gelu" else "Gelu"] == 0
    assert ops["LayerNormalization"] == 1 + 2 * config.num_layers
    assert ops["Softmax"] == sum(1 for layer in config.layers if layer.num_attention_heads)

    paths_by_op: dict[str, set[str]] = {}
    for node in proto.graph.node:
        path = module_path_of(node)
        if exporter == "dynamo":
            assert path is not None, node.name
            props = {p.key: p.value for p in node.metadata_props}
            assert isinstance(ast.literal_eval(props["pkg.torch.onnx.name_scopes"]), list)
        if path:
            paths_by_op.setdefault(node.op_type, set()).add(path)
    # every Linear prune point is a MatMul/Gemm whose module path is the prune point
    products = paths_by_op.get("MatMul", set()) | paths_by_op.get("Gemm", set())
    for point in prune_points(name):
        if point.kind == "linear":
            assert point.path in products, point.path
        else:  # PrunePoint modules are identities and export to nothing
            assert not any(path == point.path for paths in paths_by_op.values()
                           for path in paths)
    # attention internals are attributed to the self-attention module
    if config.layers[0].num_attention_heads:
        assert "encoder.layer.0.attention.self" in paths_by_op["Softmax"]
    assert "embeddings.word_embeddings" in paths_by_op["Gather"]
    if exporter == "torchscript":
        names = {node.name for node in proto.graph.node}
        assert "/encoder/layer.0/attention/self/value/MatMul" in names
        assert "/encoder/layer.0/output/LayerNorm/LayerNormalization" in names


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_initializer_names_keep_module_paths(zoo_cache, exporter: str) -> None:
    proto = onnx.load(zoo_cache.export("flexibert-mix-b", exporter).path)
    names = {init.name for init in proto.graph.initializer}
    assert "embeddings.word_embeddings.weight" in names
    assert "encoder.layer.0.attention.self.query.weight_transposed" in names
    assert "encoder.layer.1.input_projection.weight_transposed" in names
    assert "encoder.layer.3.intermediate.dense_2.weight_transposed" in names
    assert "encoder.layer.0.attention.output.LayerNorm.bias" in names
    assert "encoder.layer.2.attention.self.conv13.weight" in names
    model = zoo_cache.model("flexibert-mix-b")
    weights = {init.name: onnx.numpy_helper.to_array(init) for init in proto.graph.initializer}
    query = model.encoder.layer[0].attention.self.query.weight.detach().numpy()
    assert np.array_equal(weights["encoder.layer.0.attention.self.query.weight_transposed"],
                          query.T)
    # every Linear's weight operand is named after its module
    linear_paths = {name[: -len(".weight")] for name, p in model.named_parameters()
                    if name.endswith(".weight") and p.dim() == 2 and "embeddings" not in name}
    seen = set()
    for node in proto.graph.node:
        path = module_path_of(node)
        if node.op_type in ("MatMul", "Gemm") and path in linear_paths:
            assert node.input[1] in (f"{path}.weight_transposed", f"{path}.weight"), node.input
            seen.add(path)
    assert seen == linear_paths


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_model_metadata(zoo_cache, exporter: str) -> None:
    proto = onnx.load(zoo_cache.export("flexibert-mix-c", exporter).path)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["transcode.model"] == "flexibert-mix-c"
    assert meta["transcode.description"] == ZOO["flexibert-mix-c"].description
    assert meta["transcode.exporter"] == exporter
    assert meta["transcode.dynamic"] == "true"
    assert meta["transcode.example_batch"] == str(TRACE_BATCH)
    assert meta["transcode.example_seq"] == str(TRACE_SEQ)
    assert meta["transcode.seed"] == "0"
    assert meta["transcode.vocab_size"] == "30522"
    assert meta["transcode.opset"] == str(_expected_opset("flexibert-mix-c", exporter))


def test_bert_base_torchscript(zoo_cache) -> None:
    """BERT-Base with one exporter only (the dynamo export takes far longer)."""
    result = zoo_cache.export("bert-base", "torchscript")
    error = verify_export(zoo_cache.model("bert-base"), result.path, batch=2, seq=24, seed=1)
    assert error <= TOLERANCE
    proto = onnx.load(result.path, load_external_data=False)
    ops = Counter(node.op_type for node in proto.graph.node)
    assert ops["Softmax"] == 12 and ops["LayerNormalization"] == 25
    assert ops["MatMul"] == 12 * 8  # q, k, v, scores, context, attention out, ffn in, ffn out


def test_static_export_and_name_input(tmp_path) -> None:
    result = export_onnx("l2:h128:sdp,conv5:ff256", tmp_path / "static.onnx", batch=2, seq=8,
                         vocab_size=200, seed=3, dynamic=False)
    assert not result.dynamic
    proto = onnx.load(result.path)
    assert _dims(proto.graph.input[0]) == [2, 8]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["transcode.model"] == "l2:h128:sdp,conv5:ff256"
    assert meta["transcode.dynamic"] == "false" and meta["transcode.vocab_size"] == "200"
    input_ids, attention_mask = example_inputs_numpy(2, 8, 200, 3)
    hidden, pooled = run_onnxruntime(result.path, input_ids, attention_mask)
    assert hidden.shape == (2, 8, 128) and pooled.shape == (2, 128)


def test_classifier_export(tmp_path) -> None:
    from frontends.zoo import build_classifier

    classifier = build_classifier("bert-tiny", num_classes=5, seed=0, vocab_size=300)
    classifier.train()  # export must not change the mode, and exports in eval mode
    result = export_onnx(classifier, tmp_path / "classifier.onnx", batch=2, seq=8)
    assert classifier.training
    classifier.eval()
    proto = onnx.load(result.path)
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert _dims(proto.graph.output[0]) == ["batch", 5]
    assert "Dropout" not in {node.op_type for node in proto.graph.node}
    assert verify_export(classifier, result.path, batch=3, seq=11) <= TOLERANCE
    paths = {module_path_of(node) for node in proto.graph.node}
    assert "bert.encoder.layer.0.attention.self.query" in paths
    assert "classifier" in paths


def test_export_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="exporter"):
        export_onnx("bert-tiny", tmp_path / "x.onnx", exporter="tflite")
    with pytest.raises(UserError, match="max_position_embeddings"):
        export_onnx("bert-tiny", tmp_path / "x.onnx", seq=600)
    with pytest.raises(UserError, match="unknown model"):
        export_onnx("bert-gigantic", tmp_path / "x.onnx")
    with pytest.raises(UserError, match="batch"):
        export_onnx("bert-tiny", tmp_path / "x.onnx", batch=0)
