"""The one place the bridge reaches past a public API of an upstream library.

Keep every such access here, each with a test in ``tests/test_upstream_private.py`` that fails
loudly (naming the upstream version) when the upstream changes.

- OpenTelemetry SDK: a ``TracerProvider`` has no public accessor for its span processors. The
  hook builds its spans directly as ``ReadableSpan``s with ids that preserve Inspect's nesting, so
  they cannot be re-created through the provider's tracer (that would give them new ids); to hand
  them to a provider the user supplies, the bridge calls that provider's composite processor.
- weave: an evaluation's rows are parented to its ``Evaluation.evaluate`` call by a ``Call``
  naming it (the client holds no handle for a call another process started), and ending such a
  call goes through the batch processor's eager path (see ``route_end_of_foreign_call``); the
  score feedback of a replaced evaluation revision is purged in batches (``purge_feedback``).
- wandb: a finished run's artifacts stay in wandb's module-level artifact cache, keeping the
  whole run alive; the W&B sink drops them after ``finish`` (``forget_run_artifacts``).
"""

from __future__ import annotations

import datetime
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


def provider_processor(provider: TracerProvider) -> SpanProcessor:
    """The processor that fans a provider's ended spans out to everything added to it."""
    processor = getattr(provider, "_active_span_processor", None)
    if not isinstance(processor, SpanProcessor):
        raise RuntimeError(
            "this opentelemetry-sdk's TracerProvider has no _active_span_processor: "
            "otel_bridge.configure(tracer_provider=...) needs updating for it "
            "(pass span_processors=... instead)"
        )
    return processor


def evaluate_call_handle(
    project_id: str, op_uri: str, trace_id: str, call_id: str, started_at: datetime.datetime
) -> Any:
    """A ``Call`` naming an existing evaluate call: a parent for rows and a target for its end."""
    from weave.trace.call import Call

    return Call(
        _op_name=op_uri,
        trace_id=trace_id,
        project_id=project_id,
        parent_id=None,
        inputs={},
        id=call_id,
        attributes={"_weave_eval_meta": {"imperative": True}},
        started_at=started_at,
    )


def route_end_of_foreign_call(client: Any, call_id: str) -> None:
    """Let ``finish_call`` end an evaluate call that another process started.

    weave's batching processor sends an end on its own only for starts it sent itself (eager
    ops); otherwise it holds the end for up to 5 minutes waiting for a start that will never
    come. Registering the id as eager sends the end at once. No-op without that processor.
    """
    server = client.server
    while not hasattr(server, "call_processor") and hasattr(server, "_next_trace_server"):
        server = server._next_trace_server
    processor = getattr(server, "call_processor", None)
    eager_ids = getattr(processor, "_eager_call_ids", None)
    if eager_ids is not None:
        eager_ids[call_id] = True


def roll_up_into(call: Any, summary: dict[str, Any]) -> None:
    """Make ``finish_call`` sum ``summary`` (status_counts, usage) into ``call``'s own.

    weave computes a call's summary from the live ``Call`` objects in its ``_children`` and lets
    that override any summary it is given; an evaluate call rebuilt per row has none, so the
    rows' summaries (added up by the sink) stand in as its one child — the totals the SDK's own
    evaluate call gets from its live children.
    """
    from weave.trace.call import Call

    child = Call(
        _op_name="rollup", trace_id=call.trace_id, project_id=call.project_id, parent_id=call.id, inputs={}
    )
    child.summary = summary
    call._children = [child]


def add_score_feedback(
    client: Any, predict_call: Any, score_call: Any, scorer: Any, score: Any
) -> dict[str, Any]:
    """One ``wandb.runnable.<scorer>`` feedback on the predict call, as ``Call.apply_scorer`` writes.

    weave's public ``feedback.add`` refuses ``wandb.*`` types, and ``apply_scorer`` would run the
    scorer again at the current time; this is the request it sends (batched by weave's client).
    Returns the request, so one the server lost can be sent again as it was (``send_feedback``).
    """
    from weave.trace.feedback import feedback_create_params
    from weave.trace.ref_util import get_ref

    ref = get_ref(scorer)
    base = f"weave:///{client.entity}/{client.project}/call/"
    runnable_ref = ref.uri if ref is not None else score_call.op_name
    request: dict[str, Any] = dict(
        feedback_create_params(
            project_id=client.project_id,
            weave_ref=base + predict_call.id,
            feedback_type=f"wandb.runnable.{runnable_ref.rsplit('/', 1)[-1].split(':', 1)[0]}",
            payload={"output": score},
            runnable_ref=runnable_ref,
            call_ref=base + score_call.id,
        )
    )
    send_feedback(client, request)
    return request


def send_feedback(client: Any, request: dict[str, Any]) -> None:
    """Send a feedback create request (``add_score_feedback``'s) through weave's client queue."""
    client.server.feedback_create(request)


def purge_feedback(client: Any, feedback_ids: list[str]) -> None:
    """Delete these feedback rows in one request.

    weave's public purge (``Call.feedback.purge``) sends one request per feedback id; the server's
    purge takes an ``$or`` of id matches (the only query it accepts), which this sends.
    """
    if not feedback_ids:
        return
    matches = [{"$eq": [{"$getField": "id"}, {"$literal": i}]} for i in feedback_ids]
    client.server.feedback_purge(
        {
            "project_id": client.project_id,
            "query": {"$expr": {"$or": matches} if len(matches) > 1 else matches[0]},
        }
    )


def forget_run_artifacts(run_id: str) -> int:
    """Drop a finished run's artifacts from wandb's process-wide artifact cache; how many went.

    wandb registers every ``Artifact`` it creates (the run's logged tables, our log artifact) in
    a module-level capped dict of 100 and never removes them; each one holds its logged objects
    and, through them, the whole finished ``Run`` (config, summary, settings). A long-running
    receiver therefore keeps the last ~50 runs alive. Once a run has finished nothing resolves
    those artifacts by their client id again, so the sink drops them. No-op if the cache moved.
    """
    try:
        from wandb.sdk.artifacts import artifact_instance_cache as cache
    except ImportError:
        return 0
    dropped = 0
    for registry in (cache.artifact_instance_cache_by_client_id, cache.artifact_instance_cache):
        for key, artifact in list(registry.items()):
            try:
                name = str(artifact.name)
            except Exception:  # an artifact in a state where its name cannot be read: leave it
                continue
            if run_id in name:  # "run-<id>-<table key>" (wandb's), "inspect-logs-<id>" (ours)
                registry.pop(key, None)
                dropped += 1
    return dropped
