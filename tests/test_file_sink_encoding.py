"""The receiver's file sink writes OTLP/JSON straight from records: what protobuf reads back is what was sent.

Oracles: the OTel SDK's own protobuf encoding of the spans it exported over real OTLP/HTTP
(``encode_spans``), read back through protobuf's own ``json_format`` (the ids turned from the
spec's hex into protobuf's base64 here, not by the bridge's decoder); and, for values the SDK
cannot produce (kvlists, None, ints past int64, NaN), protobuf's parse of the line equal to the
protobuf request the records build.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_bridge.records import SpanEvent, SpanRecord, read_span_file, records_to_json, to_request
from otel_bridge.sinks.file import FileRecordSink
from tests.test_receiver import receiver, wait_until


def _protobuf_read(line: str) -> ExportTraceServiceRequest:
    """protobuf's own JSON parse; OTLP/JSON ids are hex, protobuf's JSON bytes are base64."""
    doc = json.loads(line)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for item in (span, *span.get("links", ())):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest())


def _sdk_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "inspect-ai", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("inspect_ai", "1.0")
    attrs = {"inspect.run_id": "run-enc", "s": 'é"x\\ \n\t\x00\u2028 🧪', "i": -7, "big": 2**62}
    with tracer.start_as_current_span(
        "root", kind=SpanKind.SERVER, attributes={**attrs, "f": 0.1, "b": True, "l": ["a", "b"], "li": [1, 2]}
    ) as root:
        root.add_event("evt", {"score": 1.0, "k": "v"}, timestamp=123)
        root.add_event("bare", timestamp=124)
        for i in range(30):
            with tracer.start_as_current_span(
                f"child {i}", kind=SpanKind.CLIENT, links=[Link(root.get_span_context())], attributes=attrs
            ) as child:
                if i % 3 == 0:
                    child.set_status(Status(StatusCode.ERROR, f"boom {i}"))
                elif i % 3 == 1:
                    child.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _what_records_keep(request: ExportTraceServiceRequest) -> tuple[dict[bytes, Any], list[Any]]:
    """Spans by id with the fields records do not keep (scope, flags, link details) cleared."""
    spans, resources = {}, []
    for rs in request.resource_spans:
        resources.append(json_format.MessageToDict(rs.resource))
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.ClearField("flags")
                for link in span.links:
                    link.ClearField("flags")
                    link.ClearField("attributes")
                spans[span.span_id] = span
    return spans, resources


def test_spans_sent_over_otlp_are_written_as_protobuf_reads_them(tmp_path: Path) -> None:
    sent = _sdk_spans()
    files = FileRecordSink(tmp_path / "spans", prefix="received-enc-")
    with receiver(tmp_path, [files]) as server:
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/traces")
        for i in range(0, len(sent), 7):
            assert exporter.export(sent[i : i + 7]) == SpanExportResult.SUCCESS
        wait_until(lambda: files.written >= len(sent), what="every span in the file")
    (path,) = (tmp_path / "spans").glob("received-enc-*")
    written: dict[bytes, Any] = {}
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:  # not splitlines: U+2028 is in a value
        spans, resources = _what_records_keep(_protobuf_read(line))
        assert resources == [json_format.MessageToDict(encode_spans(sent).resource_spans[0].resource)]
        written.update(spans)
    expected, _ = _what_records_keep(encode_spans(sent))
    assert len(written) == len(sent) == 31
    assert written == expected
    # and the bridge's own reader (show, sync) sees every span, with the SDK's values
    by_id = {r.span_id: r for r in read_span_file(path)}
    for span in sent:
        record = by_id[f"{span.context.span_id:016x}"]
        assert (record.name, record.status_message) == (span.name, span.status.description or "")
        sdk_values = {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()}
        assert record.attributes == sdk_values


def test_values_only_records_hold_encode_as_protobuf_does() -> None:
    """kvlists, None, ints past int64, NaN/inf, hex bytes, several resources, empty fields."""
    odd = {
        "kv": {"a": 1, "b": {"c": [1.5, "x", None]}},
        "none": None,
        "huge": 2**70,
        "neg_huge": -(2**64),
        "nan": math.nan,
        "inf": -math.inf,
        "hex": "00ff",
        "empty": "",
        "zero": 0,
        "mixed": [True, 2, "3"],
    }
    records = [
        SpanRecord(
            trace_id=f"{t:032x}",
            span_id=f"{t * 10 + i + 1:016x}",
            parent_id=f"{t * 10:016x}" if i else None,
            name=f"span {i} ü",
            kind=i % 6,
            start_ns=10**18 + i,
            end_ns=10**18 + 2 * i,
            attributes=odd if i % 2 else {},
            events=(SpanEvent("e", 5, odd), SpanEvent("", 0, {})) if i == 1 else (),
            links=((f"{t:032x}", f"{t * 10 + 1:016x}"),) if i == 2 else (),
            status=("UNSET", "OK", "ERROR")[i % 3],
            status_message="why" if i % 3 == 2 else "",
            resource={"service.name": f"svc {t}"} if t < 3 else {},
        )
        for t in range(1, 5)
        for i in range(4)
    ]
    got = _protobuf_read(records_to_json(records))
    assert got == to_request(records)
