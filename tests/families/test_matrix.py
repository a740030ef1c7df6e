"""The model-family matrix (issue 11 item 2): every family of frontends/hf
(BERT, DistilBERT, RoBERTa, ALBERT, ELECTRA, DeBERTa-v2, GPT-2, T5 encoder,
ViT, Llama, Qwen2, torch.nn.TransformerEncoder), built from a transformers
config with seeded random weights and exported with both exporters through the
plain Hugging Face call, through every stage of frontends/hf/matrix.py:
export (onnxruntime = torch), import (interpreter = onnxruntime), shared
weights, tcc compile for inference, training and the event simulator, the
dynaprop pass, and IR → ONNX (= interpreter); tolerance 1e-4.

Cells that fail for want of support elsewhere are xfail (strict) with the
reason (tests/families/known.py).  CPU budget: the dynamo exporter costs
10-20 s of CPU per family, so the default run exports with dynamo only the
families in :data:`DYNAMO_DEFAULT` (one per kind of graph the dynamo exporter
emits differently: BERT-style encoder, decoder with a causal mask, vision,
torch's own encoder); ``TRANSCODE_FAMILY_MATRIX=full`` runs every family with
both exporters (``bench/bench_families.py`` always does).
"""

from __future__ import annotations

import os

import pytest

from frontends.hf import matrix
from tests.families.known import reason

DYNAMO_DEFAULT = ("gpt2-tiny", "qwen2-tiny", "vit-tiny")
FULL = os.environ.get("TRANSCODE_FAMILY_MATRIX", "") == "full"


def _cases():
    for name in matrix.MATRIX:
        for exporter in matrix.EXPORTERS:
            for cell in matrix.CELLS:
                marks = [pytest.mark.xdist_group(name)]
                if exporter == "dynamo" and not FULL and name not in DYNAMO_DEFAULT:
                    marks.append(pytest.mark.skip(
                        reason="dynamo export of this family runs with "
                               "TRANSCODE_FAMILY_MATRIX=full (CPU budget; see module doc)"))
                why = reason(name, exporter, cell)
                if why:
                    marks.append(pytest.mark.xfail(strict=True, reason=why))
                yield pytest.param(name, exporter, cell, marks=marks,
                                   id=f"{name}-{exporter}-{cell}")


@pytest.mark.parametrize(("name", "exporter", "cell"), list(_cases()))
def test_cell(families, name: str, exporter: str, cell: str) -> None:
    if cell == "export":
        families.subject(name, exporter, upto="export")
        return
    subject = families.subject(name, exporter, upto="import")
    if cell != "import":
        matrix.run_cell(subject, cell)
