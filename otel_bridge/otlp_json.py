"""OTLP/JSON encoding (the OTLP spec's JSON mapping) of trace export requests.

Span files hold one ``ExportTraceServiceRequest`` per line in this encoding, so any OTLP/JSON
tool can read them and ``otel-bridge sync`` can replay them byte-for-byte as protobuf.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_bridge.anyvalue import kvs_from_json, kvs_to_json

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


class OtlpJsonError(ValueError):
    """A line or body that is not an OTLP/JSON trace request."""


def _items(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OtlpJsonError("resourceSpans, scopeSpans, spans and links must be lists of objects")
    return value


def _walk_spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rs in _items(doc.get("resourceSpans")):
        for ss in _items(rs.get("scopeSpans")):
            for span in _items(ss.get("spans")):
                out.append(span)
                out.extend(_items(span.get("links")))
    return out


def request_to_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    for item in _walk_spans(doc):
        for key in _ID_KEYS:
            if key in item:
                item[key] = base64.b64decode(item[key]).hex()
    return doc


def request_to_json(request: ExportTraceServiceRequest) -> str:
    return json.dumps(request_to_dict(request), separators=(",", ":"))


def dict_to_request(doc: Any) -> ExportTraceServiceRequest:
    if not isinstance(doc, dict):
        raise OtlpJsonError("expected a JSON object with resourceSpans")
    for item in _walk_spans(doc):
        for key in _ID_KEYS:
            value = item.get(key)
            if isinstance(value, str) and value:
                try:
                    item[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise OtlpJsonError(f"{key} {value!r} is not hex") from exc
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpJsonError(str(exc)) from exc
    return request


def json_to_request(text: str | bytes) -> ExportTraceServiceRequest:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OtlpJsonError(f"not JSON: {exc}") from exc
    return dict_to_request(doc)


# --- direct encoding of SDK spans ------------------------------------------------------------
# MessageToDict costs ~1 ms a span; the file sink encodes every span, so it writes the OTLP/JSON
# text straight from the SDK objects (equivalence with the protobuf path is tested). It builds
# strings only, never a dict tree: a batch of 512 spans as dicts is ~40,000 live containers,
# enough to trigger the garbage collector's full passes over the eval's whole heap.

_str = json.encoder.encode_basestring  # JSON string, non-ASCII kept


def _flags(context: Any) -> str:
    """OTLP span flags: 'is-remote is known' (0x100), plus 0x200 when the context is remote."""
    return "768" if context is not None and context.is_remote else "256"


def span_json(
    trace_id: str,
    span_id: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    parent_id: str | None,
    flags: str | None,
    attributes: Any,
    events: Any,
    links: Any,
    status_code: int,
    status_message: str,
) -> str:
    """One OTLP/JSON span from its parts (ids as hex): the one rule for SDK spans and records.

    ``events``: (time ns, name, attributes); ``links``: (trace id, span id, flags or None,
    attributes). ``flags`` None leaves the field out (records do not keep flags).
    """
    parts = [
        f'{{"traceId":"{trace_id}","spanId":"{span_id}","name":{_str(name)},'
        f'"kind":{kind},"startTimeUnixNano":"{start_ns}","endTimeUnixNano":"{end_ns}"'
    ]
    if parent_id:
        parts.append(f',"parentSpanId":"{parent_id}"')
    if flags is not None:
        parts.append(',"flags":' + flags)
    if attributes:
        parts.append(',"attributes":' + kvs_to_json(attributes))
    if events:
        out = []
        for time_ns, event_name, event_attrs in events:
            attrs = ',"attributes":' + kvs_to_json(event_attrs) if event_attrs else ""
            out.append(f'{{"timeUnixNano":"{time_ns}","name":{_str(event_name)}{attrs}}}')
        parts.append(',"events":[' + ",".join(out) + "]")
    if links:
        out = []
        for link_trace, link_span, link_flags, link_attrs in links:
            attrs = ',"attributes":' + kvs_to_json(link_attrs) if link_attrs else ""
            flag = f',"flags":{link_flags}' if link_flags is not None else ""
            out.append(f'{{"traceId":"{link_trace}","spanId":"{link_span}"{flag}{attrs}}}')
        parts.append(',"links":[' + ",".join(out) + "]")
    status = []
    if status_code:
        status.append(f'"code":{status_code}')
    if status_message:
        status.append('"message":' + _str(status_message))
    parts.append(',"status":{' + ",".join(status) + "}}")
    return "".join(parts)


def _span_json(span: Any) -> str:
    ctx = span.context
    return span_json(
        f"{ctx.trace_id:032x}",
        f"{ctx.span_id:016x}",
        span.name,
        span.kind.value + 1,
        span.start_time or 0,
        span.end_time or 0,
        f"{span.parent.span_id:016x}" if span.parent is not None else None,
        _flags(span.parent),
        span.attributes,
        [(e.timestamp, e.name, e.attributes) for e in span.events],
        [
            (f"{ln.context.trace_id:032x}", f"{ln.context.span_id:016x}", _flags(ln.context), ln.attributes)
            for ln in span.links
        ],
        span.status.status_code.value,
        span.status.description or "",
    )


def request_json(resources: Any) -> str:
    """An ExportTraceServiceRequest line from (resource attributes, [(scope or None, [span json])]).

    A scope is (name, version); None leaves the scope out (records do not keep it).
    """
    resource_spans = []
    for attributes, scopes in resources:
        scope_spans = []
        for scope, items in scopes:
            head = ""
            if scope is not None:
                name, version = scope
                version_json = ',"version":' + _str(version) if version else ""
                head = f'"scope":{{"name":{_str(name)}{version_json}}},'
            scope_spans.append("{" + head + '"spans":[' + ",".join(items) + "]}")
        resource_spans.append(
            '{"resource":{"attributes":'
            + kvs_to_json(attributes or {})
            + '},"scopeSpans":['
            + ",".join(scope_spans)
            + "]}"
        )
    return '{"resourceSpans":[' + ",".join(resource_spans) + "]}"


def spans_to_json(spans: Any) -> str:
    """SDK ReadableSpans → one OTLP/JSON ExportTraceServiceRequest (a span-file line)."""
    groups: dict[int, tuple[Any, dict[tuple[str, str], list[str]]]] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope
        key = (scope.name if scope else "", (scope.version or "") if scope else "")
        groups.setdefault(id(resource), (resource, {}))[1].setdefault(key, []).append(_span_json(span))
    return request_json((resource.attributes, list(scopes.items())) for resource, scopes in groups.values())


# --- and back: SDK spans from a span-file line ---------------------------------------------
# The OTLP worker process exports what the eval's process sent it with the standard exporter,
# which takes SDK spans; the round trip is exact (tested against the protobuf encoding).


def readable_spans(text: str | bytes) -> list[Any]:
    """One span-file line (as written by ``spans_to_json``) → SDK ReadableSpans."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    def context(item: dict[str, Any], trace_id: str, span_id: str) -> SpanContext:
        flags = int(item.get("flags", 0))
        return SpanContext(int(trace_id, 16), int(span_id, 16), bool(flags & 0x200), TraceFlags(1))

    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OtlpJsonError(f"not JSON: {exc}") from exc
    out: list[Any] = []
    try:
        for rs in _items(doc.get("resourceSpans")):
            resource = Resource(kvs_from_json(rs.get("resource", {}).get("attributes")))
            for ss in _items(rs.get("scopeSpans")):
                scope_doc = ss.get("scope", {})
                scope = InstrumentationScope(scope_doc.get("name", ""), scope_doc.get("version") or None)
                for s in _items(ss.get("spans")):
                    parent_id = s.get("parentSpanId")
                    status = s.get("status", {})
                    out.append(
                        ReadableSpan(
                            name=s["name"],
                            context=SpanContext(
                                int(s["traceId"], 16), int(s["spanId"], 16), False, TraceFlags(1)
                            ),
                            parent=context(s, s["traceId"], parent_id) if parent_id else None,
                            resource=resource,
                            attributes=kvs_from_json(s.get("attributes")),
                            events=[
                                Event(e["name"], kvs_from_json(e.get("attributes")), int(e["timeUnixNano"]))
                                for e in s.get("events", [])
                            ],
                            links=[
                                Link(
                                    context(ln, ln["traceId"], ln["spanId"]),
                                    kvs_from_json(ln.get("attributes")),
                                )
                                for ln in s.get("links", [])
                            ],
                            kind=SpanKind(int(s.get("kind", 1)) - 1),
                            status=Status(StatusCode(int(status.get("code", 0))), status.get("message")),
                            start_time=int(s["startTimeUnixNano"]),
                            end_time=int(s["endTimeUnixNano"]),
                            instrumentation_scope=scope,
                        )
                    )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise OtlpJsonError(f"not a span-file line: {exc}") from exc
    return out
