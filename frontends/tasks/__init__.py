"""Offline training tasks for the model zoo (torch-free to import).

* :mod:`frontends.tasks.listops`: ListOps as defined by the Long Range Arena,
  generated locally and deterministically from a seed (numpy only).
* :mod:`frontends.tasks.trainer`: a small seeded trainer (AdamW) for zoo
  classifiers on such a task, optionally under DynaProp pruning (imports torch).

>>> from frontends.tasks import generate_listops, ListOpsConfig
>>> data = generate_listops(ListOpsConfig(train_size=10, validation_size=5, test_size=5))
>>> data.train.input_ids.shape
(10, 64)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from frontends.tasks.listops import (
    NUM_CLASSES,
    OPERATORS,
    ListOpsConfig,
    ListOpsData,
    ListOpsSplit,
    ListOpsVocabulary,
    evaluate_tree,
    generate_listops,
    tree_tokens,
)
from transcode_ir.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from frontends.tasks.trainer import TrainConfig, TrainResult, evaluate, train_classifier

__all__ = [
    "NUM_CLASSES",
    "OPERATORS",
    "TASKS",
    "ListOpsConfig",
    "ListOpsData",
    "ListOpsSplit",
    "ListOpsVocabulary",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "evaluate_tree",
    "generate_listops",
    "load_task",
    "train_classifier",
    "tree_tokens",
]

#: Task names known to :func:`load_task` and the ``tcc dynaprop`` commands.
TASKS: tuple[str, ...] = ("listops",)

_TRAINER_NAMES = {"TrainConfig", "TrainResult", "evaluate", "train_classifier"}


def load_task(name: str, **options: Any) -> ListOpsData:
    """Generate the data of task ``name`` (``options`` are that task's config fields)."""
    key = name.strip().lower()
    if key == "listops":
        return generate_listops(ListOpsConfig(**options))
    raise UserError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def __getattr__(name: str) -> Any:
    """Load the torch trainer only when one of its names is used."""
    if name in _TRAINER_NAMES:
        from frontends.tasks import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
