"""ListOps: deterministic generation, labels checked by an independent evaluator, encoding."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from frontends.tasks import ListOpsConfig, generate_listops, load_task
from frontends.tasks.listops import VOCABULARY
from transcode_ir.errors import UserError

SMALL = ListOpsConfig(train_size=300, validation_size=100, test_size=100, seed=11)


def independent_value(tokens: list[str]) -> int:
    """Evaluate a ListOps token list by recursive descent (written apart from the generator).

    Median follows the LRA generator: ``int(np.median(...))``, i.e. for an even
    count the mean of the two middle values, truncated; computed here by sorting.
    """
    position = 0

    def expression() -> int:
        nonlocal position
        token = tokens[position]
        position += 1
        if token.isdigit():
            return int(token)
        assert token.startswith("["), token
        operands: list[int] = []
        while tokens[position] != "]":
            operands.append(expression())
        position += 1  # the "]"
        assert len(operands) >= 2
        if token == "[MAX":
            return max(operands)
        if token == "[MIN":
            return min(operands)
        if token == "[SM":
            total = 0
            for operand in operands:
                total = (total + operand) % 10
            return total
        if token == "[MED":
            ordered = sorted(operands)
            middle = len(ordered) // 2
            if len(ordered) % 2:
                return ordered[middle]
            return (ordered[middle - 1] + ordered[middle]) // 2
        raise AssertionError(f"unknown operator {token}")

    value = expression()
    assert position == len(tokens), "trailing tokens"
    return value


def test_hand_written_examples() -> None:
    assert independent_value(["[MAX", "4", "3", "[MIN", "2", "3", "]", "1", "0", "[MED", "1", "5", "8", "9", "2", "]", "]"]) == 5
    assert independent_value(["[SM", "7", "8", "[MED", "1", "4", "]", "]"]) == 7  # 7 + 8 + int(2.5) = 17 → 7
    assert independent_value(["[MED", "9", "0", "]"]) == 4


def test_labels_agree_with_the_independent_evaluator() -> None:
    data = generate_listops(SMALL)
    for split in (data.train, data.validation, data.test):
        for tokens, label, ids in zip(split.expressions, split.labels, split.input_ids):
            assert independent_value(tokens) == int(label)
            assert VOCABULARY.decode(ids) == tokens


def test_generation_is_deterministic_for_a_seed() -> None:
    first, second = generate_listops(SMALL), generate_listops(SMALL)
    for name in ("train", "validation", "test"):
        a, b = first.split(name), second.split(name)
        assert a.expressions == b.expressions
        assert np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.input_ids, b.input_ids)
        assert np.array_equal(a.attention_mask, b.attention_mask)
    other = generate_listops(SMALL, seed=12)
    assert other.train.expressions != first.train.expressions


def test_splits_are_disjoint_and_fit_max_length() -> None:
    data = generate_listops(SMALL)
    keys = [
        {tuple(tokens) for tokens in data.split(name).expressions}
        for name in ("train", "validation", "test")
    ]
    assert sum(len(k) for k in keys) == 500  # no duplicates anywhere
    for split in (data.train, data.validation, data.test):
        lengths = split.attention_mask.sum(axis=1)
        assert lengths.max() <= SMALL.max_length
        assert lengths.min() >= SMALL.min_length + 1
        assert np.all(split.input_ids[:, 0] == VOCABULARY.cls_id)
        assert np.all(split.input_ids[split.attention_mask == 0] == VOCABULARY.pad_id)
        assert split.labels.min() >= 0 and split.labels.max() <= 9


def test_the_task_is_nontrivial() -> None:
    data = generate_listops(SMALL)
    counts = data.train.label_counts()
    assert (counts > 0).all()  # every digit occurs
    assert data.train.majority_accuracy() < 0.25
    depth = [max(_depths(tokens)) for tokens in data.train.expressions]
    assert max(depth) >= 3 and statistics.mean(depth) > 1.2  # nesting happens
    operators = {tokens[0] for tokens in data.train.expressions}
    assert operators == {"[MAX", "[MIN", "[MED", "[SM"}


def _depths(tokens: list[str]) -> list[int]:
    depth, seen = 0, [0]
    for token in tokens:
        if token.startswith("["):
            depth += 1
            seen.append(depth)
        elif token == "]":
            depth -= 1
    return seen


def test_vocabulary() -> None:
    assert len(VOCABULARY) == 17
    assert VOCABULARY.tokens[:2] == ("[PAD]", "[CLS]")
    ids, mask = VOCABULARY.encode(["[SM", "1", "2", "]"], 8)
    assert ids.tolist()[:5] == [1, VOCABULARY.index["[SM"], 3, 4, 16]
    assert mask.tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    with pytest.raises(UserError, match="does not fit max_length"):
        VOCABULARY.encode(["1"] * 8, 8)
    with pytest.raises(UserError, match="unknown ListOps token"):
        VOCABULARY.encode(["[FIRST"], 8)


def test_config_errors() -> None:
    with pytest.raises(UserError, match="max_length"):
        ListOpsConfig(max_length=4)
    with pytest.raises(UserError, match="max_depth"):
        ListOpsConfig(max_depth=1)
    with pytest.raises(UserError, match="unknown task 'imdb'"):
        load_task("imdb")
    with pytest.raises(UserError, match="distinct expressions"):
        generate_listops(ListOpsConfig(train_size=10_000, validation_size=0, test_size=0,
                                       max_depth=2, max_args=2, max_length=6))
