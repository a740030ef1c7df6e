"""The project's own fuzzers (issue 13, point 7): hypothesis generators of
hand-made inputs, each run through the ``tcc`` driver in this process.

Every fuzzer asserts the one rule: a clean exit (0), one error paragraph
(exit 1) or an argparse usage error (exit 2) -- never a Python exception
escaping :func:`tools.cli.main`, never a traceback on stderr.

* :func:`fuzz_hwdsl`: library designs and spaces mutated token by token
  (deleted, duplicated, swapped, replaced by huge or odd values, nested,
  truncated, random bytes), checked with ``tcc hw check`` / ``hw show``.
* :func:`fuzz_tir`: the ``.tir`` text of a small module mutated the same way,
  and its ``.npz`` damaged (truncated, bytes flipped, arrays of the wrong
  shape, type or kind), through ``tcc opt`` and ``tcc export``.
* :func:`fuzz_onnx`: small ONNX models (the frontend's golden cases)
  mutated in the protobuf (op types, inputs, attributes, dims, initializers,
  opset) or in the bytes, through ``tcc import``.
* :func:`fuzz_cli`: command lines from a grammar of the cheap subcommands
  with odd flag values (huge or negative integers, empty strings, missing
  folders, folders as files, odd pipelines).

``tests/hardening/test_fuzz.py`` runs each for a few examples in ``make
test``; ``make fuzz`` runs many more (``python -m tests.hardening.run_fuzz``)
and prints the count and time of each.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
GEMM_TIR = REPO / "tests" / "frontend" / "golden" / "gemm.tir"

# --------------------------------------------------------------------------- the rule


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``tcc ARGV`` in process: its exit code and stderr, after checking the
    rule (exit 0, 1 or 2; no traceback; an error is one paragraph)."""
    from tools.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert code in (0, 1, 2), (code, argv, text)
    if code == 1:
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        assert errors, (argv, text)
    return code, text


@contextlib.contextmanager
def scratch_folder():
    folder = Path(tempfile.mkdtemp(prefix="tcc-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- text mutations

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_%@][\w.:$\-]*|[+-]?\d[\w.+\-]*|\S')

ODD_VALUES = [
    "9" * 30, "9" * 5000, "-1", "0", "1e999", "-1e-999", "nan", "inf", "0x10", "1_000",
    '""', '"' + "x" * 300 + '"', "[" * 80 + "]" * 80, "{" * 80 + "}" * 80, "{", "}", "[", "]",
    "=", ",", "in", "@", "%", "tensor<>", "tensor<99999999999999999999x4xf32>", "dense<f32, [], []>",
    "dense<i8, [1], [999]>", "dense<f32, [2, 2], [1.0]>", "\x00", "\ufeff", "é", "\u2028",
    "MHz", "GiB", "KiB/s", "pJ", "bits", "on", "off", "32-2-1", "1x16x16", "0x0x0",
    '"/etc/passwd"', '"x.json"', '"../../../etc/hostname"',
]


@st.composite
def mutated_text(draw: st.DrawFn, texts: list[str]) -> str:
    """One of ``texts`` with a few token-level mutations (or bytes-level ones)."""
    text = draw(st.sampled_from(texts))
    tokens = [m.group() for m in _TOKEN.finditer(text)]
    spans = [m.span() for m in _TOKEN.finditer(text)]
    for _ in range(draw(st.integers(1, 4))):
        if not spans:
            break
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "odd", "swap", "nest",
                                     "truncate", "bytes"]))
        index = draw(st.integers(0, len(spans) - 1))
        start, end = spans[index]
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + " " + text[start:end] + text[end:]
        elif kind == "replace":
            text = text[:start] + draw(st.sampled_from(tokens)) + text[end:]
        elif kind == "odd":
            text = text[:start] + draw(st.sampled_from(ODD_VALUES)) + text[end:]
        elif kind == "swap":
            other = draw(st.integers(0, len(spans) - 1))
            a, b = sorted((index, other))
            (s1, e1), (s2, e2) = spans[a], spans[b]
            if a != b:
                text = text[:s1] + text[s2:e2] + text[e1:s2] + text[s1:e1] + text[e2:]
        elif kind == "nest":
            depth = draw(st.integers(1, 600))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{", "}")]))
            text = text[:start] + opener * depth + text[start:end] + closer * depth + text[end:]
        elif kind == "truncate":
            text = text[:start]
        else:
            junk = draw(st.text(max_size=20))
            text = text[:start] + junk + text[end:]
        spans = [m.span() for m in _TOKEN.finditer(text)]
    return text


# --------------------------------------------------------------------------- .hwdsl


def _library_texts() -> list[str]:
    from backends.elector import list_library

    return [entry.path.read_text() for entry in list_library()]


HWDSL_TEXTS = None


def hwdsl_inputs() -> st.SearchStrategy[str]:
    global HWDSL_TEXTS
    if HWDSL_TEXTS is None:
        HWDSL_TEXTS = _library_texts()
    return mutated_text(HWDSL_TEXTS)


def fuzz_hwdsl(text: str) -> None:
    with scratch_folder() as folder:
        path = folder / "design.hwdsl"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        run_cli(["hw", "check", path])
        code, _ = run_cli(["hw", "show", path])


# --------------------------------------------------------------------------- .tir + .npz

TIR_TEXT = GEMM_TIR.read_text()
NPZ_ARRAYS = {"pooler.dense.weight_transposed": ((6, 4), np.float32),
              "pooler.dense.bias": ((4,), np.float32), "proj": ((5, 3), np.float32)}


@st.composite
def npz_bytes(draw: st.DrawFn) -> bytes | None:
    """The gemm module's parameters, as they should be or damaged."""
    kind = draw(st.sampled_from(["good", "none", "wrong-array", "truncated", "flipped",
                                 "empty", "text", "npy"]))
    if kind == "none":
        return None
    arrays = {name: np.ones(shape, dtype) for name, (shape, dtype) in NPZ_ARRAYS.items()}
    if kind == "wrong-array":
        name = draw(st.sampled_from(sorted(arrays)))
        arrays[name] = draw(st.sampled_from([
            np.ones((2, 2), np.float32), np.ones(arrays[name].shape, np.int64),
            np.array(["a"] * arrays[name].size).reshape(arrays[name].shape),
            np.ones(arrays[name].shape, np.complex64), np.float32(1.0),
            np.ones(arrays[name].shape, ">f4"), np.ones(arrays[name].shape, np.float16)]))
    buffer = io.BytesIO()
    if kind == "npy":
        np.save(buffer, np.ones(3))
        return buffer.getvalue()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    if kind == "truncated":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "flipped":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
        return bytes(data)
    if kind == "empty":
        return b""
    if kind == "text":
        return b"proj = [[1, 2, 3]]\n"
    return data


def tir_inputs() -> st.SearchStrategy[tuple[str, bytes | None]]:
    return st.tuples(st.one_of(st.just(TIR_TEXT), mutated_text([TIR_TEXT])), npz_bytes())


def fuzz_tir(case: tuple[str, bytes | None]) -> None:
    text, npz = case
    with scratch_folder() as folder:
        path = folder / "m.tir"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        if npz is not None:
            (folder / "m.npz").write_bytes(npz)
        code, _ = run_cli(["opt", path, "-o", folder / "out.tir"])
        if code == 0:
            run_cli(["opt", folder / "out.tir", "-p", "canonicalize,cse"])
            run_cli(["export", path, "-o", folder / "m.onnx"])


# --------------------------------------------------------------------------- ONNX


def _golden_models() -> list[bytes]:
    from tests.frontend.golden_cases import CASES
    from tests.frontend.test_golden import build_model

    chosen = [case for case in CASES if case.name in (
        "gemm", "matmul_add", "layer_norm", "softmax_opset13", "split_slice_concat",
        "position_ids", "where_equal_mask", "reductions", "shape_chain_reshape", "conv1d")]
    return [build_model(case).SerializeToString() for case in chosen]


ONNX_MODELS = None


@st.composite
def onnx_inputs(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A golden model mutated in its protobuf (or its bytes), and shape flags."""
    import onnx

    global ONNX_MODELS
    if ONNX_MODELS is None:
        ONNX_MODELS = _golden_models()
    data = draw(st.sampled_from(ONNX_MODELS))
    model = onnx.load_from_string(data)
    graph = model.graph
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["op_type", "drop_input", "rename_input", "attribute",
                                     "dim", "drop_initializer", "opset", "drop_node",
                                     "init_dims"]))
        if kind in ("op_type", "drop_input", "rename_input", "attribute", "drop_node") \
                and not graph.node:
            continue
        node = graph.node[draw(st.integers(0, max(0, len(graph.node) - 1)))] if graph.node \
            else None
        if kind == "op_type":
            node.op_type = draw(st.sampled_from(["MatMul", "Add", "Softmax", "Reshape", "Gather",
                                                 "Conv", "NoSuchOp", "Split", "Concat", ""]))
        elif kind == "drop_input" and node.input:
            del node.input[draw(st.integers(0, len(node.input) - 1))]
        elif kind == "rename_input" and node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(
                st.sampled_from(["", "undefined", node.output[0] if node.output else "x"]))
        elif kind == "attribute":
            value = draw(st.sampled_from([2**62, -2**62, 0, -1, 99, 10**18]))
            name = draw(st.sampled_from(["axis", "perm", "axes", "keepdims", "transB", "split",
                                         "epsilon", "group", "kernel_shape"]))
            node.attribute.append(onnx.helper.make_attribute(name, value))
        elif kind == "dim":
            values = list(graph.input) + list(graph.output)
            if values:
                value = values[draw(st.integers(0, len(values) - 1))]
                dims = value.type.tensor_type.shape.dim
                if dims:
                    dim = dims[draw(st.integers(0, len(dims) - 1))]
                    choice = draw(st.sampled_from([0, -5, 2**40, 2**62, "sym"]))
                    if choice == "sym":
                        dim.dim_param = "sym"
                    else:
                        dim.dim_value = choice
        elif kind == "drop_initializer" and graph.initializer:
            del graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
        elif kind == "init_dims" and graph.initializer:
            init = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            if init.dims:
                init.dims[0] = draw(st.sampled_from([0, 2**31, 7]))
        elif kind == "opset" and model.opset_import:
            model.opset_import[0].version = draw(st.sampled_from([1, 9, 10, 24, 99, 2**40]))
        elif kind == "drop_node" and graph.node:
            del graph.node[draw(st.integers(0, len(graph.node) - 1))]
    data = model.SerializeToString()
    if draw(st.booleans()) and draw(st.booleans()):
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
        data = bytes(data)
    shapes = draw(st.lists(st.sampled_from([
        "input_ids=2x4", "x=3x6", "x=99999999999999999999x2", "x=", "=4", "x=0x3",
        "nosuch=1x2", "x=1x1x1x1x1", "a=b"]), max_size=2))
    return data, shapes


def fuzz_onnx(case: tuple[bytes, list[str]]) -> None:
    data, shapes = case
    with scratch_folder() as folder:
        path = folder / "m.onnx"
        path.write_bytes(data)
        argv = ["import", path, "-o", folder / "m.tir"]
        for shape in shapes:
            argv += ["--input-shape", shape]
        code, _ = run_cli(argv)
        if code == 0:
            run_cli(["opt", folder / "m.tir", "-p", "default"])


# --------------------------------------------------------------------------- command lines

_INTS = st.sampled_from(["0", "1", "-1", "7", "2147483647", "2147483648",
                         "99999999999999999999", "9" * 5000, "1e3", "", "x", "0x10"])
_PIPELINES = st.sampled_from([
    "", "canonicalize", "cse,dce", "default", "cleanup", "nosuch", "canonicalize{", "fuse{x=1}",
    "tile{x=99999999999999999999}", "tile{x=-1,y=16}", ",,,", "canonicalize," * 50,
    "autodiff{loss=mse,optimizer=sgd}", "dynaprop{tau-i=nan}", "{" * 100])
_DESIGNS = st.sampled_from(["acceltran-edge", "tiny-test", "transcode-space", "nosuch",
                            "", "/etc/passwd", "/", "missing/x.hwdsl"])
_DESCRIPTIONS = st.sampled_from([
    "bert-tiny", "l2:h128:sdp*2:ff256", "l0:h1:sdp:ff1", "l99999999999999999999:h128:sdp:ff256",
    "l2:h" + "9" * 5000 + ":sdp:ff256", "{}", '{"layers": []}', "[" * 200, "", ":::",
    "l2:h128:sdp*99999999999:ff256", "l2:h130:sdp*3:ff256"])


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command line for a cheap subcommand; paths are placeholders
    (``{module}``, ``{onnx}``, ``{out}``, ``{missing}``, ``{folder}``,
    ``{file_as_folder}``) filled in by :func:`fuzz_cli`."""
    outputs = st.sampled_from(["{out}", "{missing}", "{folder}", "{file_as_folder}", "-", ""])
    command = draw(st.sampled_from(["opt", "import", "export", "hw", "zoo", "none"]))
    if command == "opt":
        argv = ["opt", draw(st.sampled_from(["{module}", "{missing}", "{folder}", "-", "{onnx}"]))]
        if draw(st.booleans()):
            argv += ["-p", draw(_PIPELINES)]
        if draw(st.booleans()):
            argv += ["-o", draw(outputs)]
        if draw(st.booleans()):
            argv += [draw(st.sampled_from(["--split-input-file", "--time-passes", "--no-verify",
                                           "--print-ir-after-all", "--list-passes"]))]
        return argv
    if command == "import":
        argv = ["import", draw(st.sampled_from(["{onnx}", "{module}", "{missing}", "{folder}"]))]
        if draw(st.booleans()):
            argv += ["-o", draw(outputs)]
        for _ in range(draw(st.integers(0, 2))):
            argv += ["--input-shape", draw(st.sampled_from(["input_ids=2x4", "input_ids=",
                                                            "input_ids=0x1", "=3",
                                                            "input_ids=" + draw(_INTS)]))]
        if draw(st.booleans()):
            argv += ["--summary"]
        return argv
    if command == "export":
        argv = ["export", draw(st.sampled_from(["{module}", "{missing}", "{onnx}"])),
                "-o", draw(outputs)]
        if draw(st.booleans()):
            argv += ["--opset", draw(_INTS)]
        if draw(st.booleans()):
            argv += ["--function", draw(st.sampled_from(["forward", "backward", "", "x" * 300]))]
        return argv
    if command == "hw":
        action = draw(st.sampled_from(["list", "show", "check"]))
        argv = ["hw", action]
        if action != "list":
            argv.append(draw(_DESIGNS))
            if action == "show" and draw(st.booleans()):
                argv += ["--point", draw(_INTS)]
        return argv
    if command == "zoo":
        action = draw(st.sampled_from(["list", "describe", "export"]))
        if action == "list":
            return ["zoo", "list"] + (["--json"] if draw(st.booleans()) else [])
        if action == "describe":
            return ["zoo", "describe", draw(_DESCRIPTIONS)] + (
                ["--prune-points"] if draw(st.booleans()) else [])
        # export: only refusals happen before torch is imported; keep them so
        argv = ["zoo", "export", draw(_DESCRIPTIONS), "-o",
                draw(st.sampled_from(["{missing}", "{folder}", "{file_as_folder}"]))]
        flag = draw(st.sampled_from(["--batch", "--seq", "--opset", "--seed", "--vocab-size"]))
        return argv + [flag, draw(_INTS)]
    return draw(st.lists(st.sampled_from(["--version", "-h", "nosuch", "", "--", "-x"]),
                         min_size=1, max_size=2))


def fuzz_cli(argv: list[str]) -> None:
    import onnx

    from tests.hardening.conftest import small_module

    with scratch_folder() as folder:
        module = small_module(folder)
        model = folder / "embed.onnx"
        if ONNX_MODELS is None:
            from tests.frontend.golden_cases import CASES
            from tests.frontend.test_golden import build_model

            case = next(c for c in CASES if c.name == "position_ids")
            onnx.save(build_model(case), str(model))
        else:
            model.write_bytes(ONNX_MODELS[0])
        places = {"{module}": module, "{onnx}": model, "{out}": folder / "out.x",
                  "{missing}": folder / "no" / "such" / "out.x", "{folder}": folder,
                  "{file_as_folder}": module / "out.x"}
        filled = [str(places.get(a, a)) for a in argv]
        if "-h" in filled or "--help" in filled or "--version" in filled:
            with contextlib.redirect_stdout(io.StringIO()):
                run_cli(filled)
            return
        stdin = io.StringIO(TIR_TEXT)
        cwd = os.getcwd()
        os.chdir(folder)            # relative outputs ("-", "") land in the scratch folder
        try:
            with _stdin(stdin):
                run_cli(filled)
        finally:
            os.chdir(cwd)


@contextlib.contextmanager
def _stdin(stream):
    import sys

    saved = sys.stdin
    sys.stdin = stream
    try:
        yield
    finally:
        sys.stdin = saved


FUZZERS = {
    "hwdsl": (hwdsl_inputs, fuzz_hwdsl),
    "tir+npz": (tir_inputs, fuzz_tir),
    "onnx": (onnx_inputs, fuzz_onnx),
    "cli": (command_lines, fuzz_cli),
}
