"""ListOps (Long Range Arena), generated locally from a seed; numpy only, no torch.

ListOps (Nangia & Bowman 2018, as used by the Long Range Arena benchmark, Tay
et al. 2021) is a classification task over nested prefix expressions::

    [MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]        → 5

Operators (the LRA set): ``[MAX``, ``[MIN``, ``[MED`` (median; for an even
count the two middle values are averaged and truncated, ``int(np.median)`` as
in the LRA generator) and ``[SM`` (sum modulo 10).  Operands are digits 0–9 or
nested expressions; ``]`` closes an expression.  The label is the value of the
whole expression, a digit 0–9 (ten classes).

Generation follows the LRA generator (``long-range-arena/lra_benchmarks/data/
listops.py``): at depth ``d < max_depth`` a node is an operator with
probability :data:`OPERATOR_PROBABILITY` (0.25), otherwise a digit; at
``max_depth`` it is always a digit; an operator takes 2..``max_args`` operands.
Trees whose token count (without ``[CLS]``) is not in ``[min_length,
max_length - 1]`` are rejected and redrawn, so every example fits
``max_length`` tokens including ``[CLS]``.  LRA uses depth 10, 10 arguments
and 500–2000 tokens; the defaults here are short (depth 4, 5 arguments, at
most 64 tokens) so that a BERT-Tiny trains on two CPU cores in minutes.

Determinism: one :class:`random.Random` seeded with ``seed`` draws a stream
of expressions; duplicates are skipped so that the train, validation and test
splits are disjoint; the first ``train_size`` unique expressions are the
training split, the next ``validation_size`` the validation split, and so on.
The same :class:`ListOpsConfig` and seed always give the same splits, on every
platform (Python's Mersenne Twister and ``random.Random.random``/``randrange``
are stable across versions).

The generator evaluates its own trees (:func:`evaluate_tree`); the tests check
every label with an evaluator written independently over the token list.

Tokenizer: a fixed vocabulary of 17 tokens, ``[PAD]`` = 0, ``[CLS]`` = 1 (the
pooler reads position 0), digits, operators and ``]``.  Encoded examples are
``[CLS] tokens... [PAD]...`` with an attention mask of 1 on real tokens.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from transcode_ir.errors import UserError

__all__ = [
    "NUM_CLASSES",
    "OPERATORS",
    "OPERATOR_PROBABILITY",
    "ListOpsConfig",
    "ListOpsData",
    "ListOpsSplit",
    "ListOpsVocabulary",
    "Tree",
    "evaluate_tree",
    "generate_listops",
    "generate_tree",
    "tree_tokens",
]

#: The LRA operators, as tokens (an operator token opens an expression).
OPERATORS: tuple[str, ...] = ("[MIN", "[MAX", "[MED", "[SM")
#: Closing token of an expression.
CLOSE = "]"
#: Probability that a node above ``max_depth`` is an operator (LRA: ``VALUE_P = 0.25``).
OPERATOR_PROBABILITY = 0.25
#: Labels are the digits 0–9.
NUM_CLASSES = 10
#: Split names in generation order.
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: Draws in a row without a new accepted expression before generation gives up.
MAX_DRAWS_PER_EXAMPLE = 100_000

#: A tree is a digit or ``(operator, [children])``.
Tree = int | tuple[str, list["Tree"]]


def apply_operator(operator: str, values: Sequence[int]) -> int:
    """The value of ``operator`` over digit operands (LRA semantics)."""
    if operator == "[MIN":
        return min(values)
    if operator == "[MAX":
        return max(values)
    if operator == "[MED":
        return int(np.median(np.asarray(values, dtype=np.float64)))
    if operator == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {operator!r}")


def generate_tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> Tree:
    """Draw one tree as the LRA generator does (root at ``depth == 1``)."""
    if depth < max_depth and rng.random() < OPERATOR_PROBABILITY:
        count = rng.randint(2, max_args)
        children = [generate_tree(rng, depth + 1, max_depth, max_args) for _ in range(count)]
        return (rng.choice(OPERATORS), children)
    return rng.randrange(10)


def evaluate_tree(tree: Tree) -> int:
    """The value of a tree (the generator's own evaluation)."""
    if isinstance(tree, int):
        return tree
    operator, children = tree
    return apply_operator(operator, [evaluate_tree(child) for child in children])


def tree_tokens(tree: Tree) -> list[str]:
    """The token list of a tree: ``[MAX 4 3 ]`` → ``["[MAX", "4", "3", "]"]``."""
    if isinstance(tree, int):
        return [str(tree)]
    operator, children = tree
    tokens = [operator]
    for child in children:
        tokens.extend(tree_tokens(child))
    tokens.append(CLOSE)
    return tokens


class ListOpsVocabulary:
    """The fixed ListOps vocabulary: ``[PAD]``, ``[CLS]``, digits, operators, ``]``."""

    PAD = "[PAD]"
    CLS = "[CLS]"

    def __init__(self) -> None:
        self.tokens: tuple[str, ...] = (
            (self.PAD, self.CLS) + tuple(str(d) for d in range(10)) + OPERATORS + (CLOSE,)
        )
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self.pad_id = self.index[self.PAD]
        self.cls_id = self.index[self.CLS]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """``[CLS] + tokens``, padded to ``max_length``: ``(input_ids, attention_mask)`` int64."""
        if len(tokens) + 1 > max_length:
            raise UserError(
                f"ListOps expression of {len(tokens)} tokens does not fit max_length "
                f"{max_length} (one position is [CLS])"
            )
        ids = np.full(max_length, self.pad_id, dtype=np.int64)
        mask = np.zeros(max_length, dtype=np.int64)
        try:
            ids[0] = self.cls_id
            ids[1 : len(tokens) + 1] = [self.index[token] for token in tokens]
        except KeyError as err:
            raise UserError(f"unknown ListOps token {err.args[0]!r}") from None
        mask[: len(tokens) + 1] = 1
        return ids, mask

    def decode(self, input_ids: Sequence[int]) -> list[str]:
        """Token strings of real tokens (``[CLS]`` and padding dropped)."""
        return [
            self.tokens[int(i)] for i in input_ids if int(i) not in (self.pad_id, self.cls_id)
        ]


VOCABULARY = ListOpsVocabulary()


@dataclass(frozen=True)
class ListOpsConfig:
    """How to generate a ListOps data set (sizes, depth, lengths, seed)."""

    train_size: int = 4000
    validation_size: int = 500
    test_size: int = 500
    max_depth: int = 4
    max_args: int = 5
    min_length: int = 4
    max_length: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_size", "validation_size", "test_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UserError(f"ListOps {name}: expected an integer >= 0, got {value!r}")
        if not isinstance(self.max_depth, int) or self.max_depth < 2:
            raise UserError(f"ListOps max_depth: expected an integer >= 2, got {self.max_depth!r}")
        if not isinstance(self.max_args, int) or self.max_args < 2:
            raise UserError(f"ListOps max_args: expected an integer >= 2, got {self.max_args!r}")
        if not isinstance(self.min_length, int) or self.min_length < 4:
            raise UserError(
                f"ListOps min_length: expected an integer >= 4 (the shortest expression "
                f"'[OP a b ]'), got {self.min_length!r}"
            )
        if not isinstance(self.max_length, int) or self.max_length < self.min_length + 1:
            raise UserError(
                f"ListOps max_length: expected an integer >= min_length + 1 = "
                f"{self.min_length + 1} (one position is [CLS]), got {self.max_length!r}"
            )

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class ListOpsSplit:
    """One split: token lists, labels and their encoding (numpy int64)."""

    name: str
    expressions: list[list[str]]
    labels: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.expressions)

    def label_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=NUM_CLASSES)

    def majority_accuracy(self) -> float:
        """Accuracy of always predicting the most frequent label of this split."""
        return float(self.label_counts().max() / max(len(self), 1))


@dataclass
class ListOpsData:
    """Train/validation/test splits and the vocabulary that encodes them."""

    config: ListOpsConfig
    train: ListOpsSplit
    validation: ListOpsSplit
    test: ListOpsSplit
    vocabulary: ListOpsVocabulary = field(default_factory=lambda: VOCABULARY)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def split(self, name: str) -> ListOpsSplit:
        if name not in SPLITS:
            raise UserError(f"unknown ListOps split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)


def _expression_stream(config: ListOpsConfig) -> Iterator[tuple[list[str], int]]:
    """Unique (tokens, label) pairs whose length fits, in seed order.

    Gives up with a :class:`UserError` after :data:`MAX_DRAWS_PER_EXAMPLE` draws
    per accepted example in a row (a too small expression space).
    """
    rng = random.Random(config.seed)
    seen: set[tuple[str, ...]] = set()
    longest = config.max_length - 1
    draws = 0
    while True:
        draws += 1
        if draws > MAX_DRAWS_PER_EXAMPLE:
            raise UserError(
                f"ListOps: found only {len(seen)} distinct expressions with "
                f"max_depth={config.max_depth}, max_args={config.max_args} and lengths "
                f"{config.min_length}..{longest}; allow deeper or longer expressions or "
                "ask for fewer examples"
            )
        tree = generate_tree(rng, 1, config.max_depth, config.max_args)
        if isinstance(tree, int):
            continue
        tokens = tree_tokens(tree)
        if not config.min_length <= len(tokens) <= longest:
            continue
        key = tuple(tokens)
        if key in seen:
            continue
        seen.add(key)
        draws = 0
        yield tokens, evaluate_tree(tree)


def generate_listops(config: ListOpsConfig | None = None, **overrides: int) -> ListOpsData:
    """Generate the three disjoint splits of ``config`` (fields may be overridden by keyword)."""
    if config is None:
        config = ListOpsConfig(**overrides)
    elif overrides:
        config = ListOpsConfig(**{**config.to_json(), **overrides})
    sizes = (config.train_size, config.validation_size, config.test_size)
    stream = _expression_stream(config)
    splits: list[ListOpsSplit] = []
    for name, size in zip(SPLITS, sizes):
        pairs = list(itertools.islice(stream, size))
        expressions = [tokens for tokens, _ in pairs]
        labels = [label for _, label in pairs]
        splits.append(_encode_split(name, expressions, labels, config.max_length))
    return ListOpsData(config, *splits)


def _encode_split(
    name: str, expressions: list[list[str]], labels: list[int], max_length: int
) -> ListOpsSplit:
    input_ids = np.zeros((len(expressions), max_length), dtype=np.int64)
    attention_mask = np.zeros((len(expressions), max_length), dtype=np.int64)
    for row, tokens in enumerate(expressions):
        input_ids[row], attention_mask[row] = VOCABULARY.encode(tokens, max_length)
    return ListOpsSplit(
        name, expressions, np.asarray(labels, dtype=np.int64), input_ids, attention_mask
    )
