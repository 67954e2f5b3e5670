"""The test Weave server harness works end to end with the real weave 0.54 client.

Each client runs in a subprocess (``WeaveServer.run_python``) so ``weave.init``'s global state
stays out of pytest.  These tests fail if the harness, the server venv, or the client/server
contract breaks — everything else that relies on the harness trusts them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.weave_server.harness import WeaveServer

# The root conftest may load this plugin too; pytest registers a plugin module only once.
pytest_plugins = ["tests.weave_server.pytest_plugin"]

EVAL_CLIENT = """
import json, os, weave
client = weave.init(os.environ["WEAVE_PROJECT"])
ev = weave.EvaluationLogger(
    name="harness-eval", model="harness-model", dataset=[{"q": i} for i in range(3)]
)
for i in range(3):
    pred = ev.log_prediction(inputs={"q": i}, output=f"answer {i}")
    pred.log_score("correct", i % 2 == 0)
    pred.log_score("quality", 0.5 + i / 10)
    pred.finish()
ev.log_summary({"note": "done"})
client.flush()
print(json.dumps({"ok": True}))
"""

FAILED_EVAL_CLIENT = """
import os, weave
client = weave.init(os.environ["WEAVE_PROJECT"])
ev = weave.EvaluationLogger(name="broken-eval", model="harness-model", dataset=[{"q": 1}])
pred = ev.log_prediction(inputs={"q": 1}, output="x")
pred.log_score("correct", False)
pred.finish()
ev.fail(RuntimeError("eval exploded"))
client.flush()
"""

EXPLICIT_CALLS_CLIENT = """
import json, os, weave
from datetime import datetime, timedelta, timezone
client = weave.init(os.environ["WEAVE_PROJECT"])
t0 = datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=timezone.utc)
parent = client.create_call("replayed_parent", {"x": 1}, use_stack=False, started_at=t0)
child = client.create_call(
    "replayed_child", {"y": 2}, parent=parent, use_stack=False, started_at=t0 + timedelta(seconds=1)
)
client.finish_call(
    child,
    {"model": "gpt-test", "usage": {"input_tokens": 7, "output_tokens": 3}},
    ended_at=t0 + timedelta(seconds=2),
)
client.finish_call(parent, {"done": True}, ended_at=t0 + timedelta(seconds=3))
client.flush()
print(json.dumps({"parent": parent.id, "child": child.id}))
"""


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(name: str, span_id: bytes, parent: bytes, start: datetime, attrs: dict[str, str | int]) -> Span:
    start_ns = int(start.timestamp() * 1e9)
    return Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + 500_000_000,
        attributes=[_kv(k, v) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_OK),
    )


def _otlp_request(project_id: str, spans: list[Span]) -> bytes:
    entity, project = project_id.split("/")
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "harness"), _kv("wandb.entity", entity)])
    rs.resource.attributes.append(_kv("wandb.project", project))
    rs.scope_spans.add().spans.extend(spans)
    return req.SerializeToString()


def test_evaluation_logger_shows_in_evals_tab(weave_server: WeaveServer, weave_project: str) -> None:
    weave_server.run_python(EVAL_CLIENT, weave_project)

    evals = weave_server.evaluations(weave_project)
    assert len(evals) == 1
    ev = evals[0]
    assert ev["display_name"] == "harness-eval"
    assert ev["inputs"]["self"].startswith(f"weave:///{weave_project}/object/Evaluation:")
    assert ev["inputs"]["model"].startswith(f"weave:///{weave_project}/object/")
    assert ev["exception"] is None and ev["ended_at"] is not None
    assert ev["output"]["correct"] == {"true_count": 2, "true_fraction": 2 / 3}
    assert abs(ev["output"]["quality"]["mean"] - 0.6) < 1e-9
    assert ev["summary"]["weave"]["status"] == "success"

    children = weave_server.children(weave_project, ev["id"])
    pas = [c for c in children if "/op/Evaluation.predict_and_score:" in c["op_name"]]
    assert len(pas) == 3
    for call in pas:
        assert set(call["output"]["scores"]) == {"correct", "quality"}
        grandchildren = weave_server.children(weave_project, call["id"])
        assert len(grandchildren) == 3  # predict + one call per scorer
    assert any("/op/Evaluation.summarize:" in c["op_name"] for c in children)

    assert weave_server.evaluation_status(weave_project, ev["id"])["code"] == "complete"

    # The refs resolve through the query API: Evaluation -> Dataset -> table rows.
    evaluation_obj = weave_server.read_refs([ev["inputs"]["self"]])[0]
    dataset = weave_server.read_refs([evaluation_obj["dataset"]])[0]
    rows = weave_server.table_rows(weave_project, dataset["rows"])
    assert [r["val"] for r in rows] == [{"q": 0}, {"q": 1}, {"q": 2}]
    assert any(o["object_id"] == "Evaluation" for o in weave_server.objs(weave_project))


def test_failed_evaluation_logger_shows_as_failed(weave_server: WeaveServer, weave_project: str) -> None:
    weave_server.run_python(FAILED_EVAL_CLIENT, weave_project)

    evals = weave_server.evaluations(weave_project)
    assert len(evals) == 1
    ev = evals[0]
    assert ev["exception"] and "eval exploded" in ev["exception"]
    assert ev["summary"]["weave"]["status"] == "error"
    assert weave_server.evaluation_status(weave_project, ev["id"])["code"] == "failed"


def test_create_call_with_historical_timestamps_round_trips(
    weave_server: WeaveServer, weave_project: str
) -> None:
    out = weave_server.run_python(EXPLICIT_CALLS_CLIENT, weave_project)
    ids = json.loads(out.stdout.strip().splitlines()[-1])

    t0 = datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    parent = weave_server.call(weave_project, ids["parent"])
    child = weave_server.call(weave_project, ids["child"])
    assert parent is not None and child is not None
    assert child["parent_id"] == parent["id"] and child["trace_id"] == parent["trace_id"]
    assert datetime.fromisoformat(parent["started_at"]) == t0
    assert datetime.fromisoformat(parent["ended_at"]) == t0 + timedelta(seconds=3)
    assert datetime.fromisoformat(child["started_at"]) == t0 + timedelta(seconds=1)
    assert datetime.fromisoformat(child["ended_at"]) == t0 + timedelta(seconds=2)
    assert "/op/replayed_child:" in child["op_name"]
    # Usage from the child's output is rolled up into the parent's summary.
    usage = parent["summary"]["usage"]["gpt-test"]
    assert usage["input_tokens"] == 7 and usage["output_tokens"] == 3 and usage["requests"] == 1


def test_otlp_spans_become_calls_and_conflicts_are_rejected(
    weave_server: WeaveServer, weave_project: str
) -> None:
    t0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    root = _span("agent_run", b"\x01" * 8, b"", t0, {"wandb.display_name": "Harness agent"})
    llm = _span(
        "chat",
        b"\x02" * 8,
        b"\x01" * 8,
        t0 + timedelta(milliseconds=100),
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "test-model",
            "gen_ai.prompt": "What is 2+2?",
            "gen_ai.completion": "4",
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 2,
            "wandb.display_name": "LLM call",
        },
    )
    res = weave_server.post_otlp(None, _otlp_request(weave_project, [root, llm]))
    assert res.partial_success.rejected_spans == 0, res.partial_success.error_message

    calls = {c["display_name"]: c for c in weave_server.calls(weave_project)}
    assert set(calls) == {"Harness agent", "LLM call"}
    assert calls["LLM call"]["parent_id"] == calls["Harness agent"]["id"]
    assert datetime.fromisoformat(calls["Harness agent"]["started_at"]) == t0
    usage = calls["LLM call"]["summary"]["usage"]["test-model"]
    assert usage["input_tokens"] == 11 and usage["output_tokens"] == 2

    # Both `foo` and `foo.bar`: the real span->call mapping rejects the span via partial_success.
    bad = _span("conflict", b"\x03" * 8, b"", t0, {"foo": "x", "foo.bar": "y"})
    res = weave_server.post_otlp(weave_project, _otlp_request(weave_project, [bad]))
    assert res.partial_success.rejected_spans == 1
    assert "conflict" in res.partial_success.error_message
    assert len(weave_server.calls(weave_project)) == 2


def test_server_answers_bad_requests_with_json_errors(weave_server: WeaveServer) -> None:
    status, body = weave_server._http("/calls/stream_query", b"{not json", {})
    assert status == 400 and "reason" in json.loads(body)
    status, body = weave_server._http("/obj/read", b'{"project_id": "a/b"}', {})
    assert status == 422 and "reason" in json.loads(body)
    status, body = weave_server._http("/no/such/route", b"{}", {})
    assert status == 404
    assert weave_server._get_json("/health") == {"status": "ok"}
