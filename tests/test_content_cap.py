"""The content cap is a cap: every content attribute fits INSPECT_OTEL_CONTENT_MAX_BYTES in UTF-8
bytes and is valid JSON (a string value: the text itself, cut at a character boundary), for any
input. The oracle is the byte length and ``json.loads``, not the encoder's own bookkeeping."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_bridge.hook.content import bounded_json

# every kind of text: non-ASCII, emoji, control characters, lone surrogates (broken input)
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=3000)
KEYS = st.one_of(TEXT, st.text(min_size=500, max_size=4000))  # huge keys too
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
JSONISH = st.recursive(
    LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=40), st.dictionaries(KEYS, inner, max_size=60)),
    max_leaves=200,
)


def _deep(depth: int) -> Any:
    value: Any = "x" * 100
    for i in range(depth):
        value = {f"level{i}": [value, "é" * 50]}
    return value


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _check(value: Any, cap: int) -> None:
    text, cut = bounded_json(value, cap)
    size = len(text.encode("utf-8"))  # raises on a lone surrogate: not exportable
    assert size <= cap, (size, cap)
    if not isinstance(value, str):
        json.loads(text)
    if not cut and _encodable(value):  # nothing cut: nothing changed either
        assert text == value if isinstance(value, str) else json.loads(text) == json.loads(json.dumps(value))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(value=JSONISH, cap=st.integers(min_value=256, max_value=40_000))
def test_any_value_fits_the_cap_as_valid_json(value: Any, cap: int) -> None:
    _check(value, cap)


def test_the_shapes_that_overshot_before() -> None:
    """Key-heavy dicts (measured 38,132 and 42,421 bytes for a 32,768-byte cap), control
    characters (6 bytes each once escaped), emoji, deep nesting."""
    cap = 32_768
    cases: list[Any] = [
        {f"key-{i}-" + "k" * 40: i for i in range(2000)},
        {"k" * 40_000: 1},
        {str(i): "\x00\x01\x1f" * 200 for i in range(200)},
        ["😀" * 5000, "\u2028" * 5000],
        "\x00" * 100_000,
        "😀" * 20_000,
        _deep(200),
        [{"a": i} for i in range(20_000)],
    ]
    for value in cases:
        _check(value, cap)
