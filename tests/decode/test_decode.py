"""Decoders with a KV cache: prefill (time to first token) and decode steps
(per-token latency and energy as the cache grows), issue 11 item 6.

Models: gpt2-tiny and qwen2-tiny (2 layers, hidden 64; Qwen2 with 4 heads
and 2 KV heads), exported once per session (conftest.py).  CPU: about 19 s
for the file on a fresh export cache (two exports, ~10 small compiles, one
subprocess), less with the exports cached (measured on the loaded 2-core
machine, one worker).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tools.cli import main

#: 20-bit data in the library designs: 2.5 bytes per element.
BYTES_PER_ELEMENT = 2.5


def test_export_matches_transformers_with_a_real_cache(decoders) -> None:
    """The flat-tensor wrapper is honest: onnxruntime on the two graphs gives
    the logits and cache transformers gives (prefill, then one decode step)."""
    import onnxruntime as ort
    import torch

    from frontends.hf.families import get_family
    from frontends.hf.kv_cache import _build

    prefill, decode = decoders.paths("gpt2-tiny")
    model = _build(get_family("gpt2-tiny"), seed=0)
    ids = np.random.default_rng(0).integers(0, 1000, (1, 5)).astype(np.int64)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    first = ort.InferenceSession(str(prefill), options).run(None, {"input_ids": ids})
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), use_cache=True)
    np.testing.assert_allclose(first[0][:, -1], out.logits[:, -1].numpy(), atol=1e-4)
    cache = out.past_key_values
    np.testing.assert_allclose(first[1], cache.layers[0].keys.numpy(), atol=1e-5)
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    feeds = {"input_ids": token.numpy()}
    for i in range(2):
        feeds[f"past_key_values.{i}.key"] = first[1 + 2 * i]
        feeds[f"past_key_values.{i}.value"] = first[2 + 2 * i]
    second = ort.InferenceSession(str(decode), options).run(None, feeds)
    with torch.no_grad():
        step = model(input_ids=token, past_key_values=cache, use_cache=True)
    np.testing.assert_allclose(second[0][:, -1], step.logits[:, -1].numpy(), atol=1e-4)
    assert second[1].shape == (1, 4, 6, 16)          # the cache grew by one token


@pytest.fixture(scope="module")
def gpt2_decode(decoders):
    """gpt2-tiny, batch 1, context 64, 4 decode steps, 2 simulated (64 and 67),
    the cache in main memory between steps."""
    from tools.commands.compile import compile_decoder

    prefill, decode = decoders.paths("gpt2-tiny")
    return compile_decoder(str(decode), "acceltran-edge", batch=1, context=64, steps=4,
                           samples=2, prefill=str(prefill), kv_cache="main-memory")


def test_ttft_and_per_token_figures(gpt2_decode) -> None:
    report = gpt2_decode.report
    summary = report.summary()
    prefill = gpt2_decode.prefill.result
    first, last = gpt2_decode.steps[64].result, gpt2_decode.steps[67].result
    assert summary["ttft_seconds"] == prefill.seconds > 0
    assert summary["per_token_seconds"] == first.seconds > 0
    assert summary["per_token_energy_nj"] == first.energy.total_nj > 0
    # a decode step (one token) is cheaper than the prefill of 64 tokens
    assert first.cycles < prefill.cycles and first.energy.total_nj < prefill.energy.total_nj
    # per-token cost grows with the cache it attends over
    assert last.cycles > first.cycles and last.energy.total_nj > first.energy.total_nj
    # steps 2 and 3 are interpolated between the simulated 64 and 67
    rows = report.step_rows()
    assert [r["cache_length"] for r in rows] == [64, 65, 66, 67]
    assert [r["simulated"] for r in rows] == [True, False, False, True]
    assert rows[1]["cycles"] == pytest.approx(first.cycles + (last.cycles - first.cycles) / 3)
    assert summary["decode_seconds"] == pytest.approx(sum(r["seconds"] for r in rows))
    assert summary["end_to_end_seconds"] == pytest.approx(prefill.seconds
                                                          + summary["decode_seconds"])
    # what was simulated is what the sub-reports say
    assert (gpt2_decode.prefill.report.batch, gpt2_decode.prefill.report.seq) == (1, 64)
    assert (gpt2_decode.steps[64].report.batch, gpt2_decode.steps[64].report.seq) == (1, 1)
    args = {a.name: a.type.shape for a in gpt2_decode.steps[67].module.function("forward").args}
    assert args["past_key_values.1.value"] == (1, 4, 67, 16)


def test_cache_bytes_worked_by_hand(gpt2_decode) -> None:
    """2 (K, V) x 2 layers x 4 KV heads x 16 head dim x 64 tokens x batch 1 x
    2.5 bytes = 40,960 bytes at context 64; each step appends 640 bytes."""
    report = gpt2_decode.report
    cache = report.cache_summary()
    assert cache["bytes_per_token"] == 2 * 2 * 4 * 16 * 1 * BYTES_PER_ELEMENT == 640
    assert cache["bytes_at_context"] == 40_960
    assert cache["bytes_at_end"] == 640 * 68
    # the simulated decode step reads the whole cache from main memory once
    # and writes one token's keys and values back (an append, not a copy)
    read, written = report.cache_traffic[64]["main_memory"]
    assert read == 40_960 and written == 640
    assert report.cache_traffic[67]["main_memory"] == [640 * 67, 640]
    # the prefill writes the cache of its 64 tokens
    assert report.prefill_cache_traffic["main_memory"][1] == 40_960
    assert cache["fits_activation_buffer_at_end"]
    assert cache["max_tokens_in_activation_buffer"] == 4 * 2**20 // 640


def test_grouped_query_cache_on_the_command_line(decoders, tmp_path, capsys) -> None:
    """qwen2-tiny keeps 2 KV heads for 4 query heads: the cache counts KV heads.
    2 x 2 layers x 2 KV heads x 16 x 32 tokens x batch 2 x 2.5 B = 20,480 B."""
    prefill, decode = decoders.paths("qwen2-tiny")
    out_json = tmp_path / "decode.json"
    code = main(["compile", str(decode), "--prefill", str(prefill), "--hw", "acceltran-edge",
                 "--batch", "2", "--context", "32", "--decode-steps", "1", "--json", str(out_json),
                 "--max-ops", "5", "--kv-cache", "main-memory"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = captured.out
    assert text.startswith("tcc compile: qwen2-tiny (decoder with KV cache, batch 2, "
                           "context 32, 1 decode step)")
    for needle in ("time to first token", "per token @ context 32", "cache bytes per level",
                   "2 (key, value) x 2 layers x 2 KV heads x 16 head dim x batch 2 x 2.5 bytes "
                   "= 640 B per token; 20 KiB at context 32",
                   "lives in main memory between steps (--kv-cache main-memory)",
                   "=== prefill (32 tokens)", "=== decode step (cache of 32 tokens)"):
        assert needle in text, needle
    data = json.loads(out_json.read_text())
    assert data["kind"] == "decode" and data["model"]["context"] == 32
    assert data["kv_cache"]["bytes_at_context"] == 2 * 2 * 2 * 16 * 32 * 2 * BYTES_PER_ELEMENT
    assert data["kv_cache"]["traffic_per_step"]["32"]["main_memory"] == {"read": 20_480,
                                                                       "written": 640}
    assert data["summary"]["ttft_seconds"] > 0 and data["summary"]["per_token_seconds"] > 0
    assert data["prefill"]["model"]["seq"] == 32 and data["decode"]["32"]["model"]["seq"] == 1


def test_decode_flags_on_a_model_without_a_cache_are_an_error(tmp_path, capsys) -> None:
    from tests.elector_compile.test_shapes import _token_model

    path = _token_model(tmp_path / "encoder.onnx", ["batch", "sequence"])
    code = main(["compile", str(path), "--hw", "acceltran-edge", "--decode-steps", "4"])
    err = capsys.readouterr().err
    assert code == 1
    assert "is not a decoder with a KV cache" in err and "ids [batch, sequence]" in err
    code = main(["compile", "zoo:bert-tiny", "--hw", "acceltran-edge", "--context", "16"])
    err = capsys.readouterr().err
    assert code == 1 and "KV cache" in err and "gpt2-tiny" in err and "Traceback" not in err


def test_decode_flag_errors_before_any_work(decoders, capsys) -> None:
    prefill, decode = decoders.paths("gpt2-tiny")
    cases = [
        (["--context", "100", "--decode-steps", "29"], "has 128 positions"),
        (["--context", "16", "--seq", "16"], "--seq does not apply"),
        (["--context", "16", "--train"], "--train does not apply"),
        (["--context", "16", "--decode-steps", "4", "--decode-samples", "1"], "at least 2"),
        (["--context", "0"], "--context must be a positive integer"),
    ]
    for flags, message in cases:
        code = main(["compile", str(decode), "--hw", "acceltran-edge", *flags])
        err = capsys.readouterr().err
        assert code == 1 and message in err, (flags, err)


def test_decoder_file_without_decode_flags_says_what_it_simulated(decoders, capsys) -> None:
    _, decode = decoders.paths("gpt2-tiny")
    code = main(["compile", str(decode), "--hw", "tiny-test", "--batch", "1", "--seq", "4",
                 "--max-ops", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "the model takes a KV cache" in out and "4 new tokens over 4 cached ones" in out


def test_compiling_an_onnx_decoder_does_not_import_torch(decoders, tmp_path) -> None:
    """Decode flags on ONNX files stay torch-free (only zoo: exports need torch)."""
    import os
    import subprocess
    import sys

    prefill, decode = decoders.paths("gpt2-tiny")
    script = ("import sys\nfrom tools.cli import main\n"
              f"code = main(['compile', {str(decode)!r}, '--prefill', {str(prefill)!r}, "
              "'--hw', 'tiny-test', '--batch', '1', '--context', '4', '--max-ops', '1'])\n"
              "assert code == 0\nassert 'torch' not in sys.modules, 'torch imported'\n"
              "assert 'transformers' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_cache_on_chip_while_it_fits(decoders, gpt2_decode) -> None:
    """--kv-cache auto keeps the cache in the activation buffer while it fits:
    on acceltran-edge (4 MiB) gpt2-tiny's 40 KiB cache is not read from main
    memory, and the step is faster than with the cache in main memory.  On
    tiny-test (8 KiB activation buffer: 12 tokens of 640 B) the cache leaves
    the buffer after 12 tokens; both sides of that step are simulated."""
    from tools.commands.compile import compile_decoder

    _, decode = decoders.paths("gpt2-tiny")
    on_chip = compile_decoder(str(decode), "acceltran-edge", batch=1, context=64, steps=1)
    assert on_chip.report.placement == {64: "activation_buffer"}
    assert on_chip.report.cache_traffic[64]["main_memory"] == [0, 640]
    assert on_chip.steps[64].result.cycles < gpt2_decode.steps[64].result.cycles
    small = compile_decoder(str(decode), "tiny-test", batch=1, context=8, steps=8, samples=2)
    assert sorted(small.steps) == [8, 12, 13, 15]
    assert small.report.placement == {8: "activation_buffer", 12: "activation_buffer",
                                      13: "main_memory", 15: "main_memory"}
    assert small.report.cache_traffic[13]["main_memory"][0] >= 13 * 640


def test_cache_forced_on_chip_that_does_not_fit_is_refused(decoders, capsys) -> None:
    _, decode = decoders.paths("gpt2-tiny")
    code = main(["compile", str(decode), "--hw", "tiny-test", "--batch", "1", "--context", "64",
                 "--kv-cache", "on-chip"])
    err = capsys.readouterr().err
    assert code == 1 and "--kv-cache on-chip" in err and "holds 12 tokens" in err


def test_weights_stay_on_chip_between_steps_when_they_fit(decoders, gpt2_decode) -> None:
    """--decode-weights auto: gpt2-tiny's ~338 KiB of parameters (139k at
    2.5 B; the LM head is tied to the token embedding, one parameter) fit
    acceltran-edge's 8 MiB weight buffer, so a decode step does not load them
    from main memory; with main-memory it loads the ones it reads."""
    from tools.commands.compile import compile_decoder

    _, decode = decoders.paths("gpt2-tiny")
    cold = compile_decoder(str(decode), "acceltran-edge", batch=1, context=64, steps=1,
                           kv_cache="main-memory", weights="main-memory")
    warm = gpt2_decode.steps[64]                      # kv main-memory, weights auto
    report = gpt2_decode.report
    assert report.weights_on_chip and not cold.report.weights_on_chip
    params = sum(p.type.numel for p in warm.module.params.values())
    assert report.weight_bytes == cold.report.weight_bytes > 300 * 1024
    # acceltran-edge stores 20-bit data (the step's module after clean-up holds
    # 65 fewer elements than the one the figure is taken from)
    assert report.weight_bytes == pytest.approx(params * 2.5, rel=1e-3)
    warm_read = warm.result.bytes_by_level["main_memory"][0]
    cold_read = cold.steps[64].result.bytes_by_level["main_memory"][0]
    # warm: the cache (40,960 B) and a few bytes of token ids and constants;
    # cold: also every weight the step reads (gathers read only their rows)
    assert 40_960 <= warm_read < 40_960 + 1024
    assert cold_read - warm_read > 0.6 * report.weight_bytes
    assert warm.result.cycles < cold.steps[64].result.cycles
    # the prefill is a cold start either way
    assert gpt2_decode.prefill.result.bytes_by_level["main_memory"][0] > 0.6 * report.weight_bytes
