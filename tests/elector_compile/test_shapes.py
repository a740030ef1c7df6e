"""Shapes follow the model, and a report describes exactly what was simulated
(issue 11 item 4, issue 13 item 1).  Each test feeds the input that failed.

Tiny hand-built ONNX graphs (onnx.helper, no torch): the whole file runs in
about 5 s of CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tools.cli import main

VOCAB, HIDDEN, POSITIONS = 32, 16, 16


def _token_model(path: Path, dims: list, positions: int | None = None,
                 outputs: bool = True) -> Path:
    """ids [dims] -> embedding (+ a learned position table) -> MatMul -> out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((VOCAB, HIDDEN)).astype(np.float32),
                                     "embeddings.word_embeddings.weight"),
             numpy_helper.from_array(rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32),
                                     "proj.weight")]
    nodes = [helper.make_node("Gather", ["embeddings.word_embeddings.weight", "ids"], ["emb"],
                              name="/embeddings/Gather")]
    hidden = "emb"
    if positions is not None:
        inits.append(numpy_helper.from_array(
            rng.standard_normal((positions, HIDDEN)).astype(np.float32),
            "embeddings.position_embeddings.weight"))
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
        nodes += [helper.make_node("Shape", ["ids"], ["ids_shape"], start=1, end=2),
                  helper.make_node("Squeeze", ["ids_shape"], ["len"]),
                  helper.make_node("Range", ["zero", "len", "one_s"], ["pos"]),
                  helper.make_node("Gather", ["embeddings.position_embeddings.weight", "pos"],
                                   ["pos_emb"], name="/embeddings/Gather_1"),
                  helper.make_node("Add", ["emb", "pos_emb"], ["summed"], name="/embeddings/Add")]
        inits += [numpy_helper.from_array(np.array(0, np.int64), "zero"),
                  numpy_helper.from_array(np.array(1, np.int64), "one_s")]
        hidden = "summed"
    nodes.append(helper.make_node("MatMul", [hidden, "proj.weight"], ["out"], name="/proj/MatMul"))
    graph = helper.make_graph(
        nodes, "tokens", [helper.make_tensor_value_info("ids", TensorProto.INT64, dims)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [*dims, HIDDEN])]
        if outputs else [],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def _compile(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compile", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fixed_shape_model_compiles_at_its_own_batch(tmp_path, capsys) -> None:
    """Issue 11.4: a fixed-shape file failed with 'sets axis 0 to 4, but the model fixes it at 1'."""
    path = _token_model(tmp_path / "fixed.onnx", [1, 8])
    code, out, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--json",
                              str(tmp_path / "r.json"))
    assert code == 0, err
    assert "(forward, inference, batch 1 x seq 8)" in out
    assert "batch 1 x sequence 8 taken from the model's fixed input shape 'ids' [1, 8]" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["model"]["batch"], data["model"]["seq"]) == (1, 8)
    assert data["model"]["shape_sources"]
    summary = data["summary"]
    assert summary["throughput_sequences_per_s"] == pytest.approx(1 / summary["seconds"])


def test_flag_that_contradicts_a_fixed_shape_names_input_and_both_shapes(tmp_path, capsys) -> None:
    path = _token_model(tmp_path / "fixed.onnx", [1, 8])
    code, _, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--batch", "4")
    assert code == 1
    assert "'ids'" in err and "[1, 8]" in err and "[4, 8]" in err and "Traceback" not in err
    code, _, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--seq", "16")
    assert code == 1 and "fixes the sequence at 8" in err and "[1, 16]" in err


def test_symbolic_model_takes_the_flags_and_says_where_defaults_came_from(tmp_path, capsys) -> None:
    path = _token_model(tmp_path / "dyn.onnx", ["batch", "sequence"], positions=POSITIONS)
    code, out, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--seq", "12")
    assert code == 0, err
    assert "batch 4 x seq 12" in out          # acceltran-edge maps batch 4
    assert "batch 4 taken from the design's mapping batch (acceltran-edge)" in out
    assert "sequence 12 from --seq" in out


def test_sequence_past_the_models_positions_is_refused(tmp_path, capsys) -> None:
    """Issue 13.1: ``--seq 513`` on a 512-position model was accepted."""
    path = _token_model(tmp_path / "dyn.onnx", ["batch", "sequence"], positions=POSITIONS)
    code, out, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--seq",
                              str(POSITIONS + 1))
    assert code == 1 and out == ""
    assert f"has {POSITIONS} positions" in err and "embeddings.position_embeddings.weight" in err
    code, _, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--seq", str(POSITIONS))
    assert code == 0, err


def _bound_tir(tmp_path: Path, capsys) -> Path:
    path = _token_model(tmp_path / "dyn.onnx", ["batch", "sequence"])
    tir = tmp_path / "bt.tir"
    assert main(["import", str(path), "-o", str(tir), "--input-shape", "ids=1x8"]) == 0
    capsys.readouterr()
    return tir


def test_tir_reports_the_batch_it_is_bound_to(tmp_path, capsys) -> None:
    """Issue 13.1: a .tir bound to batch 1 was labelled with the design's batch 4."""
    tir = _bound_tir(tmp_path, capsys)
    code, out, err = _compile(capsys, str(tir), "--hw", "acceltran-edge", "--json",
                              str(tmp_path / "r.json"))
    assert code == 0, err
    assert "batch 1 x seq 8" in out and "read from the IR's bound shapes" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["model"]["batch"] == 1
    assert data["summary"]["throughput_sequences_per_s"] == pytest.approx(
        1 / data["summary"]["seconds"])


@pytest.mark.parametrize("flag", [("--batch", "64"), ("--seq", "513")])
def test_tir_refuses_sizes_it_was_not_bound_to(tmp_path, capsys, flag) -> None:
    """Issue 13.1: ``--batch 64`` on a batch-1 .tir reported 64x the throughput."""
    tir = _bound_tir(tmp_path, capsys)
    code, out, err = _compile(capsys, str(tir), "--hw", "acceltran-edge", *flag)
    assert code == 1 and out == ""
    assert "bound to" in err and "[1, 8]" in err and "does not rebind" in err
    code, out, _ = _compile(capsys, str(tir), "--hw", "acceltran-edge", "--batch", "1")
    assert code == 0 and "batch 1 x seq 8" in out


def test_absurd_design_batch_is_refused_before_any_work(tmp_path, capsys) -> None:
    """Issue 13.1: a design with ``batch = 1e30`` reported about 1.9e34 sequences/s."""
    from backends.elector.design_library import resolve_design
    from backends.elector.hwdsl import format_design

    text = format_design(resolve_design("acceltran-edge"))
    assert "batch = 4" in text
    design = tmp_path / "big.hwdsl"
    design.write_text(text.replace("batch = 4", "batch = 1e30"))
    path = _token_model(tmp_path / "dyn.onnx", ["batch", "sequence"])
    code, out, err = _compile(capsys, str(path), "--hw", str(design))
    assert code == 1 and out == ""
    assert "batch" in err and "Traceback" not in err
    code, _, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--batch", "100000")
    assert code == 1 and "65,536" in err


def test_model_without_outputs_is_an_error(tmp_path, capsys) -> None:
    """Issue 13.1: a graph with no outputs 'compiled' to 0 cycles and 0 nJ."""
    path = _token_model(tmp_path / "none.onnx", ["batch", "sequence"], outputs=False)
    code, out, err = _compile(capsys, str(path), "--hw", "acceltran-edge")
    assert code == 1 and out == ""
    assert "no graph outputs" in err and "nothing to compute" in err


def test_scalar_model_prints_no_ratio(tmp_path, capsys) -> None:
    """Issue 13.1: a scalar model reported 'roofline 0 cycles, achieved 12.8%'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"], name="/Mul")], "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    path = tmp_path / "scalar.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    code, out, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--json",
                              str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
                              "--trace", str(tmp_path / "trace.json"))
    assert code == 0, err
    assert "of the roof" not in out and "sequences/s" not in out
    assert "warning: the roofline is" in out and "no batch axis" in out
    assert "no ratio" in (tmp_path / "r.html").read_text()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["achieved_fraction"] is None
    assert data["summary"]["throughput_sequences_per_s"] is None
    assert data["model"]["batch"] is None
    code, _, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--batch", "2")
    assert code == 1 and "no batch axis" in err


def test_outputs_that_need_no_work_say_nothing_to_compute(tmp_path, capsys) -> None:
    """A graph whose output is its input: no op survives, the report says so."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence"])])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    code, out, err = _compile(capsys, str(path), "--hw", "acceltran-edge", "--json",
                              str(tmp_path / "r.json"))
    assert code == 0, err
    assert "nothing to compute" in out and "of the roof" not in out and "sequences/s" not in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["nothing_to_compute"] is True
    assert data["summary"]["achieved_fraction"] is None


@pytest.mark.parametrize("model, positions", [("zoo:bert-tiny", 512), ("zoo:gpt2-tiny", 128)])
def test_zoo_sequence_past_positions_is_refused_before_export(capsys, model, positions) -> None:
    code, out, err = _compile(capsys, model, "--hw", "acceltran-edge", "--seq",
                              str(positions + 1))
    assert code == 1 and out == ""
    assert f"has {positions} positions" in err


def test_zoo_model_without_a_sequence_axis_binds_no_sequence(tmp_path, capsys, monkeypatch) -> None:
    """zoo:vit-tiny failed with '--seq 128: ... has no sequence axis' although
    no --seq was given (the export's trace size was passed on as a flag).  The
    export is replaced by a hand-built image model: [batch, 3, 8, 8] -> MatMul."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import frontends.export

    def fake_export(name, path, **_):  # noqa: ANN001, ANN202
        weight = numpy_helper.from_array(np.ones((8, 4), np.float32), "proj.weight")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["pixel_values", "proj.weight"], ["out"],
                              name="/proj/MatMul")], "image",
            [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                           ["batch", 3, 8, 8])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 8, 4])],
            [weight])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)

    monkeypatch.setattr(frontends.export, "export_onnx", fake_export)
    code, out, err = _compile(capsys, "zoo:vit-tiny", "--hw", "acceltran-edge")
    assert code == 0, err
    assert "(forward, inference, batch 4)" in out and "the model has no sequence axis" in out
    code, _, err = _compile(capsys, "zoo:vit-tiny", "--hw", "acceltran-edge", "--seq", "16")
    assert code == 1 and "no sequence axis" in err
