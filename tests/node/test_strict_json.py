"""The strict JSON reader's nesting limit: brackets inside strings (escaped quotes, backslashes,
adjacent strings) never count, real nesting counts exactly, at any depth around the limit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.strict_json import JsonInputError, JsonLimits, loads

LIMITS = JsonLimits(max_depth=8)
# strings that look like brackets, quotes and escapes to a careless scanner
TRICKY = st.text(alphabet='[]{}"\\ :,ab', max_size=6)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _nested(draw: st.DrawFn, depth: int) -> object:
    if depth == 0:
        return draw(TRICKY)
    inner = [_nested(draw, depth - 1)] + draw(st.lists(TRICKY, max_size=2))
    if draw(st.booleans()):
        return inner
    return {draw(TRICKY): inner[0], **{f"k{i}{s}": s for i, s in enumerate(inner[1:])}}


@st.composite
def documents(draw: st.DrawFn) -> object:
    return [_nested(draw, draw(st.integers(0, 11))) for _ in range(draw(st.integers(1, 3)))]


@settings(max_examples=300, deadline=None)
@given(documents())
def test_a_document_is_refused_exactly_when_it_nests_deeper_than_the_limit(document: object) -> None:
    text = json.dumps(document).encode()
    if _depth(document) <= LIMITS.max_depth:
        assert loads(text, LIMITS) == document
    else:
        with pytest.raises(JsonInputError) as refused:
            loads(text, LIMITS)
        assert refused.value.code == "too_deep"


@pytest.mark.parametrize("text", [
    b'["[", "]"]',  # a closing quote and the next opening one side by side once the rest is gone
    b'["\\"[[[[[[[[[[", "]]]]]]]]]]\\\\"]',
    b'{"[[[[[[[[[[": "{{{{{{{{{{{{", "\\\\": "\\"]]]]]]]]]]]"}',
])
def test_brackets_inside_strings_never_count(text: bytes) -> None:
    assert loads(text, LIMITS) == json.loads(text)
