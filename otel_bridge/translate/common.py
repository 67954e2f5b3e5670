"""What both translations share: the W&B run a span belongs to, and reading span attributes.

The Weave evaluation names the W&B Models run of the same eval, so ``run_key`` lives here and
neither translation imports the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord

_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def run_key(record: SpanRecord) -> str | None:
    """The W&B run id a span belongs to: its eval set if any, else its Inspect run."""
    return wandb_run_id(record.attr(c.EVAL_SET_ID), record.attr(c.RUN_ID))


def wandb_run_id(eval_set_id: Any, run_id: Any) -> str | None:
    """The W&B Models run id of an eval set (else of an Inspect run): the hook names it on its
    spans before the run exists, so the rule lives in one place."""
    raw = eval_set_id or run_id
    if not raw:
        return None
    return _BAD_ID_CHARS.sub("-", str(raw))[:128]


def decode_json(value: Any) -> Any:
    """A JSON object or array attribute, decoded (anything else, or invalid JSON, as it is)."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def as_dict(value: Any) -> dict[str, Any]:
    """A mapping as a dict; anything else as an empty one."""
    return dict(value) if isinstance(value, Mapping) else {}


def drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` without its None values, at every level of nesting."""
    return {k: (drop_none(v) if isinstance(v, Mapping) else v) for k, v in d.items() if v is not None}


def present_attrs(
    span: SpanRecord, names: Iterable[tuple[str, str]], read: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """``{name: value}`` for each ``(name, attribute)`` the span has, read by ``read`` (default as is)."""
    read = read or span.attr
    return {name: read(key) for name, key in names if span.attr(key) is not None}


class RecentKeys:
    """A set that remembers only its newest ``limit`` keys (FIFO): idempotence in bounded memory.

    What both translators keep of what has ended (spans, evals, runs): a replay of recent spans
    is recognised; one older than ``limit`` entries is the backend's to dedupe (every sink is
    idempotent against its backend).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keys: dict[Any, None] = {}

    def add(self, key: Any) -> None:
        self._keys[key] = None
        if len(self._keys) > self.limit:
            del self._keys[next(iter(self._keys))]

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)
