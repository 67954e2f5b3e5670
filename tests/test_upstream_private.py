"""Every upstream detail beyond a documented API that the bridge relies on (``otel_bridge._upstream``).

Each test fails loudly when the upstream changes, naming what moved.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge._upstream import (
    add_score_feedback,
    evaluate_call_handle,
    forget_run_artifacts,
    provider_processor,
    roll_up_into,
    route_end_of_foreign_call,
    send_feedback,
)


def test_tracer_provider_composite_processor_still_there() -> None:
    """A user's provider fans our ReadableSpans out to every processor added to it, before or after."""
    provider = TracerProvider()
    early = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(early))
    processor = provider_processor(provider)
    assert isinstance(processor, SpanProcessor)
    late = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(late))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("real"):
        pass
    [span] = early.get_finished_spans()
    assert isinstance(span, ReadableSpan)
    processor.on_end(span)  # what the bridge does with each span it ends
    assert [s.name for s in early.get_finished_spans()] == ["real", "real"]
    assert [s.name for s in late.get_finished_spans()] == ["real", "real"]


def test_weave_internals_still_there() -> None:
    """The few weave details beyond its documented API; fails loudly on an upstream change."""
    import inspect as pyinspect

    import weave
    from weave.trace.call import Call
    from weave.trace.weave_client import WeaveClient

    params = pyinspect.signature(WeaveClient.create_call).parameters
    assert {"parent", "attributes", "display_name", "use_stack", "started_at"} <= set(params)
    assert "ended_at" in pyinspect.signature(WeaveClient.finish_call).parameters
    assert "eager_call_start" in pyinspect.signature(weave.op).parameters
    fields = set(Call.__dataclass_fields__)
    assert {
        "_op_name",
        "trace_id",
        "project_id",
        "parent_id",
        "inputs",
        "id",
        "attributes",
        "started_at",
    } <= fields
    from weave.trace_server_bindings.call_batch_processor import CallBatchProcessor

    src = pyinspect.getsource(CallBatchProcessor)
    assert "_eager_call_ids" in src and "def _handle_end" in src
    from otel_bridge.sinks.weave_calls import weave_classes

    model_cls, scorer_cls = weave_classes()
    assert model_cls(name="m", model="p/m").model == "p/m" and scorer_cls(name="s").name == "s"
    assert callable(route_end_of_foreign_call) and callable(evaluate_call_handle)
    # roll_up_into: finish_call sums the summaries of the Call's _children
    assert "_children" in fields
    finish_src = pyinspect.getsource(WeaveClient.finish_call)
    assert "call._children" in finish_src and "child.summary" in finish_src
    import datetime

    call = evaluate_call_handle("e/p", "weave:///e/p/op/x:1", "t", "c", datetime.datetime.now())
    roll_up_into(call, {"status_counts": {"success": 3, "error": 1}})
    assert [child.summary for child in call._children] == [{"status_counts": {"success": 3, "error": 1}}]
    # add_score_feedback / send_feedback: the request weave's own apply_scorer sends, and the
    # public feedback query the sink reads it back with
    from weave.trace.feedback import feedback_create_params

    create = set(pyinspect.signature(feedback_create_params).parameters)
    assert {"project_id", "weave_ref", "feedback_type", "payload", "runnable_ref", "call_ref"} <= create
    assert {"query", "offset", "limit"} <= set(pyinspect.signature(WeaveClient.get_feedback).parameters)
    assert callable(add_score_feedback) and callable(send_feedback)


def test_feedback_purge_request_still_there() -> None:
    """``purge_feedback`` sends the request ``Feedbacks.purge`` sends for one id (an id match),
    with several ids under ``$or``; the client's server binding must still take it. That the
    server really removes them is checked end to end in tests/test_import_rescore.py."""
    import inspect as pyinspect

    from weave.trace.feedback import RefFeedbackQuery
    from weave.trace_server_bindings.remote_http_trace_server import RemoteHTTPTraceServer

    src = pyinspect.getsource(RefFeedbackQuery.purge)
    assert "server.feedback_purge" in src and '"$getField": "id"' in src and '"project_id"' in src
    assert callable(RemoteHTTPTraceServer.feedback_purge)


def test_wandb_artifact_cache_still_keeps_finished_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wandb's module-level artifact cache keeps a finished run alive through its logged table;
    ``forget_run_artifacts`` lets it go (real wandb, offline). Fails if the cache moves or stops
    holding runs (then the workaround can go)."""
    # weave is imported by the test above: wandb.init would try to log in to it for this run
    monkeypatch.setenv("WANDB_DISABLE_WEAVE", "true")
    import wandb
    from wandb.sdk.artifacts import artifact_instance_cache as cache

    run = wandb.init(
        project="upstream-check",
        mode="offline",
        dir=str(tmp_path),
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True, save_code=False),
    )
    run.log({"samples": wandb.Table(columns=["a"], data=[[1]])})
    run.finish()
    run_id, alive = run.id, weakref.ref(run)
    del run
    gc.collect()
    assert alive() is not None, f"wandb {wandb.__version__} no longer keeps a finished run alive"
    assert any(run_id in a.name for a in cache.artifact_instance_cache_by_client_id.values())
    assert forget_run_artifacts(run_id) >= 1
    gc.collect()
    assert alive() is None, "something else in wandb still holds the finished run"
    assert not any(run_id in a.name for a in cache.artifact_instance_cache_by_client_id.values())
