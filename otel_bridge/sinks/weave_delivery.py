"""Which Weave writes are still due, which are written but unconfirmed, and how to confirm them.

weave's client queues calls and uploads them in the background; after its own retries it drops a
batch and only logs it. So "queued" is not "delivered": the sink keeps every write until the
server, read back, holds it — the evaluation call, each prediction row (ended) and the end of the
evaluation. A write the server does not hold is written again through the sink's adopt path
(which skips rows the server has and deletes half-written ones), so confirming never duplicates.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from otel_bridge.sinks.weave_calls import PREDICT_AND_SCORE_OP, inspect_attr
from otel_bridge.translate.weave import FinishEvaluation, LogPrediction, StartEvaluation, Write

#: Reconnecting after a failed connection waits this long at first, doubling up to the maximum.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
#: How many row keys one read-back query asks for.
CONFIRM_BATCH = 200


@dataclass
class Backoff:
    """When the next connection attempt may be made (bounded exponential backoff)."""

    delay_s: float = BACKOFF_FIRST_S
    not_before: float = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.not_before

    def failed(self) -> None:
        self.not_before = time.monotonic() + self.delay_s
        self.delay_s = min(self.delay_s * 2, BACKOFF_MAX_S)

    def succeeded(self) -> None:
        self.delay_s, self.not_before = BACKOFF_FIRST_S, 0.0


@dataclass
class _Written:
    """An evaluation's writes that the server has not been seen to hold yet."""

    start: StartEvaluation
    rows: dict[str, LogPrediction] = field(default_factory=dict)
    finish: FinishEvaluation | None = None
    started_unconfirmed: bool = True


class Ledger:
    """Writes due (not yet applied) and written-but-unconfirmed, per evaluation."""

    def __init__(self) -> None:
        self.due: deque[Write] = deque()
        self._starts: dict[str, StartEvaluation] = {}
        self._written: dict[str, _Written] = {}

    def add(self, writes: Iterable[Write]) -> None:
        for w in writes:
            if isinstance(w, StartEvaluation):
                self._starts.setdefault(w.eval_id, w)
            self.due.append(w)

    def applied(self, w: Write) -> None:
        """``w`` was handed to weave's client: unconfirmed until read back."""
        start = self._starts.get(w.eval_id)
        if start is None:
            return
        entry = self._written.setdefault(w.eval_id, _Written(start))
        if isinstance(w, LogPrediction):
            entry.rows[w.key] = w
        elif isinstance(w, FinishEvaluation):
            entry.finish = w

    @property
    def settled(self) -> bool:
        return not self.due and not self._written

    def unconfirmed(self) -> list[str]:
        return list(self._written)

    def pending_rows(self) -> int:
        return sum(len(w.rows) for w in self._written.values()) + sum(
            1 for w in self.due if isinstance(w, LogPrediction)
        )

    def confirm(self, client: Any, eval_id: str, call_id: str | None) -> bool:
        """Read the evaluation back; forget what the server holds. True when it holds everything."""
        entry = self._written.get(eval_id)
        if entry is None:
            return True
        if call_id is None:
            return False
        try:
            call = client.get_call(call_id, columns=["id", "ended_at", "attributes"])
        except ValueError:  # "Call not found": the server lost it (connection errors propagate)
            return False
        entry.started_unconfirmed = False
        keys = list(entry.rows)
        for i in range(0, len(keys), CONFIRM_BATCH):
            held = _ended_rows(client, call_id, keys[i : i + CONFIRM_BATCH])
            for key in held:
                entry.rows.pop(key, None)
        if entry.finish is not None and call.ended_at is not None:
            entry.finish = None
        if not entry.rows and entry.finish is None:
            del self._written[eval_id]
            return True
        return False

    def rewrite(self, eval_id: str) -> None:
        """Queue again what the server lacks, behind a fresh start (the sink re-adopts the evaluation)."""
        entry = self._written.pop(eval_id, None)
        if entry is None:
            return
        again: list[Write] = [entry.start, *entry.rows.values()]
        if entry.finish is not None:
            again.append(entry.finish)
        self.due.extendleft(reversed(again))

    def forget(self, eval_id: str) -> None:
        """Drop everything kept for an evaluation (it ended and the server holds all of it)."""
        self._written.pop(eval_id, None)
        self._starts.pop(eval_id, None)


def _ended_rows(client: Any, call_id: str, keys: list[str]) -> set[str]:
    """Which of these prediction rows the server holds, ended (a started-only row is not held)."""
    query = {
        "$expr": {
            "$in": [{"$getField": "attributes.inspect.key"}, [{"$literal": k} for k in keys]],
        }
    }
    held: set[str] = set()
    for child in client.get_calls(
        filter={"parent_ids": [call_id]}, query=query, columns=["id", "op_name", "ended_at", "attributes"]
    ):
        key = inspect_attr(child, "key")
        if key is not None and child.ended_at is not None and PREDICT_AND_SCORE_OP in str(child.op_name):
            held.add(str(key))
    return held
