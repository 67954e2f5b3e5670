"""End-to-end tests of the collector fan-out with the real binaries (never skipped).

Why: the collector config is the loss-free path between eval processes and every backend; only a
real collector (built from collector/builder-config.yaml, run with the same otelcol-config.yaml that
docker-compose mounts) and a real Jaeger prove that spans arrive nested, that the content-stripped
pipeline leaks no prompt text, and that outages and crashes lose nothing.

The bridge receiver (``otel-bridge serve``) does not exist yet: an ``OtlpCapture`` (a real OTLP
server) stands in at BRIDGE_RECEIVER_ENDPOINT. Swap in the real receiver once it lands.

A cold build of both binaries runs inside the first test's setup (minutes; cached afterwards), hence
the long per-test timeout below.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.collector import (
    BACKENDS_DIR,
    BUILD_TIMEOUT_S,
    Binaries,
    Collector,
    Jaeger,
    validate_config,
)
from tests.support.otlp_capture import CapturedSpan, OtlpCapture

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 600)

N_SAMPLES = 2
N_SPANS = 1 + N_SAMPLES * 3  # eval root; per sample: sample span, chat span, tool span
TOKEN = "test-receiver-token"

# Keys that must never reach a content-stripped destination (mirrors transform/strip_content).
CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "input.value",
    "output.value",
    "inspect.sample.input",
    "inspect.sample.target",
    "inspect.sample.output",
    "inspect.message.content",
    "llm.input_messages.0.message.content",
}


# ---------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def bridge_capture() -> Iterator[OtlpCapture]:
    """Stand-in for the bridge receiver, requiring the bearer token the collector is given."""
    with OtlpCapture(token=TOKEN) as cap:
        yield cap


def start_collector(
    binaries: Binaries, jaeger: Jaeger, bridge_capture: OtlpCapture, workdir: Path, **kwargs: Any
) -> Collector:
    """A started collector wired to ``bridge_capture`` and ``jaeger`` (env only, like compose)."""
    env = {"INSPECT_OTEL_RECEIVER_TOKEN": TOKEN} | kwargs.pop("env", {})
    col = Collector(
        binaries.collector,
        workdir,
        bridge_endpoint=bridge_capture.http_endpoint,
        jaeger_endpoint=jaeger.otlp_grpc_endpoint,
        env=env,
        **kwargs,
    )
    col.start()
    return col


# ---------------------------------------------------------------------------------------------------
# span generation
# ---------------------------------------------------------------------------------------------------
def make_eval_spans(service: str, secret: str) -> list[ReadableSpan]:
    """An eval-shaped trace (eval > sample > chat / tool) with ``secret`` planted in every content key."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("inspect-otel-bridge-tests")
    with tracer.start_as_current_span("eval_task demo") as root:
        root.set_attribute("inspect.eval.id", service)
        for i in range(N_SAMPLES):
            with tracer.start_as_current_span(f"sample {i}") as sample:
                sample.set_attribute("inspect.sample.id", i)
                sample.set_attribute("inspect.sample.input", f"{secret} sample input {i}")
                sample.set_attribute("inspect.sample.target", f"{secret} target {i}")
                sample.set_attribute("inspect.sample.output", f"{secret} output {i}")
                with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as chat:
                    chat.set_attribute("gen_ai.operation.name", "chat")
                    chat.set_attribute("gen_ai.provider.name", "openai")
                    chat.set_attribute("gen_ai.request.model", "gpt-4o")
                    chat.set_attribute("gen_ai.usage.input_tokens", 120 + i)
                    chat.set_attribute("gen_ai.usage.output_tokens", 7)
                    # Structured (list-of-maps) value: the SDK exports it as an OTLP array/kvlist.
                    chat.set_attribute(
                        "gen_ai.input.messages",
                        [{"role": "user", "parts": [{"type": "text", "content": f"{secret} prompt {i}"}]}],
                    )
                    chat.set_attribute(
                        "gen_ai.output.messages",
                        json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": secret}]}]),
                    )
                    chat.set_attribute("gen_ai.system_instructions", f"{secret} system")
                    chat.set_attribute("gen_ai.tool.definitions", f'[{{"name": "bash", "d": "{secret}"}}]')
                    chat.set_attribute("input.value", f"{secret} input.value")
                    chat.set_attribute("output.value", f"{secret} output.value")
                    chat.set_attribute("llm.input_messages.0.message.content", f"{secret} llm")
                    chat.set_attribute("inspect.message.content", f"{secret} inspect content")
                    chat.add_event(
                        "gen_ai.client.inference.operation.details",
                        {"gen_ai.input.messages": f"{secret} event", "gen_ai.usage.output_tokens": 7},
                    )
                with tracer.start_as_current_span("execute_tool bash") as tool:
                    tool.set_attribute("gen_ai.tool.name", "bash")
                    tool.set_attribute("gen_ai.tool.call.arguments", f'{{"cmd": "{secret}"}}')
                    tool.set_attribute("gen_ai.tool.call.result", f"{secret} result")
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    assert len(spans) == N_SPANS
    return spans


def send(exporter: SpanExporter, spans: list[ReadableSpan]) -> None:
    """Export once and require success: the collector has *accepted* the spans when this returns."""
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def expected_tree(spans: list[ReadableSpan]) -> dict[str, str]:
    """span_id hex -> parent span_id hex ('' for the root), as the SDK produced them."""
    out = {}
    for s in spans:
        assert s.context is not None
        out[f"{s.context.span_id:016x}"] = f"{s.parent.span_id:016x}" if s.parent else ""
    return out


def assert_same_tree(received: list[CapturedSpan], spans: list[ReadableSpan]) -> None:
    """The destination holds exactly the sent spans with the same parent links."""
    assert {s.span_id: s.parent_span_id for s in received} == expected_tree(spans)


def new_service() -> tuple[str, str]:
    """A unique service name and a unique secret text."""
    tag = uuid.uuid4().hex[:12]
    return f"otel-bridge-test-{tag}", f"PLANTED-PROMPT-{tag}"


# ---------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------
def test_config_and_every_overlay_validate(binaries: Binaries) -> None:
    """The base config loads with no env at all; every backend overlay loads given its env."""
    base = validate_config(binaries.collector)
    assert base.returncode == 0, base.stderr
    dummy = {
        "STRIPPED_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "TEMPO_OTLP_ENDPOINT": "127.0.0.1:1",
        "DD_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces",
        "WANDB_API_KEY": "k",
        "WANDB_ENTITY": "e",
        "WANDB_PROJECT": "p",
        "LANGFUSE_AUTH": "a",
        "HONEYCOMB_API_KEY": "h",
        "DD_API_KEY": "d",
    }
    overlays = sorted(p.name for p in BACKENDS_DIR.glob("*.yaml"))
    assert len(overlays) >= 6
    for name in overlays:
        res = validate_config(binaries.collector, [name], dummy)
        assert res.returncode == 0, f"{name}: {res.stderr}"
    everything = validate_config(binaries.collector, overlays, dummy)
    assert everything.returncode == 0, everything.stderr


def test_fan_out_reaches_jaeger_and_bridge(
    binaries: Binaries, jaeger: Jaeger, bridge_capture: OtlpCapture, tmp_path: Path
) -> None:
    """OTLP/HTTP in -> Jaeger (right count and nesting) and the bridge receiver (token, gzip, content)."""
    service, secret = new_service()
    spans = make_eval_spans(service, secret)
    col = start_collector(binaries, jaeger, bridge_capture, tmp_path)
    try:
        send(HttpSpanExporter(endpoint=col.otlp_http_traces_url, timeout=10), spans)

        traces = jaeger.wait_for_spans(service, N_SPANS)
        assert len(traces) == 1
        jspans = traces[0]["spans"]
        assert len(jspans) == N_SPANS
        parents = {}
        for js in jspans:
            refs = [r for r in js.get("references") or [] if r["refType"] == "CHILD_OF"]
            parents[f"{int(js['spanID'], 16):016x}"] = f"{int(refs[0]['spanID'], 16):016x}" if refs else ""
        assert parents == expected_tree(spans)
        trace_id = spans[0].context.trace_id if spans[0].context else 0
        assert int(traces[0]["traceID"], 16) == trace_id

        received = bridge_capture.wait_for(N_SPANS)
        assert_same_tree(received, spans)
        assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in bridge_capture.received)
        assert all(r.headers.get("content-encoding") == "gzip" for r in bridge_capture.received)
        chat = next(s for s in received if s.name == "chat gpt-4o")
        assert chat.resource["service.name"] == service
        assert chat.attributes["gen_ai.input.messages"][0]["role"] == "user"  # structured value kept
        assert secret.encode() in bridge_capture.all_bytes()  # full-content destination gets the content
    finally:
        col.stop()


def test_content_stripped_destination_holds_no_content(
    binaries: Binaries, jaeger: Jaeger, bridge_capture: OtlpCapture, tmp_path: Path
) -> None:
    """OTLP/gRPC in; the otlp-stripped overlay's destination gets every span but no content key/bytes."""
    service, secret = new_service()
    spans = make_eval_spans(service, secret)
    with OtlpCapture() as stripped:
        col = start_collector(
            binaries,
            jaeger,
            bridge_capture,
            tmp_path,
            overlays=["otlp-stripped.yaml"],
            env={"STRIPPED_OTLP_ENDPOINT": stripped.http_endpoint},
        )
        try:
            send(GrpcSpanExporter(endpoint=col.otlp_grpc_endpoint, insecure=True, timeout=10), spans)
            received = stripped.wait_for(N_SPANS)
            bridge_capture.wait_for(N_SPANS)
        finally:
            col.stop()

    assert_same_tree(received, spans)
    for s in received:
        assert not CONTENT_KEYS & s.attributes.keys(), (s.name, sorted(s.attributes))
        assert not any("content" in k for k in s.attributes if k.startswith("inspect.")), s.attributes
        for event in s.events:
            assert not CONTENT_KEYS & event.attributes.keys(), (s.name, event)
    assert secret.encode() not in stripped.all_bytes()
    assert b"PLANTED-PROMPT" not in stripped.all_bytes()
    # What is not content survives.
    chat = next(s for s in received if s.name == "chat gpt-4o")
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o"
    assert chat.attributes["gen_ai.usage.input_tokens"] in (120, 121)
    assert [e.name for e in chat.events] == ["gen_ai.client.inference.operation.details"]
    assert chat.events[0].attributes == {"gen_ai.usage.output_tokens": 7}
    assert {s.attributes.get("inspect.sample.id") for s in received if s.name.startswith("sample")} == {0, 1}
    # ...and the full-content pipelines still carry it.
    assert secret.encode() in bridge_capture.all_bytes()


@pytest.mark.parametrize("outage", ["503", "down"])
def test_bridge_outage_loses_nothing(
    binaries: Binaries, jaeger: Jaeger, bridge_capture: OtlpCapture, tmp_path: Path, outage: str
) -> None:
    """Bridge returning 503 or not listening: the collector queues and retries, then delivers all."""
    service, secret = new_service()
    spans = make_eval_spans(service, secret)
    col = start_collector(binaries, jaeger, bridge_capture, tmp_path)
    try:
        if outage == "503":
            bridge_capture.fail(503)
        else:
            bridge_capture.stop()
        send(HttpSpanExporter(endpoint=col.otlp_http_traces_url, timeout=10), spans)
        # Other destinations are not held up by the broken one.
        jaeger.wait_for_spans(service, N_SPANS)
        if outage == "503":
            sent = set(expected_tree(spans))
            bridge_capture.wait_until(
                lambda c: sent <= {sid for _, sid in c.rejected_span_keys()}, what="rejected attempts"
            )
            assert bridge_capture.spans() == []
            bridge_capture.recover()
        else:
            time.sleep(1.5)  # several retry rounds against a closed port
            bridge_capture.start()  # same port again
        received = bridge_capture.wait_for(N_SPANS, timeout=30)
        assert_same_tree(received, spans)
    finally:
        col.stop()


def test_kill_9_with_queued_spans_then_restart_delivers(
    binaries: Binaries, jaeger: Jaeger, bridge_capture: OtlpCapture, tmp_path: Path
) -> None:
    """Spans acknowledged to the client while the bridge is down survive kill -9 (persistent queue)."""
    service, secret = new_service()
    spans = make_eval_spans(service, secret)
    bridge_capture.fail(503)
    col = start_collector(binaries, jaeger, bridge_capture, tmp_path)
    try:
        send(HttpSpanExporter(endpoint=col.otlp_http_traces_url, timeout=10), spans)
        col.kill()  # right after the collector said "accepted": nothing may be only in memory
        assert bridge_capture.spans() == []
        assert any(col.storage_dir.iterdir()), "file_storage wrote nothing"
        bridge_capture.recover()
        col.start()  # same ports, same storage directory
        received = bridge_capture.wait_for(N_SPANS, timeout=30)
        assert_same_tree(received, spans)
        jaeger.wait_for_spans(service, N_SPANS)
    finally:
        col.stop()
