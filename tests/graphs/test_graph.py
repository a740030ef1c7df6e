"""Op dependency graphs (transcode_ir/graph.py, backends/elector/graph.py) and
their exports (``tcc opt --emit-graph``, ``tcc compile --graph``).

The critical path of the small function below is worked by hand:

    %0 = param w          weight 0     (no operands)
    %1 = matmul(%x, %0)   weight 5     <- %0
    %2 = relu(%1)         weight 3     <- %1
    %3 = exp(%1)          weight 1     <- %1
    %4 = add(%2, %3)      weight 7     <- %2, %3
    %5 = tanh(%x)         weight 20    (an argument only)
    %6 = add(%4, %5)      weight 2     <- %4, %5
    return %6                          <- %6

Chains into %6: 0-1-2-4-6 = 0+5+3+7+2 = 17; 0-1-3-4-6 = 15; 5-6 = 20+2 = 22.
So the critical path is %5 -> %6 -> return, length 22; with %5 weighing 1
instead it is 0-1-2-4-6-return, length 17.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.cli import main
from transcode_ir import parse_module
from transcode_ir.errors import UserError
from transcode_ir.graph import (
    check_acyclic,
    critical_path,
    dependency_graph,
    find_cycle,
    format_graph,
    topological_order,
    write_graph,
)

REPO = Path(__file__).resolve().parents[2]

SOURCE = """module @small {
  param @w : tensor<4x3xf32> {kind = "weight"}
  func @forward(%x: tensor<2x4xf32>, %y: tensor<2x3xf32>) -> (out: tensor<2x3xf32>) {
    %0 = tensor.param() {name = "w"} : tensor<4x3xf32>
    %1 = tensor.matmul(%x, %0) : tensor<2x3xf32> loc("fc")
    %2 = nn.relu(%1) : tensor<2x3xf32> loc("act")
    %3 = arith.exp(%1) : tensor<2x3xf32>
    %4 = arith.add(%2, %3) : tensor<2x3xf32>
    %5 = arith.tanh(%y) : tensor<2x3xf32>
    %6 = arith.add(%4, %5) : tensor<2x3xf32>
    func.return(%6)
  }
}
"""
WEIGHTS = {0: 0.0, 1: 5.0, 2: 3.0, 3: 1.0, 4: 7.0, 5: 20.0, 6: 2.0}


@pytest.fixture()
def function():
    return parse_module(SOURCE, "small.tir")["forward"]


def test_graph_of_a_small_function(function) -> None:
    graph = dependency_graph(function, WEIGHTS)
    assert list(graph.nodes) == list(range(8))
    assert sorted(graph.edges) == [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4), (4, 6), (5, 6),
                                   (6, 7)]
    assert graph.nodes[1]["name"] == "tensor.matmul" and graph.nodes[1]["loc"] == "fc"
    assert graph.nodes[1]["macs"] == 2 * 4 * 3          # (2x4) @ (4x3)
    assert graph.nodes[4]["weight"] == 7.0 and graph.nodes[7]["weight"] == 0.0
    assert graph.edges[1, 2]["type"] == "tensor<2x3xf32>"
    assert graph.edges[1, 2]["bytes"] == 2 * 3 * 4
    assert topological_order(graph) == list(range(8))
    assert find_cycle(graph) is None


def test_critical_path_worked_by_hand(function) -> None:
    path = critical_path(dependency_graph(function, WEIGHTS))
    assert path.length == 22.0 and path.nodes == (5, 6, 7)
    lighter = {**WEIGHTS, 5: 1.0}
    path = critical_path(dependency_graph(function, lighter))
    assert path.length == 17.0 and path.nodes == (0, 1, 2, 4, 6, 7)


def test_a_cycle_is_reported_with_its_ops(function) -> None:
    ops = function.ops
    ops[1].set_operand(1, ops[4].result)       # the matmul now reads a later add's result
    graph = dependency_graph(function)
    assert set(find_cycle(graph)) == {1, 2, 4}
    with pytest.raises(UserError, match=r"dependency cycle: op \d \([a-z.]+\) -> .*op \d"):
        check_acyclic(graph)
    with pytest.raises(UserError, match="dependency cycle"):
        critical_path(graph)


def test_graphml_reads_back_and_dot_marks_the_critical_path(function, tmp_path: Path) -> None:
    import networkx as nx

    graph = dependency_graph(function, WEIGHTS)
    path = critical_path(graph).nodes
    write_graph(graph, tmp_path / "g.graphml", highlight=path)
    back = nx.read_graphml(tmp_path / "g.graphml", node_type=int)
    assert sorted(back.edges) == sorted(graph.edges)
    assert back.nodes[1]["name"] == "tensor.matmul" and back.nodes[4]["weight"] == 7.0
    assert [n for n in back.nodes if back.nodes[n]["critical"]] == [5, 6, 7]
    write_graph(graph, tmp_path / "g.dot", highlight=path)
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith('digraph "forward" {') and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == graph.number_of_edges()
    assert '"5" -> "6" [label="tensor<2x3xf32>", color="red"' in dot
    assert '"1" -> "2" [label="tensor<2x3xf32>"];' in dot
    with pytest.raises(UserError, match=r"\*\.dot, \*\.gv or \*\.graphml"):
        write_graph(graph, tmp_path / "g.png")
    with pytest.raises(UserError, match="accepted formats are dot, graphml"):
        format_graph(graph, "svg")


def test_tcc_opt_emit_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import networkx as nx

    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.tir").write_text(SOURCE)
    assert main(["opt", "small.tir", "-p", "cse", "--emit-graph", "graphml", "-o", "g.graphml"]) == 0
    graph = nx.read_graphml(tmp_path / "g.graphml", node_type=int)
    assert graph.number_of_nodes() == 8 and graph.number_of_edges() == 8
    # by MACs only the matmul weighs anything: the path runs through it to the return
    assert [n for n in graph.nodes if graph.nodes[n]["critical"]] == [0, 1, 2, 4, 6, 7]
    capsys.readouterr()
    assert main(["opt", "small.tir", "--emit-graph", "dot", "--graph-function", "backward"]) == 1
    assert "has no such function; its functions: forward" in capsys.readouterr().err


def test_tcc_compile_graph_of_the_mapped_schedule(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import networkx as nx

    from backends.elector.graph import schedule_graph
    from tools.commands.compile import compile_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.tir").write_text(SOURCE)
    assert main(["compile", "small.tir", "--hw", "tiny-test", "--graph", "s.graphml"]) == 0
    graph = nx.read_graphml(tmp_path / "s.graphml", node_type=int)
    report = compile_model(str(tmp_path / "small.tir"), "tiny-test").report
    expected = schedule_graph(report.mapped, report.result)
    assert sorted(graph.edges) == sorted(expected.edges)
    assert sorted(graph.nodes) == [op.index for op in report.mapped.ops]
    for run in report.result.ops:
        assert graph.nodes[run.index]["cycles"] == pytest.approx(run.cycles)
    # dependent ops cannot overlap: the critical path fits inside the run
    path = critical_path(expected)
    assert 0 < path.length <= report.result.cycles
    assert [n for n in graph.nodes if graph.nodes[n]["critical"]] == list(path.nodes)
    capsys.readouterr()
    assert main(["compile", "small.tir", "--hw", "tiny-test", "--graph", "s.svg"]) == 1
    assert "name it *.dot, *.gv or *.graphml" in capsys.readouterr().err


def test_networkx_is_not_imported_by_the_command_line() -> None:
    code = ("import sys\nfrom tools.cli import main\ntry:\n    main(['opt', '--help'])\n"
            "except SystemExit:\n    pass\nimport transcode_ir.graph, backends.elector.graph\n"
            "print('networkx' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True, capture_output=True)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr
