"""The standard OTLP exporter, made safe for the eval's exit path.

Batches are split so no request exceeds the size budget (collectors refuse 4 MiB+ gRPC
messages), failures are counted for one closing message, a dead endpoint is not retried for a
while (so exit is never held up by retry loops), and undelivered spans are kept on disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge.config import CoreSettings

_OVERHEAD = 256  # ids, times, names, framing per span


def span_size(span: ReadableSpan) -> int:
    """An upper bound of the span's encoded size (cheap: runs for every exported span)."""
    size = _OVERHEAD + len(span.name)
    for key, value in (span.attributes or {}).items():
        if isinstance(value, str):
            size += len(key) + (len(value) if value.isascii() else len(value.encode("utf-8")))
        else:
            size += len(key) + 16
    for event in span.events:
        size += 64 + sum(len(k) + len(str(v)) for k, v in (event.attributes or {}).items())
    return size


def split_by_size(spans: Sequence[ReadableSpan], max_bytes: int) -> Iterator[list[ReadableSpan]]:
    chunk: list[ReadableSpan] = []
    total = 0
    for span in spans:
        size = span_size(span)
        if chunk and total + size > max_bytes:
            yield chunk
            chunk, total = [], 0
        chunk.append(span)
        total += size
    if chunk:
        yield chunk


class _LastError(logging.Handler):
    """Captures the exporter's own log lines so the user gets one message, not a stream."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()[:300]


_CAPTURE = _LastError()
for _name in (
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
):
    _log = logging.getLogger(_name)
    _log.addHandler(_CAPTURE)
    _log.propagate = False


class ResilientExporter(SpanExporter):
    """Wraps an OTLP exporter: size-capped requests, counted failures, spill to disk."""

    def __init__(
        self,
        inner: SpanExporter,
        endpoint: str,
        max_bytes: int,
        spill: SpanExporter | None = None,
        cooldown_s: float = 30.0,
    ) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.spill = spill
        self.cooldown_s = cooldown_s
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._down_until = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = SpanExportResult.SUCCESS
        for chunk in split_by_size(spans, self.max_bytes):
            ok = False
            if time.monotonic() >= self._down_until:
                try:
                    ok = self.inner.export(chunk) == SpanExportResult.SUCCESS
                except Exception as exc:  # the exporter should not raise; be sure
                    _CAPTURE.last = f"{type(exc).__name__}: {exc}"
                if not ok:
                    self.last_error = _CAPTURE.last or "export failed"
                    self._down_until = time.monotonic() + self.cooldown_s
            if ok:
                self.delivered += len(chunk)
            else:
                self.failed += len(chunk)
                result = SpanExportResult.FAILURE
                if self.spill is not None:
                    self.spill.export(chunk)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()
        if self.spill is not None:
            self.spill.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def otlp_endpoint(core: CoreSettings) -> str:
    """The traces endpoint the standard exporter resolves from the same variables (for messages)."""
    if core.otlp_protocol == "grpc":
        return core.otlp_traces_endpoint or core.otlp_endpoint or "http://localhost:4317"
    if core.otlp_traces_endpoint:
        return core.otlp_traces_endpoint
    return (core.otlp_endpoint or "http://localhost:4318").rstrip("/") + "/v1/traces"


def make_otlp_exporter(core: CoreSettings) -> tuple[SpanExporter, str]:
    """The standard exporter for the configured protocol, and a description of its endpoint.

    The exporter reads its own OTEL_EXPORTER_OTLP_* variables; only the (capped) timeout is passed.
    """
    exporter: SpanExporter
    if core.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter(timeout=core.otlp_timeout_s)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter(timeout=core.otlp_timeout_s)
    return exporter, otlp_endpoint(core)
