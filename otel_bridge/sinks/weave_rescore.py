"""A re-scored log over an evaluation Weave already holds: a new revision that replaces the old.

After ``inspect score LOG`` (a new scorer, or a scorer run again), the log's rows carry other
``output.scores`` and the task other metrics (the evaluate call's output). Weave cannot change a
call once it has ended: the public API renames a call and nothing more (``call_update`` takes a
display name), and a second end of the same call id is undefined on the production server
(ClickHouse merges call parts with ``any``). So the re-scored evaluation is written as a new
revision — a new ``Evaluation.evaluate`` call for the same eval id (``attributes.inspect.revision``
one higher, ``supersedes`` naming the old call), every row with every score and the feedback the
SDK writes for each, Inspect's new metrics — and once it has ended the old revision is deleted
(the call with all its descendants, and its score feedback): one evaluation per task × model, one
row per sample, as live.

Detection reads the server, never this process's memory: adopting an *ended* evaluation loads
each row's scores digest and scoring time (``attributes.inspect.scored_ns``, Inspect's score event
time) and the evaluate output. While the input's rows match, they are skipped (and spooled to a
temporary file, not held in memory, in case a later row differs); the first row whose scores
differ, or an end whose metrics differ, starts the new revision, which takes the spooled rows
first — but only when the input was scored later than the server's rows: syncing the older live
span file after a re-score changes nothing. An unchanged log therefore writes nothing, and
importing the same re-scored log twice adds nothing the second time (the new revision matches).
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from otel_bridge import _upstream as upstream
from otel_bridge.sinks.weave_calls import (
    PREDICT_OP,
    EvalHandle,
    find_evaluations,
    prediction_rows,
    revision,
    scores_digest,
)
from otel_bridge.translate.weave import FinishEvaluation, LogPrediction, StartEvaluation

FEEDBACK_BATCH = 100  # predict calls per feedback query / purge


class Spool:
    """Rows skipped while they match the server, on disk: replayed into a new revision if needed."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self.count = 0

    def add(self, row: LogPrediction) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="otel-bridge-rescore-")  # noqa: SIM115 - closed in close()
        pickle.dump(row, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def rows(self) -> Iterator[LogPrediction]:
        if self._file is None:
            return
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written just before

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class Compare:
    """An ended evaluation being compared, row by row, with the input for the same eval id."""

    start: StartEvaluation
    server_scored_ns: int  # the latest scoring time of the server's rows
    spool: Spool = field(default_factory=Spool)
    input_scored_ns: int = 0  # the latest scoring time of the input's rows so far
    older: bool = False  # the input was scored before the server's rows: it changes nothing

    def ignore(self) -> None:
        self.older = True
        self.spool.close()


def cut_short(w: FinishEvaluation) -> bool:
    """An end made up because the input stopped before the task's own end arrived."""
    return bool((w.summary.get("inspect") or {}).get("status") == "incomplete")


def scored_ns(w: LogPrediction) -> int:
    """When a row was scored: its last scorer's end (Inspect's score event time)."""
    return max((s.end_ns for s in w.scorer_calls), default=0)


def row_attributes(w: LogPrediction) -> dict[str, Any]:
    """A row's attributes, with the scoring time a later comparison needs (``scored_ns``)."""
    return {**w.attributes, "inspect": {**dict(w.attributes.get("inspect") or {}), "scored_ns": scored_ns(w)}}


def metrics_digest(output: Any) -> str:
    """The evaluate output's metric columns, comparable (``model_latency`` left out: it is an
    average over the rows a process saw, not a score)."""
    items = output.items() if hasattr(output, "items") else ()
    return json.dumps({k: v for k, v in items if k != "model_latency"}, sort_keys=True, default=str)


def revision_attributes(start: StartEvaluation, number: int, supersedes: str) -> dict[str, Any]:
    attributes = dict(start.attributes)
    attributes["inspect"] = {
        **dict(attributes.get("inspect") or {}),
        "revision": number,
        "supersedes": supersedes,
    }
    return attributes


class Revisions:
    """The Weave sink's adopt and re-score steps (a mixin: ``WeaveSink`` provides the writes)."""

    _evals: dict[str, EvalHandle]
    stats: dict[str, int]

    def _create(
        self, client: Any, w: StartEvaluation, evaluation: Any, model: Any, attributes: Any
    ) -> EvalHandle:
        raise NotImplementedError

    def _predict(self, client: Any, w: LogPrediction) -> None:
        raise NotImplementedError

    def _adopt(
        self, client: Any, found: list[Any], w: StartEvaluation, evaluation: Any, model: Any
    ) -> EvalHandle:
        """The evaluation the server holds for this eval id (its newest revision)."""
        call = found[0]
        handle = EvalHandle(
            call_id=call.id,
            trace_id=call.trace_id,
            op_uri=call.op_name,
            started_at=call.started_at,
            evaluation=evaluation,
            model=model,
            ended=call.ended_at is not None,
            owned=False,
            revision=revision(call),
            output=call.output,
        )
        ended, partial, handle.summarized = prediction_rows(client, call.id, handle.rollup)
        handle.existing.update(ended)
        if partial:
            client.delete_calls(partial)
        # older revisions left by a re-score that stopped before deleting them
        older = [(c.id, c.trace_id) for c in found[1:] if revision(c) < handle.revision]
        if handle.ended:
            handle.digests = ended
            handle.rescore = Compare(w, max((t for _, t in ended.values()), default=0))
            delete_revisions(client, older)
        else:
            handle.replaces = older
        return handle

    def _compare_row(self, client: Any, h: EvalHandle, w: LogPrediction) -> EvalHandle:
        """The handle to write ``w`` under: the ended evaluation (skipped, spooled) while the row
        matches or is new, a new revision from the first row whose scores differ."""
        compare: Compare = h.rescore
        held = h.digests.get(w.key)
        if compare.older:
            return h
        compare.input_scored_ns = max(compare.input_scored_ns, scored_ns(w))
        if held is None or held[0] == scores_digest(w.scores):
            compare.spool.add(w)
            return h
        if scored_ns(w) <= held[1]:  # the server's scores are the later ones (an older span file)
            compare.ignore()
            return h
        return self._supersede(client, h)

    def _compare_finish(self, client: Any, h: EvalHandle, w: FinishEvaluation) -> EvalHandle | None:
        """The handle to end with ``w`` when the metrics differ from the server's, else None."""
        compare: Compare = h.rescore
        if (
            compare.older
            or cut_short(w)  # the input stopped before its task's end: never a replacement
            or metrics_digest(w.output) == metrics_digest(h.output)
            or compare.input_scored_ns <= compare.server_scored_ns
        ):
            compare.spool.close()
            h.rescore = None
            return None
        return self._supersede(client, h)

    def _supersede(self, client: Any, old: EvalHandle) -> EvalHandle:
        """Start the new revision and write into it the rows skipped so far."""
        compare: Compare = old.rescore
        old.rescore = None
        number = old.revision + 1
        attributes = revision_attributes(compare.start, number, old.call_id)
        new = self._create(client, compare.start, old.evaluation, old.model, attributes)
        new.revision, new.replaces = number, [(old.call_id, old.trace_id)]
        self._evals[compare.start.eval_id] = new
        self.stats["superseded"] = self.stats.get("superseded", 0) + 1
        for row in compare.spool.rows():
            self._predict(client, row)
        compare.spool.close()
        return new

    def _drop_replaced(self, client: Any, eval_id: str, h: EvalHandle, w: FinishEvaluation) -> None:
        """Once a new revision has ended: delete every other evaluate call of its eval id (the
        one it superseded, and any left by an earlier re-score that stopped half-way) — unless
        the input was cut short, which must not take a complete evaluation away."""
        if cut_short(w):
            return
        stale = {c.id: c.trace_id for c in find_evaluations(client, eval_id) if revision(c) <= h.revision}
        stale.update(dict(h.replaces))
        stale.pop(h.call_id, None)
        delete_revisions(client, list(stale.items()))
        h.replaces = []


def delete_revisions(client: Any, calls: list[tuple[str, str]]) -> None:
    """Delete old revisions (call id, trace id): their score feedback, then the calls with all
    their descendants."""
    if not calls:
        return
    predict = f"weave:///{client.entity}/{client.project}/op/{PREDICT_OP}:*"
    ids = [
        p.id
        for p in client.get_calls(
            filter={"trace_ids": [trace for _, trace in calls], "op_names": [predict]}, columns=["id"]
        )
    ]
    base = f"weave:///{client.entity}/{client.project}/call/"
    for i in range(0, len(ids), FEEDBACK_BATCH):
        refs = [{"$literal": base + x} for x in ids[i : i + FEEDBACK_BATCH]]
        query = {"$expr": {"$in": [{"$getField": "weave_ref"}, refs]}}
        found = [f.id for f in client.get_feedback(query=query, limit=10_000)]
        if found:
            upstream.purge_feedback(client, found)
    client.delete_calls([call for call, _ in calls])
