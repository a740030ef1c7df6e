"""The family zoo entries (issue 11 item 5): listed and described without torch,
built with seeded random weights (no hub), compiled by ``tcc compile zoo:NAME``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from frontends.hf import FAMILIES, MATRIX, family_names, get_family
from tools.cli import main
from transcode_ir.errors import UserError


def test_cli_and_listing_import_neither_torch_nor_transformers() -> None:
    code = ("import sys\n"
            "from tools.cli import build_parser, main\n"
            "build_parser()\n"
            "import frontends.hf, frontends.zoo.hf\n"
            "assert main(['zoo', 'list']) == 0 and main(['zoo', 'describe', 'llama-tiny']) == 0\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ)).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_zoo_list_shows_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in family_names():
        row = next(line for line in lines if line.startswith(name + " "))
        family = FAMILIES[name]
        assert row.split()[1:3] == [str(family.layers), str(family.hidden)]


def test_matrix_configs_are_small() -> None:
    assert len(MATRIX) == 12
    for name in MATRIX:
        family = FAMILIES[name]
        assert family.layers == 2 and 64 <= family.hidden <= 128, name
        if family.kind != "vision":
            # T5 has relative positions only (max_positions 0: no limit).
            assert family.vocab_size <= 1000, name
            assert family.max_positions >= 128 or name == "t5-encoder-tiny", name
    qwen2 = FAMILIES["qwen2-tiny"].config
    assert qwen2["num_key_value_heads"] < qwen2["num_attention_heads"]    # grouped-query
    small = FAMILIES["gpt2-small"].config                                 # GPT-2 small's shape
    assert (small["n_layer"], small["n_embd"], small["n_head"], small["vocab_size"]) == \
        (12, 768, 12, 50257)


def test_unknown_family_is_a_user_error() -> None:
    from frontends.hf import example_feeds

    assert get_family("no-such-model") is None
    with pytest.raises(UserError, match="unknown model family"):
        example_feeds("no-such-model")


@pytest.mark.xdist_group("llama-tiny")
def test_build_is_seeded_and_offline() -> None:
    torch = pytest.importorskip("torch")
    from frontends.hf import build_family_model

    first = build_family_model("llama-tiny", seed=0).state_dict()
    again = build_family_model("llama-tiny", seed=0).state_dict()
    other = build_family_model("llama-tiny", seed=1).state_dict()
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    # No parameter is left constant (zero biases, unit norms get seeded noise).
    for key, value in first.items():
        flat = value.reshape(-1)
        assert flat.numel() == 1 or not torch.all(flat == flat[0]), key


@pytest.mark.xdist_group("torch-encoder-tiny")
def test_tcc_compile_zoo_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "zoo:torch-encoder-tiny", "--hw", "acceltran-edge",
                 "--batch", "1", "--seq", "16"]) == 0
    out = capsys.readouterr().out
    assert "torch-encoder-tiny" in out and "latency" in out.lower()


@pytest.mark.xdist_group("vit-tiny")
def test_tcc_compile_zoo_vision_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "zoo:vit-tiny", "--hw", "acceltran-edge", "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "vit-tiny" in out and "no sequence axis" in out
    assert main(["compile", "zoo:vit-tiny", "--hw", "acceltran-edge", "--seq", "16"]) != 0
    assert "sequence axis" in capsys.readouterr().err
