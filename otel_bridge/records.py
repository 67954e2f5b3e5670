"""A plain, backend-neutral span record: what every translator consumes.

In-process sinks see SDK ``ReadableSpan``s, the receiver sees OTLP protobuf, ``sync`` reads
OTLP/JSON files; all three become ``SpanRecord``s so one pure translation serves them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_bridge.anyvalue import kvs_from_json, kvs_from_proto, kvs_to_proto
from otel_bridge.otlp_json import OtlpJsonError, request_json, span_json

STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}
STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: tuple[SpanEvent, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    status: str = "UNSET"
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attributes.get(key, default)

    def json_attr(self, key: str, default: Any = None) -> Any:
        """Attributes that hold JSON documents, decoded (the raw string if it is not JSON)."""
        raw = self.attributes.get(key)
        if raw is None:
            return default
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            return raw


def from_request(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    for rs in request.resource_spans:
        resource = kvs_from_proto(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    SpanRecord(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        name=s.name,
                        kind=int(s.kind),
                        start_ns=int(s.start_time_unix_nano),
                        end_ns=int(s.end_time_unix_nano),
                        attributes=kvs_from_proto(s.attributes),
                        events=tuple(
                            SpanEvent(e.name, int(e.time_unix_nano), kvs_from_proto(e.attributes))
                            for e in s.events
                        ),
                        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in s.links),
                        status=STATUS_NAMES.get(int(s.status.code), "UNSET"),
                        status_message=s.status.message,
                        resource=resource,
                    )
                )
    return out


def from_readable(span: Any) -> SpanRecord:
    """An SDK ReadableSpan → SpanRecord (without protobuf round trip)."""
    ctx = span.context
    parent = span.parent
    return SpanRecord(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name,
        kind=int(span.kind.value) + 1,  # SDK enum starts at INTERNAL=0; OTLP at INTERNAL=1
        start_ns=int(span.start_time or 0),
        end_ns=int(span.end_time or 0),
        attributes={k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
        events=tuple(SpanEvent(e.name, int(e.timestamp), dict(e.attributes or {})) for e in span.events),
        links=tuple((f"{ln.context.trace_id:032x}", f"{ln.context.span_id:016x}") for ln in span.links),
        status=span.status.status_code.name,
        status_message=span.status.description or "",
        resource=dict(span.resource.attributes),
    )


def to_request(records: Sequence[SpanRecord]) -> ExportTraceServiceRequest:
    """Inverse of ``from_request`` (bytes attribute values stay hex strings; scope is not kept)."""
    request = ExportTraceServiceRequest()
    by_resource: dict[str, Any] = {}
    for r in records:
        rkey = json.dumps(r.resource, sort_keys=True, default=str)
        scope_spans = by_resource.get(rkey)
        if scope_spans is None:
            rs = request.resource_spans.add()
            rs.resource.attributes.extend(kvs_to_proto(r.resource))
            scope_spans = rs.scope_spans.add()
            by_resource[rkey] = scope_spans
        span = Span(
            trace_id=bytes.fromhex(r.trace_id),
            span_id=bytes.fromhex(r.span_id),
            parent_span_id=bytes.fromhex(r.parent_id) if r.parent_id else b"",
            name=r.name,
            kind=r.kind,  # type: ignore[arg-type]
            start_time_unix_nano=r.start_ns,
            end_time_unix_nano=r.end_ns,
            status=Status(code=STATUS_CODES.get(r.status, 0), message=r.status_message),  # type: ignore[arg-type]
        )
        span.attributes.extend(kvs_to_proto(r.attributes))
        for e in r.events:
            event = span.events.add()
            event.name = e.name
            event.time_unix_nano = e.time_ns
            event.attributes.extend(kvs_to_proto(e.attributes))
        for trace_id, span_id in r.links:
            link = span.links.add()
            link.trace_id = bytes.fromhex(trace_id)
            link.span_id = bytes.fromhex(span_id)
        scope_spans.spans.append(span)
    return request


def records_to_json(records: Sequence[SpanRecord]) -> str:
    """``request_to_json(to_request(records))`` without protobuf: one span-file line, 8–12× faster.

    The receiver's file sink writes every span; protobuf's JSON conversion was its limit. The
    text rule is ``otlp_json.span_json``, shared with the hook's span files.
    """
    by_resource: dict[str, tuple[dict[str, Any], list[str]]] = {}
    keys: dict[int, str] = {}  # records of one request share their resource dict
    for r in records:
        rkey = keys.get(id(r.resource))
        if rkey is None:
            rkey = keys[id(r.resource)] = json.dumps(r.resource, sort_keys=True, default=str)
        items = by_resource.setdefault(rkey, (r.resource, []))[1]
        items.append(
            span_json(
                r.trace_id,
                r.span_id,
                r.name,
                r.kind,
                r.start_ns,
                r.end_ns,
                r.parent_id,
                None,
                r.attributes,
                [(e.time_ns, e.name, e.attributes) for e in r.events],
                [(trace_id, span_id, None, None) for trace_id, span_id in r.links],
                STATUS_CODES.get(r.status, 0),
                r.status_message,
            )
        )
    return request_json((resource, [(None, items)]) for resource, items in by_resource.values())


@dataclass
class FileReadReport:
    """What reading a span file found, including what it could not read."""

    path: Path
    requests: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    truncated_tail: bool = False


class NotASpanFile(ValueError):
    """The file is not an OTLP/JSON span file at all."""


def _kind(value: Any) -> int:
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return int(Span.SpanKind.Value(value))
    return int(value or 0)


def _status_code(value: Any) -> int:
    if isinstance(value, str) and not value.isdigit():
        return int(Status.StatusCode.Value(value))
    return int(value or 0)


def _hex_id(value: Any) -> str:
    return bytes.fromhex(value or "").hex()


def from_json_doc(doc: Any) -> list[SpanRecord]:
    """One OTLP/JSON request (a span-file line, decoded) → records, equal to ``from_request``'s.

    Straight from the JSON, without protobuf: parsing into protobuf was 90% of reading a file.
    """
    if not isinstance(doc, dict):
        raise OtlpJsonError("expected a JSON object with resourceSpans")
    out: list[SpanRecord] = []
    try:
        for rs in _items(doc.get("resourceSpans")):
            resource = kvs_from_json((rs.get("resource") or {}).get("attributes"), record=True)
            for ss in _items(rs.get("scopeSpans")):
                for s in _items(ss.get("spans")):
                    status = s.get("status") or {}
                    out.append(
                        SpanRecord(
                            trace_id=_hex_id(s.get("traceId")),
                            span_id=_hex_id(s.get("spanId")),
                            parent_id=_hex_id(s.get("parentSpanId")) or None,
                            name=str(s.get("name", "")),
                            kind=_kind(s.get("kind")),
                            start_ns=int(s.get("startTimeUnixNano") or 0),
                            end_ns=int(s.get("endTimeUnixNano") or 0),
                            attributes=kvs_from_json(s.get("attributes"), record=True),
                            events=tuple(
                                SpanEvent(
                                    str(e.get("name", "")),
                                    int(e.get("timeUnixNano") or 0),
                                    kvs_from_json(e.get("attributes"), record=True),
                                )
                                for e in _items(s.get("events"))
                            ),
                            links=tuple(
                                (_hex_id(ln.get("traceId")), _hex_id(ln.get("spanId")))
                                for ln in _items(s.get("links"))
                            ),
                            status=STATUS_NAMES.get(_status_code(status.get("code")), "UNSET"),
                            status_message=str(status.get("message", "")),
                            resource=resource,
                        )
                    )
    except OtlpJsonError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise OtlpJsonError(f"not an OTLP/JSON trace request: {exc}") from exc
    return out


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OtlpJsonError("resourceSpans, scopeSpans, spans, events and links must be lists of objects")
    return value


def records_from_line(raw: bytes) -> list[SpanRecord]:
    """One OTLP/JSON line (a span file's, the spool's, a worker feed's) → its records, no protobuf."""
    return _decode_line(raw) or []


def _decode_line(raw: bytes) -> list[SpanRecord] | None:
    """A span-file line → its records (None: a valid request without resourceSpans)."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OtlpJsonError(f"not JSON: {exc}") from exc
    records = from_json_doc(doc)
    return records if records or doc.get("resourceSpans") else None


def read_span_file(path: Path, report: FileReadReport | None = None) -> Iterator[SpanRecord]:
    """Every span in an OTLP/JSON-lines file, read a line at a time; damaged lines are reported.

    Memory is one line (one export batch), whatever the file's size. A file whose first
    non-empty line is not an OTLP/JSON trace request is not a span file; a damaged last line
    with no newline after it is a cut-short tail (the writer was killed), any other a bad line.
    """
    report = report or FileReadReport(path)
    good_seen = False
    pending: tuple[int, str] | None = None  # a damaged line: bad, unless it is the cut-short tail
    last = b""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            last = raw
            if not raw.strip():
                continue
            if pending is not None:
                report.bad_lines.append(pending)
                pending = None
            try:
                records = _decode_line(raw)
                if records is None and not good_seen:
                    raise OtlpJsonError("no resourceSpans")
            except OtlpJsonError as exc:
                if not good_seen and not report.bad_lines:
                    if _looks_like_otlp(raw):
                        report.bad_lines.append((number, str(exc)))
                        continue
                    raise NotASpanFile(
                        f"{path} is not an OTLP/JSON span file (line {number}: {exc})"
                    ) from exc
                pending = (number, str(exc))
                continue
            good_seen = True
            report.requests += 1
            yield from records or ()
    if pending is not None:
        if last.endswith(b"\n"):
            report.bad_lines.append(pending)
        else:
            report.truncated_tail = True


def _looks_like_otlp(raw: bytes) -> bool:
    return raw.lstrip().startswith(b'{"resourceSpans"')
