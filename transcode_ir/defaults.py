"""Defaults several layers share, each defined once (issue 15, "Defaults").

The command line (``tools/options.py`` re-exports them), the co-design
library, the ELECTOR backend and the frontends read these names instead of
writing the values again; the core imports nothing here and nothing here
imports anything, so every layer may read it.
"""

from __future__ import annotations

__all__ = [
    "INFERENCE_PIPELINE",
    "MAPPER_OBJECTIVE",
    "MAPPER_OBJECTIVES",
    "SEQUENCE_LENGTH",
    "TRAINING_LOSS",
    "TRAINING_OPTIMIZER",
    "training_pipeline",
]

#: Tokens per sequence when nothing else binds it (a symbolic ONNX dimension,
#: ``tcc zoo export``, a sweep's ``--seq``): BERT's usual fine-tuning length.
SEQUENCE_LENGTH = 128

#: What the ELECTOR mapping search minimises per op (``--mapper-objective``,
#: ``elector-map{objective=...}``), and the accepted values.
MAPPER_OBJECTIVES: tuple[str, ...] = ("latency", "energy", "edp")
MAPPER_OBJECTIVE = "latency"

#: The passes before mapping for inference (a named pipeline of ``passes``).
INFERENCE_PIPELINE = "default"

#: The default training step: cross-entropy loss, Adam.
TRAINING_LOSS = "cross-entropy"
TRAINING_OPTIMIZER = "adam"


def training_pipeline(optimizer: str = TRAINING_OPTIMIZER, output: str | None = None) -> str:
    """The default training pipeline (differentiate before fusing); ``output``
    names the forward result the loss reads (None: the only one)."""
    options = f"loss={TRAINING_LOSS},optimizer={optimizer}" + (f",output={output}" if output
                                                               else "")
    return f"cleanup,autodiff{{{options}}},cleanup,fuse,dce"
