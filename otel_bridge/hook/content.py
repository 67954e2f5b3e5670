"""JSON encoding of content with a byte budget that keeps the JSON valid."""

from __future__ import annotations

import json
from typing import Any

_MARK = "…[truncated {n} chars]"


def to_jsonable(value: Any) -> Any:
    """Turn pydantic models and other objects into plain JSON values."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return to_jsonable(dump(mode="json", exclude_none=True))
        except Exception:
            return str(value)
    return str(value)


# one encoder for every call: json.dumps with options builds a new one each time (hot path)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _cap_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + _MARK.format(n=len(value) - cap)
    if isinstance(value, dict):
        return {k: _cap_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list):
        return [_cap_strings(v, cap) for v in value]
    return value


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _valid_unicode(text: str) -> str:
    """Lone surrogates (from broken JSON or bytes) cannot be encoded: they become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def bounded_json(value: Any, max_bytes: int) -> tuple[str, bool]:
    """Serialise ``value`` to at most ``max_bytes`` UTF-8 bytes; says whether it cut anything.

    A string stays the text itself (cut at a character boundary); anything else is valid JSON.
    Long strings are shortened first (every leaf to the same cap, largest cap that fits), then
    list items are dropped from the middle, and as a last resort the whole document becomes one
    JSON string, cut until its escaped form fits (escaping can make text up to 6x longer).
    """
    if isinstance(value, str):
        value = _valid_unicode(value)
        if _size(value) <= max_bytes:
            return value, False
        return _cut_text(value, max_bytes), True
    text = dumps(value)
    clean = _valid_unicode(text)
    if clean is not text:
        text, value = clean, json.loads(clean)
    if _size(text) <= max_bytes:
        return text, False
    cap = max_bytes // 2
    while cap >= 32:
        candidate = dumps(_cap_strings(value, cap))
        if _size(candidate) <= max_bytes:
            return candidate, True
        cap //= 2
    if isinstance(value, list) and len(value) > 2:
        thinned = _ends_of(_cap_strings(value, 32), max_bytes)
        if thinned is not None:
            return thinned, True
    budget = max_bytes - 2
    while budget > 0:
        candidate = dumps(_cut_text(text, budget))
        over = _size(candidate) - max_bytes
        if over <= 0:
            return candidate, True
        budget -= over
    return '""', True


def _ends_of(items: list[Any], max_bytes: int) -> str | None:
    """As many items from both ends as fit, around a ``{"truncated": true}`` (linear in items)."""
    sizes = [_size(dumps(item)) + 1 for item in items]  # each with its comma
    budget = max_bytes - 2 - len(dumps({"truncated": True}))
    head, tail = 0, len(items)
    while head < tail:
        side = head if head <= len(items) - tail else tail - 1
        if sizes[side] > budget:
            break
        budget -= sizes[side]
        if side == head:
            head += 1
        else:
            tail -= 1
    candidate = dumps([*items[:head], {"truncated": True}, *items[tail:]])
    return candidate if _size(candidate) <= max_bytes else None


def bounded_json_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """``bounded_json`` of a value given as its JSON text (decoded only when it must be cut)."""
    text = _valid_unicode(text)
    if len(text) * 4 <= max_bytes or _size(text) <= max_bytes:
        return text, False
    return bounded_json(json.loads(text), max_bytes)


def _cut_text(text: str, max_bytes: int) -> str:
    budget = max(0, max_bytes - 40)
    cut = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut + _MARK.format(n=len(text) - len(cut))
