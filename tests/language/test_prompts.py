"""Template v1 and what is done with an LLM's answer: parse, normalise, dedupe, truncate."""

from __future__ import annotations

import json

import pytest

from vidssl.language.clip_models import count_clip_tokens
from vidssl.language.prompts import (
    TEMPLATE_VERSION,
    BadOutput,
    build_messages,
    dedupe,
    humanize,
    normalise_phrase,
    parse_attributes,
    truncate_to_clip,
)


def test_template_v1_asks_for_three_aspects_as_json():
    assert TEMPLATE_VERSION == "v1"
    system, user = build_messages("ApplyEyeMakeup", "ucf101")
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    assert '"apply eye makeup"' in text and "ucf101" in text
    for aspect in ("objects", "body motion", "scene"):
        assert aspect in text
    assert "JSON list" in text


@pytest.mark.parametrize("name,words", [("ApplyEyeMakeup", "apply eye makeup"), ("brush_hair", "brush hair"),
                                        ("playing guitar", "playing guitar"), ("YoYo", "yo yo"),
                                        ("HandstandPushups", "handstand pushups")])
def test_humanize(name, words):
    assert humanize(name) == words


def test_parse_good_answers_in_several_wrappings():
    expected = ["a red ball", "arms swinging", "a gym"]
    raw = ["A red ball.", "a red ball", "  - Arms   swinging ", "a gym"]
    for text in (json.dumps(raw), f"Sure! Here you go:\n```json\n{json.dumps(raw)}\n```",
                 json.dumps({"attributes": raw}), "Attributes: " + json.dumps(raw) + " Hope it helps."):
        assert parse_attributes(text) == expected


@pytest.mark.parametrize("text,reason", [
    ("", "empty"), ("   ", "empty"), ("I cannot help with that.", "not a JSON list"),
    ("[1, 2, 3]", "non-string"), ("[]", "no attribute"), ('["", "  "]', "no attribute"),
    (json.dumps(["a " * 30]), "too long"), ("[" + ",".join(['"x"'] * 2000) + "]", "too long"),
])
def test_bad_answers_are_rejected_with_a_reason(text, reason):
    with pytest.raises(BadOutput, match=reason):
        parse_attributes(text)


def test_normalise_and_dedupe():
    assert normalise_phrase('  "1. The  TV remote." ') == "the TV remote"
    assert normalise_phrase("TV screen") == "TV screen"   # acronyms keep their case
    assert dedupe(["a Ball", "a ball", "b", "A BALL"]) == ["a Ball", "b"]


def test_truncation_fits_clip_context():
    long = " ".join(["extraordinarily"] * 60)
    assert count_clip_tokens(long) > 77
    cut = truncate_to_clip(long)
    assert count_clip_tokens(cut) <= 77 and long.startswith(cut) and len(cut.split()) > 10
    assert truncate_to_clip("a red ball") == "a red ball"
    # parse applies it: a custom counter makes a short phrase "too long" for CLIP
    assert parse_attributes('["one two three four"]', count_tokens=lambda s: len(s.split()) + 2 + 74) == ["one"]
