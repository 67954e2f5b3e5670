"""Which Weave writes are still due, which are written but unconfirmed, and how to confirm them.

weave's client queues calls and uploads them in the background; after its own retries it drops a
batch and only logs it. So "queued" is not "delivered": the sink keeps every write until the
server, read back, holds it — the evaluation call, each prediction row (ended), each row's score
feedback and the end of the evaluation. A write the server does not hold is written again through
the sink's adopt path (which skips rows the server has and deletes half-written ones), so
confirming never duplicates; a score feedback missing on a row the server holds is sent again as
it was (same call refs), and only then — after weave's queue was flushed and the grace passed.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from otel_bridge import _upstream as upstream
from otel_bridge.sinks.weave_calls import PREDICT_AND_SCORE_OP, inspect_attr
from otel_bridge.translate.weave import FinishEvaluation, LogPrediction, StartEvaluation, Write

#: Reconnecting after a failed connection waits this long at first, doubling up to the maximum.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
#: How many row keys one read-back query asks for.
CONFIRM_BATCH = 200
#: Feedback rows one read-back page holds.
FEEDBACK_PAGE = 1000


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
    #: row key -> the feedback create requests sent with that row, not yet read back
    feedback: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


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

    def sent_feedback(self, eval_id: str, key: str, request: dict[str, Any]) -> None:
        """A score feedback written with row ``key``: unconfirmed until read back."""
        start = self._starts.get(eval_id)
        if start is not None:
            self._written.setdefault(eval_id, _Written(start)).feedback.setdefault(key, []).append(request)

    @property
    def settled(self) -> bool:
        return not self.due and not self._written

    def unconfirmed(self) -> list[str]:
        return list(self._written)

    def pending_rows(self) -> int:
        """Rows not confirmed yet, whole (a held row whose feedback is not read back counts)."""
        return sum(len(w.rows.keys() | w.feedback.keys()) for w in self._written.values()) + sum(
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
            # rows confirmed earlier went with it: their feedback has no call left to sit on
            entry.feedback = {k: v for k, v in entry.feedback.items() if k in entry.rows}
            return False
        entry.started_unconfirmed = False
        keys = list(entry.rows)
        for i in range(0, len(keys), CONFIRM_BATCH):
            held = _ended_rows(client, call_id, keys[i : i + CONFIRM_BATCH])
            for key in held:
                entry.rows.pop(key, None)
        if entry.finish is not None and call.ended_at is not None:
            entry.finish = None
        _confirm_feedback(client, entry)
        if not entry.rows and entry.finish is None and not entry.feedback:
            del self._written[eval_id]
            return True
        return False

    def release_held(self, client: Any, open_calls: dict[str, str]) -> list[str]:
        """Forget the rows of evaluations still going (eval id → evaluate call id) that the
        server, read back, holds: else a long evaluation's rows all stay in memory until it ends
        (O(samples): 3 GB at 100k). Nothing is written again here: ``flush`` decides that. The
        evaluations now wholly confirmed."""
        confirmed = []
        for eval_id, call_id in open_calls.items():
            if eval_id in self._written:
                with contextlib.suppress(Exception):  # unreachable: the next flush says, and retries
                    if self.confirm(client, eval_id, call_id):
                        confirmed.append(eval_id)
        return confirmed

    def rewrite(self, eval_id: str, client: Any) -> None:
        """Queue again what the server lacks, behind a fresh start (the sink re-adopts the evaluation).

        A held row's lost feedback is sent again now, as it was (the refs name calls the server
        holds) and stays unconfirmed; a row written again writes its feedback again itself. Weave
        stores a feedback sent twice twice, so nothing is resent while weave's client still holds
        writes (one of them may be that feedback): the next grace tries again.
        """
        entry = self._written.pop(eval_id, None)
        if entry is None:
            return
        resent = {k: v for k, v in entry.feedback.items() if k not in entry.rows}
        if resent and not client.num_outstanding_jobs:
            for request in (r for requests in resent.values() for r in requests):
                upstream.send_feedback(client, request)
        if resent:
            self._written[eval_id] = _Written(entry.start, feedback=resent)
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


def _feedback_key(f: Any) -> tuple[str, str, str]:
    get = f.get if isinstance(f, dict) else lambda k: getattr(f, k, None)
    return str(get("weave_ref")), str(get("feedback_type")), str(get("call_ref"))


def _confirm_feedback(client: Any, entry: _Written) -> None:
    """Forget the feedback of held rows that the server holds (queried by the rows' predict refs)."""
    waiting = {k: v for k, v in entry.feedback.items() if k not in entry.rows}
    refs = sorted({r["weave_ref"] for requests in waiting.values() for r in requests})
    held: set[tuple[str, str, str]] = set()
    for i in range(0, len(refs), CONFIRM_BATCH):
        batch = [{"$literal": r} for r in refs[i : i + CONFIRM_BATCH]]
        query = {"$expr": {"$in": [{"$getField": "weave_ref"}, batch]}}
        offset = 0
        while True:
            page = list(client.get_feedback(query=query, offset=offset, limit=FEEDBACK_PAGE))
            held.update(_feedback_key(f) for f in page)
            if len(page) < FEEDBACK_PAGE:
                break
            offset += FEEDBACK_PAGE
    for key, requests in waiting.items():
        missing = [r for r in requests if _feedback_key(r) not in held]
        if missing:
            entry.feedback[key] = missing
        else:
            del entry.feedback[key]
