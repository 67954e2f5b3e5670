"""A real OTLP trace receiver for tests: OTLP/HTTP (protobuf and JSON, gzip) and OTLP/gRPC on loopback.

Why this exists: the end-to-end tests need a destination that speaks the real wire protocol the way a
backend does (the collector's ``otlp_http``/``otlp_grpc`` exporters, the Python SDK exporters), keeps
everything it was sent for exact assertions (decoded messages *and* raw bytes, so a test can prove a
prompt never left the collector), and can play an outage (503 / UNAVAILABLE) or demand a bearer token,
so retries, persistent queues and authentication are tested against real clients rather than mocks.

Usage::

    with OtlpCapture() as cap:
        ...  # point an exporter at cap.http_endpoint (base URL) or cap.grpc_endpoint (host:port)
        spans = cap.wait_for(3, timeout=10)
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest
ExportTraceServiceResponse = trace_service_pb2.ExportTraceServiceResponse

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def any_value(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to the plain Python value tests compare against."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_dict(attrs: Iterable[KeyValue]) -> dict[str, Any]:
    """Turn a repeated ``KeyValue`` field into a dict (the shape tests assert on)."""
    return {kv.key: any_value(kv.value) for kv in attrs}


@dataclass(frozen=True)
class SpanEvent:
    """A span event, decoded."""

    name: str
    attributes: dict[str, Any]
    time_unix_nano: int


@dataclass(frozen=True)
class CapturedSpan:
    """One span as received, flattened with its resource and scope (ids as lowercase hex)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    events: list[SpanEvent]
    status_code: int  # opentelemetry.proto.trace.v1.Status.StatusCode
    status_message: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    proto: Span = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        """Identity of a span: a retried export delivers the same key twice."""
        return (self.trace_id, self.span_id)


@dataclass
class CapturedRequest:
    """One export attempt as it arrived, including rejected ones (outage or bad token)."""

    transport: str  # "http" or "grpc"
    headers: dict[str, str]  # lowercase names
    content_type: str
    raw: bytes  # bytes on the wire (still gzip-compressed if the client compressed them)
    body: bytes  # decompressed payload (protobuf or JSON text)
    request: ExportTraceServiceRequest | None  # None when the body could not be decoded
    accepted: bool
    received_at: float = field(default_factory=time.time)

    @property
    def span_count(self) -> int:
        """Spans in this request (0 if it did not decode)."""
        if self.request is None:
            return 0
        return sum(len(ss.spans) for rs in self.request.resource_spans for ss in rs.scope_spans)


def flatten(request: ExportTraceServiceRequest) -> list[CapturedSpan]:
    """Flatten an export request into spans carrying their resource attributes."""
    out: list[CapturedSpan] = []
    for rs in request.resource_spans:
        resource = attributes_dict(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    CapturedSpan(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        kind=s.kind,
                        attributes=attributes_dict(s.attributes),
                        resource=resource,
                        scope=ss.scope.name,
                        events=[
                            SpanEvent(e.name, attributes_dict(e.attributes), e.time_unix_nano)
                            for e in s.events
                        ],
                        status_code=s.status.code,
                        status_message=s.status.message,
                        start_time_unix_nano=s.start_time_unix_nano,
                        end_time_unix_nano=s.end_time_unix_nano,
                        proto=s,
                    )
                )
    return out


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes ids as hex, protobuf's JSON mapping expects base64 for bytes fields."""
    if isinstance(node, dict):
        return {
            k: (
                base64.b64encode(bytes.fromhex(v)).decode()
                if k in _ID_KEYS and isinstance(v, str)
                else _hex_ids_to_base64(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """Decode an OTLP/JSON trace export body (hex ids, camelCase or snake_case keys)."""
    msg = ExportTraceServiceRequest()
    json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), msg, ignore_unknown_fields=True)
    return msg


class _Rejection(Exception):
    def __init__(self, http_status: int, grpc_code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.grpc_code = grpc_code


class OtlpCapture:
    """OTLP/HTTP + OTLP/gRPC trace receiver on 127.0.0.1 that records every export attempt.

    ``token``: when set, requests must carry ``authorization: Bearer <token>`` (401 / UNAUTHENTICATED
    otherwise); when None, any (or no, or an empty ``Bearer ``) authorization header is accepted.
    ``http_port``/``grpc_port``: 0 picks free ports; after the first ``start()`` the chosen ports are
    kept, so ``stop()`` then ``start()`` brings the destination back at the same address.
    """

    def __init__(self, *, token: str | None = None, http_port: int = 0, grpc_port: int = 0) -> None:
        self.token = token
        self._http_port = http_port
        self._grpc_port = grpc_port
        self._lock = threading.Condition()
        self._received: list[CapturedRequest] = []
        self._fail_status: int | None = None
        self._fail_until: float | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> OtlpCapture:
        """Start both servers (idempotent)."""
        if self._http is None:
            self._http = ThreadingHTTPServer(("127.0.0.1", self._http_port), _make_handler(self))
            self._http.daemon_threads = True
            self._http_port = self._http.server_address[1]
            self._http_thread = threading.Thread(
                target=self._http.serve_forever, name="otlp-capture-http", daemon=True
            )
            self._http_thread.start()
        if self._grpc is None:
            server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=8),
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.so_reuseport", 0),
                ],
            )
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
            port = server.add_insecure_port(f"127.0.0.1:{self._grpc_port}")
            if port == 0:
                raise OSError(f"cannot bind the OTLP/gRPC capture to 127.0.0.1:{self._grpc_port}")
            self._grpc_port = port
            server.start()
            self._grpc = server
        return self

    def stop(self) -> None:
        """Stop both servers; recorded requests are kept (a stopped destination refuses connections)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=0).wait()
            self._grpc = None

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return self._http is not None

    def __enter__(self) -> OtlpCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def http_port(self) -> int:
        """Port of the OTLP/HTTP server (0 before the first start)."""
        return self._http_port

    @property
    def grpc_port(self) -> int:
        """Port of the OTLP/gRPC server (0 before the first start)."""
        return self._grpc_port

    @property
    def http_endpoint(self) -> str:
        """Base URL, as an OTLP/HTTP exporter's ``endpoint`` (``/v1/traces`` is appended by it)."""
        return f"http://127.0.0.1:{self._http_port}"

    @property
    def http_traces_url(self) -> str:
        """Full traces URL, as the Python SDK's ``OTLPSpanExporter(endpoint=...)`` wants it."""
        return f"{self.http_endpoint}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        """``host:port`` for an OTLP/gRPC exporter (plaintext)."""
        return f"127.0.0.1:{self._grpc_port}"

    # -- failure injection -------------------------------------------------------------------------
    def fail(self, http_status: int = 503, duration: float | None = None) -> None:
        """Reject every export (HTTP ``http_status``, gRPC UNAVAILABLE) until ``recover()``/``duration``."""
        with self._lock:
            self._fail_status = http_status
            self._fail_until = None if duration is None else time.monotonic() + duration

    def recover(self) -> None:
        """Accept exports again."""
        with self._lock:
            self._fail_status = None
            self._fail_until = None

    @property
    def failing(self) -> bool:
        """Whether exports are currently rejected."""
        with self._lock:
            return self._failing_locked()

    def _failing_locked(self) -> bool:
        if self._fail_status is None:
            return False
        if self._fail_until is not None and time.monotonic() >= self._fail_until:
            self._fail_status = None
            self._fail_until = None
            return False
        return True

    # -- recorded data -----------------------------------------------------------------------------
    @property
    def received(self) -> list[CapturedRequest]:
        """Every export attempt, accepted or not, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def requests(self) -> list[ExportTraceServiceRequest]:
        """Decoded requests that were accepted (answered with success)."""
        with self._lock:
            return [r.request for r in self._received if r.accepted and r.request is not None]

    def spans(self) -> list[CapturedSpan]:
        """All accepted spans in arrival order, duplicates from retries included."""
        return [s for req in self.requests for s in flatten(req)]

    def unique_spans(self) -> list[CapturedSpan]:
        """Accepted spans, first copy of each (trace_id, span_id) only."""
        seen: dict[tuple[str, str], CapturedSpan] = {}
        for s in self.spans():
            seen.setdefault(s.key, s)
        return list(seen.values())

    def rejected_span_keys(self) -> set[tuple[str, str]]:
        """Spans that arrived in rejected attempts (proves the sender tried while we were down)."""
        return {
            s.key
            for r in self.received
            if not r.accepted and r.request is not None
            for s in flatten(r.request)
        }

    def all_bytes(self) -> bytes:
        """Every decompressed body received, accepted or not, concatenated (for byte-level checks)."""
        with self._lock:
            return b"".join(r.body for r in self._received)

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self._received.clear()

    def wait_for(self, n_spans: int, timeout: float = 30.0) -> list[CapturedSpan]:
        """Block until at least ``n_spans`` distinct spans were accepted; return the unique spans."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                spans = self._unique_locked()
                if len(spans) >= n_spans:
                    return spans
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"OtlpCapture: {len(spans)} of {n_spans} spans after {timeout:.1f} s "
                        f"({len(self._received)} export attempts)"
                    )
                self._lock.wait(min(remaining, 0.2))

    def wait_until(
        self, predicate: Callable[[OtlpCapture], bool], timeout: float = 30.0, what: str = "condition"
    ) -> None:
        """Block until ``predicate(self)`` is true (checked on every request and every 0.2 s)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"OtlpCapture: {what} not met after {timeout:.1f} s")
            with self._lock:
                self._lock.wait(0.2)

    def _unique_locked(self) -> list[CapturedSpan]:
        seen: dict[tuple[str, str], CapturedSpan] = {}
        for r in self._received:
            if r.accepted and r.request is not None:
                for s in flatten(r.request):
                    seen.setdefault(s.key, s)
        return list(seen.values())

    # -- request handling (shared by both transports) -------------------------------------------
    def _handle(
        self,
        transport: str,
        headers: dict[str, str],
        content_type: str,
        raw: bytes,
        body: bytes,
        request: ExportTraceServiceRequest | None,
    ) -> None:
        """Record one attempt; raise _Rejection when it must be refused."""
        rejection: _Rejection | None = None
        if self.token is not None and headers.get("authorization", "") != f"Bearer {self.token}":
            rejection = _Rejection(401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        with self._lock:
            if rejection is None and self._failing_locked():
                status = self._fail_status or 503
                rejection = _Rejection(status, grpc.StatusCode.UNAVAILABLE, "capture is failing on purpose")
            if rejection is None and request is None:
                rejection = _Rejection(400, grpc.StatusCode.INVALID_ARGUMENT, "undecodable body")
            self._received.append(
                CapturedRequest(transport, headers, content_type, raw, body, request, rejection is None)
            )
            self._lock.notify_all()
        if rejection is not None:
            raise rejection


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, capture: OtlpCapture) -> None:
        self._capture = capture

    def Export(  # noqa: N802 - name fixed by the generated service
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        headers = {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}
        body = request.SerializeToString()
        try:
            self._capture._handle("grpc", headers, "application/grpc", body, body, request)
        except _Rejection as rej:
            context.abort(rej.grpc_code, str(rej))
        return ExportTraceServiceResponse()


def _make_handler(capture: OtlpCapture) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # keep pytest output clean

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            self._reply(200 if self.path in ("/", "/healthz") else 404, b"ok", "text/plain")

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            raw = self._read_body()
            if self.path.split("?")[0] != "/v1/traces":
                self._reply(404, b"not found", "text/plain")
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            encoding = headers.get("content-encoding", "").lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(raw)
                elif encoding == "deflate":
                    body = zlib.decompress(raw)
                elif encoding in ("", "identity"):
                    body = raw
                else:
                    self._reply(415, f"unsupported content-encoding {encoding}".encode(), "text/plain")
                    return
            except (OSError, zlib.error):
                self._reply(400, b"bad compressed body", "text/plain")
                return
            is_json = content_type == "application/json"
            if not is_json and content_type != "application/x-protobuf":
                self._reply(415, f"unsupported content-type {content_type!r}".encode(), "text/plain")
                return
            request: ExportTraceServiceRequest | None
            try:
                if is_json:
                    request = decode_json(body)
                else:
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
            except (DecodeError, json_format.ParseError, ValueError):
                request = None
            try:
                capture._handle("http", headers, content_type, raw, body, request)
            except _Rejection as rej:
                self._reply(rej.http_status, str(rej).encode(), "text/plain")
                return
            if is_json:
                self._reply(200, b"{}", "application/json")
            else:
                self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    return Handler
