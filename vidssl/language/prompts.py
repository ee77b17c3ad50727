"""The attribute prompt (versioned) and what is done with an LLM's answer.

Template ``v1`` asks, per action class, for short visual attributes covering three aspects:
the **objects** involved, the **body motion**, and the **scene** -- the structure of the curated
files (``vidssl/resources/attributes/*.json``, ``"template_version": "v1"``), so generated and
curated files are interchangeable. The answer must be a JSON list of strings; anything else is
a :class:`BadOutput` (the caller retries, then reports the class).

After parsing: :func:`normalise_phrase` (whitespace, quotes, bullets, trailing full stop, lower
case first letter), :func:`dedupe` (case-insensitive, order kept), :func:`truncate_to_clip`
(drop trailing words until the phrase fits CLIP's 77-token context).
"""

from __future__ import annotations

import json
import re
from typing import Callable

TEMPLATE_VERSION = "v1"
MIN_ATTRIBUTES, MAX_ATTRIBUTES = 4, 6
MAX_WORDS = 16              # a phrase longer than this is not a "short attribute": bad output
MAX_RESPONSE_CHARS = 4000   # longer answers are rambling, not a list: bad output

SYSTEM_PROMPT_V1 = (
    "You describe what human actions look like in videos. You answer with a JSON list of "
    "strings and nothing else."
)
USER_PROMPT_V1 = (
    "Action class: \"{action}\" (from the {vocabulary} action recognition dataset).\n"
    "Write {lo} to {hi} short visual attributes of this action, each a noun phrase of at most "
    "{words} words, covering three aspects: the objects involved, the body motion, and the "
    "scene or place where it happens. At least one attribute per aspect.\n"
    "Answer with a JSON list of strings only, for example "
    "[\"a wooden bat\", \"arms swinging across the body\", \"a grass field\"]."
)


class BadOutput(ValueError):
    """An LLM answer that cannot be used (non-JSON, empty, too long); one-line reason."""


def humanize(name: str) -> str:
    """Class name as words: ``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``,
    ``"brush_hair"`` -> ``"brush hair"``, ``"playing guitar"`` unchanged."""
    text = name.replace("_", " ").replace("-", " ")
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return " ".join(text.split()).lower()


def build_messages(class_name: str, vocabulary: str = "action") -> list[dict[str, str]]:
    """Chat messages of template ``v1`` for one class (system + user)."""
    user = USER_PROMPT_V1.format(action=humanize(class_name), vocabulary=vocabulary, lo=MIN_ATTRIBUTES,
                                 hi=MAX_ATTRIBUTES, words=MAX_WORDS)
    return [{"role": "system", "content": SYSTEM_PROMPT_V1}, {"role": "user", "content": user}]


def _json_list(text: str) -> list:
    """The first JSON list in ``text`` (code fences and chatter around it allowed)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    candidates = [fenced.group(1)] if fenced else []
    start, end = text.find("["), text.rfind("]")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    candidates.append(text)
    for c in candidates:
        try:
            value = json.loads(c.strip())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):   # {"attributes": [...]} is accepted too
            lists = [v for v in value.values() if isinstance(v, list)]
            value = lists[0] if len(lists) == 1 else value
        if isinstance(value, list):
            return value
    raise BadOutput("not a JSON list of strings")


def normalise_phrase(phrase: str) -> str:
    """Collapse whitespace, strip quotes / bullets / numbering and a trailing full stop."""
    text = " ".join(str(phrase).split()).strip(" \"'`")
    text = re.sub(r"^(?:[-*\u2022]|\d+[.)])\s*", "", text)
    text = text.strip(" \"'`").rstrip(".;,").strip(" \"'`")
    if text[:1].isupper() and not text[1:2].isupper():   # "A red ball" -> "a red ball", keep "TV"
        text = text[0].lower() + text[1:]
    return text


def dedupe(phrases: list[str]) -> list[str]:
    """Drop repeats (case-insensitive), keep the first occurrence's order."""
    seen, out = set(), []
    for p in phrases:
        key = p.casefold()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def truncate_to_clip(phrase: str, count_tokens: Callable[[str], int] | None = None, limit: int = 77) -> str:
    """Drop trailing words until ``count_tokens(phrase) <= limit`` (CLIP's context, start and end
    tokens included). ``count_tokens`` defaults to CLIP's BPE tokenizer."""
    if count_tokens is None:
        from vidssl.language.clip_models import count_clip_tokens as count_tokens
    words = phrase.split()
    while len(words) > 1 and count_tokens(" ".join(words)) > limit:
        words.pop()
    text = " ".join(words)
    while count_tokens(text) > limit:   # one enormous "word"
        text = text[: max(1, len(text) * 3 // 4)]
    return text


def parse_attributes(text: str, *, max_words: int = MAX_WORDS, max_attributes: int = MAX_ATTRIBUTES,
                     count_tokens: Callable[[str], int] | None = None) -> list[str]:
    """An LLM answer -> clean attribute phrases (normalised, deduplicated, fit 77 CLIP tokens).

    Raises:
        BadOutput: no JSON list, an entry that is not a string, no usable phrase, an answer over
            ``MAX_RESPONSE_CHARS`` or a phrase over ``max_words`` words ("too long").
    """
    if not isinstance(text, str) or not text.strip():
        raise BadOutput("empty answer")
    if len(text) > MAX_RESPONSE_CHARS:
        raise BadOutput(f"answer too long ({len(text)} characters)")
    items = _json_list(text)
    if not all(isinstance(i, str) for i in items):
        raise BadOutput("the JSON list holds non-string entries")
    phrases = dedupe([p for p in (normalise_phrase(i) for i in items) if p])
    if not phrases:
        raise BadOutput("no attribute in the answer")
    long = [p for p in phrases if len(p.split()) > max_words]
    if long:
        raise BadOutput(f"attribute too long ({len(long[0].split())} words > {max_words}): {long[0][:60]!r}")
    return [truncate_to_clip(p, count_tokens) for p in phrases[:max_attributes]]
