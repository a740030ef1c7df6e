"""The co-design spaces: validity (the zoo's checker), replay, encodings."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from tools.codesign.spaces import (
    HardwareSpace,
    JointPoint,
    JointSpace,
    ModelSpace,
    Schedule,
    ScheduleSpace,
)
from transcode_ir.errors import UserError


def test_model_space_uses_the_zoo_validator() -> None:
    space = ModelSpace()
    space.validate("l2:h128:sdp,dft:ff512")
    with pytest.raises(UserError, match="hidden"):
        space.validate("l2:h100:sdp,dft:ff512")         # outside FlexiBERT 2.0
    with pytest.raises(UserError, match="canonical"):
        space.validate("l2:h128:dft,sdp:ff512")         # heads not in canonical order
    small = ModelSpace.named("flexibert2-small")
    with pytest.raises(UserError, match="ff width 4096"):
        small.validate("l2:h128:sdp*2:ff4096")
    with pytest.raises(UserError, match="outside the FlexiBERT 2.0 space"):
        ModelSpace(hidden=(100,))


def test_model_space_size_counts_head_multisets() -> None:
    one_layer = ModelSpace(layers=(2,), hidden=(128,), heads=(2,), head_types=("sdp", "dft"),
                           ff_stacks=(1,), ff_widths=(256,))
    assert one_layer.size == 3 ** 2                     # {sdp,sdp},{sdp,dft},{dft,dft} per layer
    assert ModelSpace.single("bert-base").size == 1
    assert ModelSpace().size > 10 ** 80


def test_sampled_points_are_valid_and_replay(joint_space: JointSpace) -> None:
    rng = random.Random(1)
    for _ in range(150):
        point = joint_space.sample(rng)
        joint_space.validate(point)
        assert joint_space.decode(joint_space.encode(point)) == point
        assert joint_space.from_vector(joint_space.to_vector(point)) == point
        decisions = joint_space.decisions_of(point)
        rebuilt = joint_space.build(lambda name, options, d=decisions: d[name])
        assert rebuilt == point
        child = joint_space.mutate(point, rng)
        joint_space.validate(child)
        assert joint_space.is_valid(joint_space.crossover(point, child, rng))


def test_snapping_any_vector_gives_a_valid_point(joint_space: JointSpace) -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        point = joint_space.from_vector(rng.uniform(-0.2, 1.2, joint_space.width))
        joint_space.validate(point)


def test_description_and_identity(joint_space: JointSpace) -> None:
    point = joint_space.sample(random.Random(3))
    text = joint_space.describe(point)
    assert text.startswith(f"model {point.model} | hardware transcode-space#{point.hardware} (")
    assert "pe_array.pes=" in text and "| schedule tile " in text
    identity = joint_space.identity(point)
    assert identity["model"] == point.model
    assert identity["hardware"].startswith('accelerator "point"')
    with pytest.raises(UserError):
        joint_space.decode('{"model": "l2:h128:sdp:ff512", "hardware": -1, "schedule": {}}')


def test_schedule_space_rules() -> None:
    with pytest.raises(UserError, match="fixed loop order needs a tile"):
        ScheduleSpace(tiles=("auto",), orders=("bijk",))
    space = ScheduleSpace(tiles=("auto", "1x16x16"), orders=("auto", "kjib"), tau_i=(0, 0.02))
    space.validate(Schedule("1x16x16", "kjib", 0.02, 0.0))
    with pytest.raises(UserError, match="order must be auto"):
        space.validate(Schedule("auto", "kjib", 0.0, 0.0))
    assert space.size == (1 + 2) * 2
    assert Schedule("design").forced_tile((4, 32, 32)) == (4, 32, 32)


def test_small_joint_space_enumerates_each_point_once(small_space_file) -> None:
    model = ModelSpace(layers=(2,), hidden=(128,), heads=(2,), head_types=("sdp", "dft"),
                       ff_stacks=(1,), ff_widths=(256, 512))
    space = JointSpace(model, HardwareSpace(str(small_space_file)),
                       ScheduleSpace(tau_i=(0.0, 0.01)))
    points = list(space.enumerate())
    assert len(points) == len(set(points)) == space.size == 36 * 64 * 2


def test_hardware_space_pickles_as_text() -> None:
    space = HardwareSpace("transcode-space")
    clone = pickle.loads(pickle.dumps(space))
    assert clone.size == 7_425_000
    assert clone.canonical(123456) == space.canonical(123456)
    assert JointPoint("l2:h128:sdp*2:ff512", 5) == JointPoint.from_json(
        JointPoint("l2:h128:sdp*2:ff512", 5).to_json())
