"""The receiver's redaction: spans from any OTLP sender pass the same rules as the hook's.

``otel-bridge serve`` accepts spans from senders that are not the hook (another SDK, a
collector, a hand-written client), so what they send has not been through the hook's edge pass.
``scrub_request`` runs once per decoded request, before the spool: no secret reaches the
receiver's disk (spool, dead-letter file) nor any sink (span files, Weave, W&B), and the spool is
the faithful record of what the sinks get — a replay after a crash delivers the same bytes, even
if the environment changed meanwhile (docs/conventions.md, "The receiver").
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otel_bridge.config import environment, environment_probe, load_settings
from otel_bridge.redact import REDACTED, Redactor, is_secret_key

_redactor: Redactor | None = None


def _process_redactor() -> Redactor:
    """One per receiver process: its settings' patterns, its secret-named environment values."""
    global _redactor
    if _redactor is None:
        patterns = load_settings().content.redact_patterns
        _redactor = Redactor(environment, patterns=patterns, probe=environment_probe)
    return _redactor


def scrub_request(request: ExportTraceServiceRequest, redactor: Redactor | None = None) -> bool:
    """Redact ``request`` in place: span names, every string attribute (of the resource, spans,
    events and links, at any depth) and status messages; a secret-looking key's value whole.

    True when anything changed, so the receiver spools the bytes it received as they are
    otherwise (re-encoding every request would cost most of its accept time)."""
    redactor = redactor or _process_redactor()
    redactor.refresh()
    changed = False
    for rs in request.resource_spans:
        changed |= _scrub_kvs(rs.resource.attributes, redactor, False)
        for ss in rs.scope_spans:
            for span in ss.spans:
                name = redactor.text(span.name)
                if name != span.name:
                    span.name, changed = name, True
                changed |= _scrub_kvs(span.attributes, redactor, False)
                for event in span.events:
                    changed |= _scrub_kvs(event.attributes, redactor, False)
                for link in span.links:
                    changed |= _scrub_kvs(link.attributes, redactor, False)
                if span.status.message:
                    message = redactor.text(span.status.message)
                    if message != span.status.message:
                        span.status.message, changed = message, True
    return changed


def _scrub_kvs(kvs: Iterable[KeyValue], redactor: Redactor, secret: bool) -> bool:
    # string values, most of them, handled inline: this loop is most of the receiver's accept time
    changed = False
    text = redactor.text
    for kv in kvs:
        value = kv.value
        kind = value.WhichOneof("value")
        hidden = secret or is_secret_key(kv.key)
        if kind == "string_value":
            raw = value.string_value
            if raw:
                clean = REDACTED if hidden else text(raw)
                if clean != raw:
                    value.string_value, changed = clean, True
        elif kind == "array_value" or kind == "kvlist_value":
            changed |= _scrub_value(value, redactor, hidden)
    return changed


def _scrub_value(value: AnyValue, redactor: Redactor, secret: bool) -> bool:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text = value.string_value
        if text:
            clean = REDACTED if secret else redactor.text(text)
            if clean != text:
                value.string_value = clean
                return True
    elif kind == "array_value":
        return any([_scrub_value(item, redactor, secret) for item in value.array_value.values])
    elif kind == "kvlist_value":
        return _scrub_kvs(value.kvlist_value.values, redactor, secret)
    return False
