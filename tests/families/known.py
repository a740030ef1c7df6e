"""Cells of the family matrix that fail today, and why (xfail strict: when a fix
lands the cell passes, the xfail turns into an error, and the entry goes).

Keys are ``(family, exporter)``; values map a cell (or ``"*"``: every cell
from ``import`` on, since they all need the import) to the reason.
"""

from __future__ import annotations

ISNAN = "importer: no IsNaN (sdpa attention's masked-softmax guard) -- hf-ops"
GATHERND = "importer: no GatherND (dynamo's causal/padding mask) -- hf-ops"
GATHER_ELEMENTS_FOLD = ("importer: GatherElements on the token_type_ids buffer fails to fold "
                        "('cannot reshape array of size 1 into shape (1,16)') -- hf-ops")
GATHER_ELEMENTS = "importer: no GatherElements (DeBERTa's relative-position gather) -- hf-ops"
CUMSUM = "importer: CumSum of a model input (RoBERTa's position ids) -- hf-ops"
CONV2D = "importer: Conv with 2 spatial axes (ViT's patch embedding) -- hf-ops"
TIED_TRANSPOSED = ("importer: the TorchScript exporter folds the tied LM head's transpose into "
                   "a second initializer, which stays a second IR parameter -- hf-ops")

KNOWN: dict[tuple[str, str], dict[str, str]] = {}


def _add(names: tuple[str, ...], exporters: tuple[str, ...], cell: str, reason: str) -> None:
    for name in names:
        for exporter in exporters:
            KNOWN.setdefault((name, exporter), {}).setdefault(cell, reason)


_BOTH = ("torchscript", "dynamo")
_add(("bert-hf-tiny", "albert-tiny", "electra-tiny"), _BOTH, "*", GATHER_ELEMENTS_FOLD)
_add(("roberta-tiny",), _BOTH, "*", CUMSUM)
_add(("deberta-v2-tiny",), _BOTH, "*", GATHER_ELEMENTS)
_add(("vit-tiny",), _BOTH, "*", CONV2D)
_add(("distilbert-tiny", "gpt2-tiny", "llama-tiny", "qwen2-tiny"), ("torchscript",), "*", ISNAN)
_add(("distilbert-tiny", "gpt2-tiny", "llama-tiny", "qwen2-tiny", "t5-encoder-tiny"), ("dynamo",),
     "*", GATHERND)


def reason(name: str, exporter: str, cell: str) -> str | None:
    """Why the cell is expected to fail, or None."""
    if cell == "export":
        return KNOWN.get((name, exporter), {}).get("export")
    entry = KNOWN.get((name, exporter), {})
    return entry.get(cell) or entry.get("*")
