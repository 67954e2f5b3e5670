"""The redactor's shortcuts change no output, and planted secrets never pass them.

The hot path skips work: a containment gate before any per-pattern search, fewer needles for
short and alphanumeric texts, a set of strings already found clean, exact-type fast paths in the
edge pass and in ``structure``. Two oracles, neither of them the shortcuts:

- the same rules run everywhere with every shortcut removed (each cut search on every text, no
  clean set, plain ``isinstance`` walks), written out below: a shortcut that hides a cut fails;
- secrets planted in generated text (secret environment values, tokens in their providers'
  documented shapes, ``key=value`` pairs): none of them may survive, whatever surrounds them.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import Status, StatusCode

from otel_bridge.redact import REDACTED, Redactor, Scrubber, is_secret_key
from otel_bridge.secret_text import apply_cuts, key_cuts

ENV = {"MY_API_KEY": "abcd1234EFGH", "SVC_TOKEN": "tok-9f8e7d6c5b", "DB_PASSWORD": 'pa"ss\\wörd99'}
PATTERNS = (r"q[0-9]{3}z", r"^ABC")
# pieces that sit at the edges of the rules: anchors, near-miss words, separators, quotes, the
# secret values and their prefixes, characters whose lower case differs in length or shape
PIECES = (
    "sk-", "sk-ant-", "AIza", "hf_", "ghp_", "gho_", "github_pat_", "AKIA", "ASIA", "eyJ", "Bearer ",
    "bearer ", "BEARER ", "earer", "://", "u:pw@h", "api_key", "API-KEY", "token", "tokens",
    "tokenizer", "token_count", "auth", "author", "authorization", "password", "secret", "cookie",
    "=", ":", ": ", '"', "'", '\\"', " ", ",", ";", "}", ".", "-", "_", "/", "\n", "é", "İ", "K",
    "ſ", "Σ", "q123z", "ABC", "\x00", *ENV.values(), *(v[:5] for v in ENV.values()),
)  # fmt: skip
PIECE = st.one_of(st.sampled_from(PIECES), st.text(string.ascii_letters + string.digits, max_size=40))
TEXT = st.lists(PIECE, max_size=10).map("".join)


def full_search(redactor: Redactor, value: str) -> str:
    """The rules with no shortcut: every cut search on every text, then the user's patterns."""
    cuts: list[tuple[int, int, str]] = []
    if len(value) >= 6:
        redactor._needle_cuts(value, cuts)
        key_cuts(value, cuts)
    value = apply_cuts(value, cuts) if cuts else value
    user = redactor._user
    return user.sub("[REDACTED:pattern]", value) if user is not None else value


def full_structure(redactor: Redactor, value: Any, secret: bool = False) -> Any:
    if isinstance(value, Mapping):
        return {
            full_search(redactor, str(k)): full_structure(redactor, v, secret or is_secret_key(str(k)))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [full_structure(redactor, v, secret) for v in value]
    if isinstance(value, str):
        return REDACTED if secret and value else full_search(redactor, value)
    return value


def _redactor(patterns: bool) -> Redactor:
    return Redactor(ENV, extra=("extra-secret-1",), patterns=PATTERNS if patterns else ())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=8), patterns=st.booleans())
def test_text_matches_the_full_search(texts: list[str], patterns: bool) -> None:
    """Each text alone, and the same texts in a row (the clean set), as the full search says."""
    for text in texts:
        assert _redactor(patterns).text(text) == full_search(_redactor(patterns), text)
    redactor = _redactor(patterns)
    outputs = [redactor.text(text) for text in texts]
    assert outputs == [full_search(redactor, text) for text in texts]


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner),
        st.dictionaries(TEXT | st.sampled_from(PIECES), inner, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSONISH, patterns=st.booleans())
def test_structure_matches_the_full_walk(value: Any, patterns: bool) -> None:
    assert _redactor(patterns).structure(value) == full_structure(_redactor(patterns), value)


class _Event:
    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes


SCALAR = st.one_of(TEXT, st.integers(), st.floats(allow_nan=False), st.booleans())
ATTRS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "inspect.span.id", "gen_ai.input.messages", "api_key"]),
    st.one_of(SCALAR, st.lists(TEXT, max_size=3), st.tuples(TEXT, st.integers())),
    max_size=6,
)


def _as_lists(attrs: dict[str, Any]) -> dict[str, Any]:
    """Sequences compared by their items: a tuple left unchanged and a list are the same attribute."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def _full_attrs(redactor: Redactor, attrs: dict[str, Any]) -> dict[str, Any]:
    out = dict(attrs)
    for key, value in attrs.items():
        if type(value) is str:
            out[key] = full_search(redactor, value)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            out[key] = [full_search(redactor, v) if isinstance(v, str) else v for v in value]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spans=st.lists(st.tuples(ATTRS, ATTRS, st.none() | TEXT), min_size=1, max_size=4))
def test_the_edge_pass_matches_the_full_search(
    spans: list[tuple[dict[str, Any], dict[str, Any], str | None]],
) -> None:
    """Several spans through one Scrubber (content on): attributes, events and error statuses."""
    scrubber = Scrubber(_redactor(False), True)
    reference = _redactor(False)
    for attrs, event, error in spans:
        status = Status() if error is None else Status(StatusCode.ERROR, error)
        got, events = dict(attrs), [_Event(dict(event))]
        ended = scrubber.span(got, events, status)
        assert _as_lists(got) == _full_attrs(reference, attrs)
        assert _as_lists(events[0].attributes) == _full_attrs(reference, event)
        assert ended.description == (None if error is None else full_search(reference, error))


# tokens in their providers' documented shapes, and the values of secret-named variables
TOKENS = st.one_of(
    st.text(string.ascii_letters + string.digits, min_size=20, max_size=40).map(lambda s: "sk-proj-" + s),
    st.text(string.ascii_letters + string.digits, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(string.ascii_letters + string.digits, min_size=35, max_size=35).map(lambda s: "AIza" + s),
    st.sampled_from(list(ENV.values())),
)
SEPARATORS = st.sampled_from(["", " ", "\n", ", ", '"', "(", "\t"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=TEXT, token=TOKENS, after=TEXT, left=SEPARATORS, right=SEPARATORS, escaped=st.booleans())
def test_planted_secrets_never_pass(
    before: str, token: str, after: str, left: str, right: str, escaped: bool
) -> None:
    """A token alone (an id-like alphanumeric text too), between texts, or inside JSON text (as the
    bridge writes it: non-ASCII kept)."""
    alone = token
    between = f"{before} {left}{token}{right} {after}"
    texts = [alone, between, json.dumps({"content": between}, ensure_ascii=False) if escaped else between]
    scrubber = Scrubber(_redactor(False), True)
    attrs: dict[str, Any] = {f"k{i}": text for i, text in enumerate(texts)}
    scrubber.span(attrs, [], Status())
    for text in attrs.values():
        assert token not in text
        assert json.dumps(token, ensure_ascii=False)[1:-1] not in text


@pytest.mark.parametrize("before", ["\n", "\t", "\r", "\x1b", "\u2028"])
@pytest.mark.parametrize("ascii_only", [False, True])
@pytest.mark.parametrize("token", ["ghp_" + "a" * 36, "sk-proj-" + "b" * 24, "Bearer abc123def456ghi789"])
def test_a_token_after_an_escaped_character_in_json_text(before: str, ascii_only: bool, token: str) -> None:
    """Content is redacted as its JSON text, where a newline before a token is written ``\\n`` (a
    control character ``\\u001b``): the token still starts a word there (found leaking by the
    planted test above, which now plants newlines and tabs inside JSON too)."""
    text = Redactor({}).text(json.dumps({"content": f"line one{before}{token}"}, ensure_ascii=ascii_only))
    secret = token.split()[-1]
    assert secret not in text
    assert "[REDACTED:" in text
