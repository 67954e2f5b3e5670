"""The span-file encoding is the OTLP spec's JSON mapping, identical to the protobuf path."""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_bridge.otlp_json import (
    OtlpJsonError,
    json_to_request,
    readable_spans,
    request_to_json,
    spans_to_json,
)
from otel_bridge.records import from_readable, from_request


def _spans() -> list:  # type: ignore[type-arg]
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "t", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope", "1.2")
    with tracer.start_as_current_span(
        "root",
        kind=SpanKind.SERVER,
        attributes={
            "s": 'é"x\\ \n\t\x00\u2028 🧪 </script>',
            "i": 7,
            "big": 2**62,
            "neg": -3,
            "f": 0.5,
            "tiny": 1e-300,
            "huge": 1.5e300,
            "b": True,
            "no": False,
            "l": ["a", "b"],
            "li": [1, 2],
            "lf": [0.25, -1.0],
            "lb": [True, False],
        },
    ) as root:
        root.add_event("evt", {"gen_ai.evaluation.score.value": 1.0, "k": "v"}, timestamp=123)
        with tracer.start_as_current_span(
            "child", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"why": "link"})]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("plain"):
            pass
    other = provider.get_tracer("other-scope")  # no version: a second scope in the same request
    with other.start_as_current_span("ünïcode name", attributes={"k": ""}):
        pass
    return list(memory.get_finished_spans())


def test_direct_encoding_equals_the_protobuf_encoding() -> None:
    spans = _spans()
    assert json_to_request(spans_to_json(spans)) == encode_spans(spans)
    assert json.loads(spans_to_json(spans))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == (
        f"{spans[0].context.trace_id:032x}"
    )


def test_span_file_lines_decode_back_to_the_same_sdk_spans() -> None:
    """The OTLP worker re-exports span-file lines with the standard exporter: exact round trip."""
    spans = _spans()
    again = readable_spans(spans_to_json(spans))
    assert encode_spans(again) == encode_spans(spans)
    (root,) = [s for s in again if s.name == "root"]
    assert root.attributes["l"] == ("a", "b")


def test_round_trip_records_equal_sdk_records() -> None:
    spans = _spans()
    via_json = from_request(json_to_request(request_to_json(encode_spans(spans))))
    direct = [from_readable(s) for s in spans]
    assert via_json == direct


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"[]",
        b"{",
        b'{"resourceSpans": 3}',
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
    ],
)
def test_malformed_input_is_a_clear_error(bad: bytes) -> None:
    with pytest.raises(OtlpJsonError):
        json_to_request(bad)
