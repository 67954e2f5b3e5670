"""What the Weave sink writes and asks with weave's public API: op names, objects, bounded waits."""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_bridge.translate.weave import StartEvaluation

SYNC_HINT = "`otel-bridge sync <span file> --to weave`"
EVALUATE_OP = "Evaluation.evaluate"
PREDICT_AND_SCORE_OP = "Evaluation.predict_and_score"
PREDICT_OP = "Model.predict"
SUMMARIZE_OP = "Evaluation.summarize"
SCORE_META = {"imperative": True, "score": True}
FLUSH_EVERY_CALLS = 2_000  # bounded memory: wait for weave's queue after this many queued calls

# Weave settings for a client inside someone else's program: never patch their LLM libraries,
# never print links, give up on an unreachable server quickly.
WEAVE_SETTINGS: dict[str, Any] = {
    "print_call_link": False,
    "log_level": "WARNING",
    "implicitly_patch_integrations": False,
    "capture_code": False,
    "capture_client_info": False,
    "capture_system_info": False,
    "retry_max_attempts": 2,
    "retry_max_interval": 5.0,
    "http_timeout": 15.0,
    # a write-only client: the response cache (memory + SQLite on disk) is never read back, and
    # in a long-running receiver it only grows (measured: docs/performance.md, receiver memory)
    "use_server_cache": False,
}


class SampleError(Exception):
    """An Inspect sample or task error, carried into Weave's ``exception`` field."""


def ts(ns: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)


def inspect_attr(call: Any, key: str) -> Any:
    attrs = getattr(call, "attributes", None) or {}
    inspect_attrs = attrs.get("inspect") if hasattr(attrs, "get") else None
    if inspect_attrs is None or not hasattr(inspect_attrs, "get"):
        return None
    return inspect_attrs.get(key)


def bounded(fn: Callable[[], Any], timeout_s: float) -> bool:
    """Run a possibly blocking weave call for at most ``timeout_s`` (daemon thread)."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:
            pass
        finally:
            done.set()

    threading.Thread(target=run, name="otel-bridge-weave-flush", daemon=True).start()
    deadline = time.monotonic() + max(0.0, timeout_s)
    return done.wait(max(0.0, deadline - time.monotonic()))


_CLASSES: tuple[Any, Any] | None = None


def weave_classes() -> tuple[Any, Any]:
    """Model / Scorer subclasses holding Inspect's fields (weave objects forbid extra fields)."""
    global _CLASSES
    if _CLASSES is None:
        import weave

        class InspectModel(weave.Model):
            """An Inspect model: its name and generation settings, as the Evals tab shows them."""

            model: str
            generate_config: dict[str, Any] = {}
            model_args: dict[str, Any] = {}
            base_url: str | None = None
            roles: dict[str, Any] = {}

        class InspectScorer(weave.Scorer):
            """An Inspect scorer by name (Inspect ran it; Weave only records its scores)."""

        _CLASSES = (InspectModel, InspectScorer)
    return _CLASSES


def weave_objects(w: StartEvaluation) -> tuple[Any, Any]:
    """The Evaluation (task, dataset, scorers) and Model objects of an evaluation."""
    import weave

    inspect_model, inspect_scorer = weave_classes()
    dataset = weave.Dataset(
        name=w.dataset.name,
        rows=weave.Table(
            [{"dataset": w.dataset.name, "location": w.dataset.location, "samples": w.dataset.samples}]
        ),
    )
    scorers = [inspect_scorer(name=s) for s in w.scorers]
    evaluation = weave.Evaluation(
        name=w.task, dataset=dataset, scorers=scorers, metadata=dict(w.evaluation_metadata)
    )
    model = inspect_model(
        name=w.model.name,
        model=w.model.model,
        generate_config=dict(w.model.generate_config),
        model_args=dict(w.model.model_args),
        base_url=w.model.base_url,
        roles=dict(w.model.roles),
    )
    return evaluation, model


def revision(call: Any) -> int:
    """Which version of its evaluation an evaluate call is (0: the first; a re-scored log adds one)."""
    value = inspect_attr(call, "revision")
    return value if isinstance(value, int) else 0


def find_evaluations(client: Any, eval_id: str) -> list[Any]:
    """The evaluate calls written for this eval id, the one to adopt first: the newest revision,
    then an ended one, then the oldest."""
    calls = client.get_calls(
        filter={"op_names": [f"weave:///{client.entity}/{client.project}/op/{EVALUATE_OP}:*"]},
        query={"$expr": {"$eq": [{"$getField": "attributes.inspect.eval_id"}, {"$literal": eval_id}]}},
        columns=["id", "trace_id", "op_name", "started_at", "ended_at", "attributes", "output"],
    )
    found = [c for c in calls if inspect_attr(c, "eval_id") == eval_id]
    found.sort(key=lambda c: (-revision(c), c.ended_at is None, str(c.started_at)))
    return found


def add_summary(total: dict[str, Any], summary: Any) -> None:
    """Add a call's summary into ``total``: numeric leaves summed, as weave rolls children up
    (``weave``, the server's own derived block, is not part of it)."""
    for key, value in (summary or {}).items():
        if key == "weave":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            continue
        if isinstance(value, dict):
            sub = total.setdefault(key, {})
            if isinstance(sub, dict):
                add_summary(sub, value)
        else:
            total[key] = total.get(key, 0) + value


def scores_digest(scores: Any) -> str:
    """A row's ``output.scores`` as one comparable string (the same before and after Weave's JSON)."""
    return json.dumps(scores, sort_keys=True, default=str)


def prediction_rows(
    client: Any, call_id: str, rollup: dict[str, Any]
) -> tuple[dict[str, tuple[str, int]], list[str], bool]:
    """An evaluation's rows on the server: the ended ones' keys with their scores' digest and
    scoring time (``scored_ns``, 0 if the row has none), ids of half-written ones, and whether its
    summary call (ended) exists; the ended calls' summaries are added to ``rollup``."""
    ended: dict[str, tuple[str, int]] = {}
    partial: list[str] = []
    summarized = False
    for child in client.get_calls(
        filter={"parent_ids": [call_id]},
        columns=["id", "op_name", "ended_at", "attributes", "summary", "output"],
    ):
        if child.ended_at is not None:
            add_summary(rollup, child.summary)
        if SUMMARIZE_OP in str(child.op_name) and child.ended_at is not None:
            summarized = True
        key = inspect_attr(child, "key")
        if key is None or PREDICT_AND_SCORE_OP not in str(child.op_name):
            continue
        if child.ended_at is None:
            partial.append(child.id)
        else:
            output = child.output
            scored = inspect_attr(child, "scored_ns")
            digest = scores_digest(output.get("scores") if hasattr(output, "get") else None)
            ended[str(key)] = (digest, scored if isinstance(scored, int) else 0)
    return ended, partial, summarized


def drop_orphan_rows(client: Any, eval_id: str, parent_id: str) -> None:
    """Delete this eval's prediction rows that hang under another (lost) evaluate call."""
    query = {"$expr": {"$eq": [{"$getField": "attributes.inspect.eval_id"}, {"$literal": eval_id}]}}
    orphans = [
        c.id
        for c in client.get_calls(
            filter={"op_names": [f"weave:///{client.entity}/{client.project}/op/{PREDICT_AND_SCORE_OP}:*"]},
            query=query,
            columns=["id", "parent_id", "attributes"],
        )
        if c.parent_id != parent_id and inspect_attr(c, "eval_id") == eval_id
    ]
    if orphans:
        client.delete_calls(orphans)


@dataclass
class EvalHandle:
    """What the sink knows about one evaluation on the server."""

    call_id: str
    trace_id: str
    op_uri: str
    started_at: datetime.datetime
    evaluation: Any
    model: Any
    ended: bool
    existing: set[str] = field(default_factory=set)
    summarized: bool = False  # its Evaluation.summarize call exists
    rollup: dict[str, Any] = field(default_factory=dict)  # its ended children's summaries, summed
    owned: bool = True  # started by this process (its end may go through weave's eager path)
    revision: int = 0  # a re-scored log's evaluation is a new revision (sinks/weave_rescore.py)
    output: Any = None  # the server's evaluate output (metrics), when it had ended
    #: an ended one's rows: key → (scores digest, when they were scored)
    digests: dict[str, tuple[str, int]] = field(default_factory=dict)
    rescore: Any = None  # an ended one being compared with the input (weave_rescore.Compare)
    #: older revisions (call id, trace id), deleted once this one has ended
    replaces: list[tuple[str, str]] = field(default_factory=list)
    #: one scorer object per name, saved once: a fresh one per row made weave publish it again and
    #: the score feedback wait ~40 ms for its ref (57% of a `sync --to weave`)
    scorers: dict[str, Any] = field(default_factory=dict)


def record_op(cache: dict[str, Any], name: str, eager: bool = False) -> Any:
    """One weave op per stable name (code capture off: these are records, not functions)."""
    op = cache.get(name)
    if op is None:
        import weave

        def record(*args: Any, **kwargs: Any) -> None:
            return None

        record.__name__ = name.replace(".", "_")
        op = weave.op(record, name=name, enable_code_capture=False, eager_call_start=eager)
        cache[name] = op
    return op
