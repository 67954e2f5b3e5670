"""OTLP trace requests as the receiver takes them: decoding, the id rules, limits and outcomes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_bridge.config import Settings
from otel_bridge.otlp_json import json_to_request

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


class BadRequest(ValueError):
    """The body is not an OTLP trace export request (→ 400 / INVALID_ARGUMENT)."""


class Unavailable(RuntimeError):
    """Retry later: the spool is full or the receiver is stopping (→ 503 / UNAVAILABLE)."""


@dataclass(frozen=True)
class ReceiverOptions:
    """Limits and policies; ``from_settings`` reads the INSPECT_OTEL_RECEIVER_* variables."""

    token: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    stale_after_s: float = 3600.0
    spool_max_bytes: int = 1024 * 1024 * 1024
    dedup_spans: int = 200_000
    retry_for_s: float = 300.0
    drain_timeout_s: float = 30.0
    flush_timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ReceiverOptions:
        r = settings.receiver
        base = cls(
            token=r.token,
            max_body_bytes=r.max_body_bytes,
            stale_after_s=r.stale_after_s,
            spool_max_bytes=r.spool_max_bytes,
            dedup_spans=r.dedup_spans,
        )
        return replace(base, **overrides)


@dataclass(frozen=True)
class Outcome:
    """What an accepted request did: ``rejected_spans``/``error_message`` become partial_success."""

    spooled_spans: int = 0
    duplicate_spans: int = 0
    rejected_spans: int = 0
    error_message: str = ""

    def response(self) -> ExportTraceServiceResponse:
        resp = ExportTraceServiceResponse()
        if self.rejected_spans or self.error_message:
            resp.partial_success.rejected_spans = self.rejected_spans
            resp.partial_success.error_message = self.error_message
        return resp


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # DecodeError, RecursionError...: all mean "not this message"
        raise BadRequest(f"body is not a protobuf ExportTraceServiceRequest ({exc})") from exc
    return request


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        return json_to_request(body)
    except Exception as exc:  # OtlpJsonError, RecursionError, shapes json_format cannot take
        raise BadRequest(f"body is not an OTLP/JSON ExportTraceServiceRequest ({exc})") from exc


def span_problem(span: Span) -> str | None:
    """Why a span can never be delivered anywhere (the OTLP id rules), or None."""
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return f"trace_id must be 16 non-zero bytes (got {len(span.trace_id)})"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return f"span_id must be 8 non-zero bytes (got {len(span.span_id)})"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes (got {len(span.parent_span_id)})"
    return None


def span_key(trace_id: str, span_id: str) -> bytes:
    return bytes.fromhex(trace_id) + bytes.fromhex(span_id)


def subset(request: ExportTraceServiceRequest, keep: set[bytes]) -> ExportTraceServiceRequest:
    """The spans of ``request`` whose key is in ``keep`` (first copy only), resources and scopes kept."""
    out = ExportTraceServiceRequest()
    taken: set[bytes] = set()
    for rs in request.resource_spans:
        new_rs = None
        for ss in rs.scope_spans:
            new_ss = None
            for span in ss.spans:
                key = span.trace_id + span.span_id
                if key not in keep or key in taken:
                    continue
                taken.add(key)
                if new_rs is None:
                    new_rs = out.resource_spans.add()
                    new_rs.resource.CopyFrom(rs.resource)
                    new_rs.schema_url = rs.schema_url
                if new_ss is None:
                    new_ss = new_rs.scope_spans.add()
                    new_ss.scope.CopyFrom(ss.scope)
                    new_ss.schema_url = ss.schema_url
                new_ss.spans.append(span)
    return out


def summarise(reasons: list[str], limit: int = 3) -> str:
    unique = list(dict.fromkeys(reasons))
    text = "; ".join(unique[:limit])
    return text + (f"; and {len(unique) - limit} more" if len(unique) > limit else "")
