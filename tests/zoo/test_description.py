"""Descriptions: text and JSON forms, canonical order, design-space checks (no torch)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontends.zoo import (
    DESIGN_SPACE,
    HEAD_TYPES,
    ZOO,
    EncoderConfig,
    LayerSpec,
    format_description,
    get_config,
    list_models,
    parse_description,
    prune_points,
    resolve_config,
)
from transcode_ir.errors import UserError


def test_zoo_names_and_bert_shapes() -> None:
    assert list_models() == [
        "bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base",
        "flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c",
    ]
    expected = {
        "bert-tiny": (2, 128, 2, 512),
        "bert-mini": (4, 256, 4, 1024),
        "bert-small": (4, 512, 8, 2048),
        "bert-medium": (8, 512, 8, 2048),
        "bert-base": (12, 768, 12, 3072),
    }
    for name, (layers, hidden, heads, ffn) in expected.items():
        config = ZOO[name]
        assert config.num_layers == layers
        assert {layer.hidden for layer in config.layers} == {hidden}
        assert {layer.heads for layer in config.layers} == {("sdp",) * heads}
        assert {layer.ff for layer in config.layers} == {(ffn,)}
        assert config.vocab_size == 30522
        assert config.max_position_embeddings == 512
        assert config.type_vocab_size == 2
    assert ZOO["bert-base"].description == "l12:h768:sdp*12:ff3072"
    # The published BERT-Base parameter count (with pooler), computed without torch.
    assert ZOO["bert-base"].parameter_count() == 109_482_240


def test_flexibert_models_cover_every_head_type_and_are_small() -> None:
    seen: set[str] = set()
    for name in ("flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c"):
        config = ZOO[name]
        config.check_design_space()
        assert max(layer.hidden for layer in config.layers) <= 256
        seen.update(config.head_type_counts())
        # heterogeneous: more than one head type somewhere
        assert len(config.head_type_counts()) > 1
    assert seen == set(HEAD_TYPES)


def test_every_zoo_model_is_in_the_design_space() -> None:
    for config in ZOO.values():
        config.check_design_space()


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_descriptions_round_trip(name: str) -> None:
    config = ZOO[name]
    again = parse_description(config.description)
    assert again == config
    assert format_description(again) == config.description


def test_names_are_case_insensitive_and_unknown_names_list_the_zoo() -> None:
    assert get_config("BERT-Tiny") is ZOO["bert-tiny"]
    with pytest.raises(UserError) as info:
        get_config("bert-huge")
    message = str(info.value)
    assert "bert-huge" in message
    for name in ZOO:
        assert name in message


def test_text_form_details() -> None:
    config = parse_description(" l3 : h256 : dft, sdp*2 ,conv9 : ff1024-512 | h128:wma,dct:ff256 ")
    assert config.num_layers == 4
    first = config.layers[0]
    assert first == config.layers[1]
    # canonical head order, whatever order the text used
    assert first.heads == ("sdp", "sdp", "dft", "conv9")
    assert first.head_dim == 64 and first.num_heads == 4 and first.num_attention_heads == 2
    assert first.ff == (1024, 512)
    assert first.head_groups() == [("sdp", 0, 128), ("dft", 128, 64), ("conv9", 192, 64)]
    assert config.description == "l3:h256:sdp*2,dft,conv9:ff1024-512|h128:wma,dct:ff256"
    # heads are permutation-symmetric: different text, same config
    assert parse_description("l2:h128:dct,sdp:ff512") == parse_description("l2:h128:sdp,dct:ff512")


def test_json_forms_equal_the_text_form() -> None:
    text = parse_description("l3:h256:sdp*2,dft,conv9:ff1024-512|h128:wma,dct:ff256")
    as_list = {"layers": [
        {"hidden": 256, "heads": ["sdp", "sdp", "dft", "conv9"], "ff": [1024, 512], "count": 3},
        {"hidden": 128, "heads": ["wma", "dct"], "ff": 256},
    ]}
    as_mapping = {"layers": [
        {"hidden": 256, "heads": {"sdp": 2, "dft": 1, "conv9": 1}, "ff": [1024, 512], "count": 3},
        {"hidden": 128, "heads": "wma,dct", "ff": [256]},
    ]}
    assert parse_description(json.dumps(as_list)) == text
    assert parse_description(json.dumps(as_mapping)) == text
    assert resolve_config(json.dumps(as_list)) == text


def test_config_fields_and_vocab_override() -> None:
    config = parse_description("l2:h128:sdp*2:ff512", vocab_size=1000)
    assert config.vocab_size == 1000
    assert resolve_config("bert-tiny", vocab_size=1000).vocab_size == 1000
    assert resolve_config("bert-tiny", vocab_size=1000).layers == ZOO["bert-tiny"].layers
    with pytest.raises(UserError, match="vocab_size"):
        resolve_config("bert-tiny", vocab_size=0)


def test_outside_the_space_is_allowed_when_asked() -> None:
    config = parse_description("h64:sdp,dft:ff100", check_space=False)
    assert config.num_layers == 1 and config.layers[0].hidden == 64
    with pytest.raises(UserError):
        parse_description("h64:sdp,dft:ff100")


BAD_DESCRIPTIONS = [
    # (description, words the message must contain)
    ("l2:h128:sdp,foo:ff512", ["heads", "'foo'", "sdp, wma, dft, dct, conv5, conv9, conv13"]),
    ("l2:h300:sdp*2:ff512", ["layer 0", "hidden", "300", "128, 256, 512, 768"]),
    ("l2:h128:sdp*3:ff512", ["heads", "3 heads"]),
    ("l2:h768:sdp*3:ff512", ["layer 0", "heads", "3 heads", "2, 4, 8, 12"]),
    ("l2:h128:sdp*12:ff512", ["heads", "12 heads do not divide hidden size 128"]),
    ("l2:h128:sdp*2:ff500", ["layer 0", "ff", "500", "256, 512"]),
    ("l2:h128:sdp*2:ff512-512-512-512", ["ff", "4 feed-forward stacks", "1, 2, 3"]),
    ("l3:h128:sdp*2:ff512", ["layers", "3 layers", "2, 4, 6, 8, 10, 12"]),
    ("h128:sdp*2:ff512|h128:sdp,conv7:ff512", ["segment 2", "heads", "'conv7'"]),
    ("l2:h128:sdp*2", ["segment 1", "[lN:]hHIDDEN:HEADS:ffW"]),
    ("l2:x128:sdp*2:ff512", ["hidden", "hN"]),
    ("l2:h128:sdp*2:512", ["ff", "ffW"]),
    ("l2:h128:sdp*two:ff512", ["heads", "'two'"]),
    ("l2:h128:sdp*0:ff512", ["heads", "positive"]),
    ("lx:h128:sdp:ff512", ["layer count"]),
    ("h128:sdp*2:ff512||h128:sdp*2:ff512", ["segment 2", "empty segment"]),
    ("h128:sdp*2:ff512|h128:sdp,,dft:ff512", ["heads", "empty head"]),
    ("l2:h128:sdp*2:ff512-", ["ff", "positive integer"]),
    ('{"layers": [{"hidden": 128, "heads": ["sdp"], "ff": [512], "count": 2}', ["invalid JSON"]),
    ('{"layers": [{"hidden": 128, "heads": ["sdp", "sdp"], "ff": 512, "size": 2}]}',
     ["layers[0]", "unknown field", "size"]),
    ('{"layers": [{"hidden": 128, "ff": 512}]}', ["layers[0]", "heads", "missing"]),
    ('{"layer": []}', ["'layers' list"]),
    ('{"layers": [{"hidden": 128, "heads": {"sdp": 0}, "ff": 512, "count": 2}]}',
     ["heads", "positive"]),
    ("   ", ["empty"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_DESCRIPTIONS)
def test_bad_descriptions_name_the_field(text: str, words: list[str]) -> None:
    with pytest.raises(UserError) as info:
        parse_description(text)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_bad_description_through_resolve_and_prune_points() -> None:
    with pytest.raises(UserError, match="hidden"):
        resolve_config("l2:h100:sdp:ff512")
    with pytest.raises(UserError, match="unknown model"):
        prune_points("no-such-model")


def test_layer_and_config_constructors_check_themselves() -> None:
    with pytest.raises(UserError, match="hidden"):
        LayerSpec(0, ("sdp",), (512,))
    with pytest.raises(UserError, match="heads"):
        LayerSpec(128, (), (512,))
    with pytest.raises(UserError, match="ff"):
        LayerSpec(128, ("sdp",), ())
    with pytest.raises(UserError, match="layers"):
        EncoderConfig(())
    with pytest.raises(UserError, match="vocab_size"):
        EncoderConfig((LayerSpec(128, ("sdp",), (512,)),), vocab_size=-1)


def test_prune_points_of_bert_tiny() -> None:
    paths = [(p.path, p.kind) for p in prune_points("bert-tiny")]
    layer0 = [(path, kind) for path, kind in paths if path.startswith("encoder.layer.0.")]
    assert layer0 == [
        ("encoder.layer.0.attention.self.query", "linear"),
        ("encoder.layer.0.attention.self.key", "linear"),
        ("encoder.layer.0.attention.self.value", "linear"),
        ("encoder.layer.0.attention.self.scores", "prune_point"),
        ("encoder.layer.0.attention.self.probs", "prune_point"),
        ("encoder.layer.0.attention.self.context", "prune_point"),
        ("encoder.layer.0.attention.output.dense", "linear"),
        ("encoder.layer.0.intermediate.dense", "linear"),
        ("encoder.layer.0.output.dense", "linear"),
    ]
    assert paths[-1] == ("pooler.dense", "linear")
    assert len(paths) == 2 * 9 + 1
    classifier = prune_points("bert-tiny", classifier=True)
    assert all(p.path.startswith("bert.") for p in classifier)


def test_prune_points_of_heterogeneous_layers() -> None:
    points = {p.path for p in prune_points("flexibert-mix-a")}
    # layer 1 has only dft/dct heads: no query/key/scores/probs, but value and context
    assert "encoder.layer.1.attention.self.query" not in points
    assert "encoder.layer.1.attention.self.scores" not in points
    assert "encoder.layer.1.attention.self.value" in points
    assert "encoder.layer.1.attention.self.context" in points
    points_b = {p.path for p in prune_points("flexibert-mix-b")}
    assert "encoder.layer.1.input_projection" in points_b  # 128 -> 256
    assert "encoder.layer.3.input_projection" in points_b  # 256 -> 128
    assert "encoder.layer.2.input_projection" not in points_b
    assert "encoder.layer.3.intermediate.dense_2" in points_b  # three stacks


@st.composite
def layer_strategy(draw: st.DrawFn) -> LayerSpec:
    hidden = draw(st.sampled_from(DESIGN_SPACE["hidden"]))
    heads = draw(st.sampled_from([n for n in DESIGN_SPACE["heads"] if hidden % n == 0]))
    types = draw(st.lists(st.sampled_from(HEAD_TYPES), min_size=heads, max_size=heads))
    ff = draw(st.lists(st.sampled_from(DESIGN_SPACE["ff_width"]), min_size=1, max_size=3))
    return LayerSpec(hidden, tuple(types), tuple(ff))


@settings(max_examples=60, deadline=None)
@given(st.lists(layer_strategy(), min_size=1, max_size=12))
def test_text_form_round_trips(layers: list[LayerSpec]) -> None:
    config = EncoderConfig(tuple(layers))
    text = format_description(config)
    assert parse_description(text, check_space=False) == config
    assert format_description(parse_description(text, check_space=False)) == text
