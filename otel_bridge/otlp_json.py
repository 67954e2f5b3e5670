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

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


class OtlpJsonError(ValueError):
    """A line or body that is not an OTLP/JSON trace request."""


def _walk_spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rs in doc.get("resourceSpans", []) or []:
        for ss in rs.get("scopeSpans", []) or []:
            for span in ss.get("spans", []) or []:
                out.append(span)
                out.extend(span.get("links", []) or [])
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
