"""Fuzzing `otel-bridge serve` over real sockets: whatever arrives, never a 5xx, and it stays healthy.

Thousands of inputs: random bytes, mutated valid protobuf and OTLP/JSON (from a real eval's span
file), random content types, encodings, tokens and declared lengths, and random gRPC payloads.
After each family the receiver must still answer /healthz, accept a good request and deliver it.
"""

from __future__ import annotations

import gzip
import json
import socket
import zlib
from collections.abc import Iterator, Sequence

import grpc
import pytest
from google.rpc import status_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_bridge.otlp_json import json_to_request
from otel_bridge.receiver import ReceiverOptions, ReceiverServer
from otel_bridge.records import SpanRecord
from otel_bridge.sinks.base import RecordSink
from tests.support.demo_spans import demo_span_file

SAMPLE = demo_span_file()
TOKEN = "fuzz-token-0123456789"
LIMIT = 256 * 1024
FUZZ = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


ALLOWED = {200, 400, 401, 404, 405, 411, 413, 415}


class CountingSink(RecordSink):
    name = "counting"

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()

    def consume(self, records: Sequence[SpanRecord]) -> None:
        self.keys.update((r.trace_id, r.span_id) for r in records)

    def flush(self, timeout_s: float) -> bool:
        return True

    def finalize_incomplete(self, reason: str) -> None:
        pass

    def close(self) -> None:
        pass

    def problem(self) -> str | None:
        return None


def _sample_requests() -> list[bytes]:
    """Small real requests: each sample-file line cut to its first few spans."""
    out = []
    for line in SAMPLE.read_bytes().splitlines():
        if not line.strip():
            continue
        request = json_to_request(line)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                del ss.spans[4:]
        out.append(request.SerializeToString())
    return out


PROTOS = _sample_requests()
BOMB = gzip.compress(b"\0" * (LIMIT * 8))
JSONS = [
    json.dumps(json.loads(line)).encode()[:60_000]
    for line in SAMPLE.read_bytes().splitlines()[:1]
    if line.strip()
]
SMALL_JSON = json.dumps(
    {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "fuzz"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "fuzz"},
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "inspect.sample",
                                "kind": 1,
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": [{"key": "inspect.task_id", "value": {"stringValue": "t"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReceiverServer, CountingSink]]:
    sink = CountingSink()
    srv = ReceiverServer(
        [sink],
        tmp_path_factory.mktemp("fuzz") / "spool",
        ReceiverOptions(token=TOKEN, max_body_bytes=LIMIT),
        http_port=0,
        grpc_port=0,
    ).start()
    yield srv, sink
    assert srv.receiver is not None and srv.receiver.internal_errors == 0
    srv.stop(10)


def raw_http(port: int, head: bytes, body: bytes) -> tuple[int, bytes, bytes]:
    """Send bytes as they are (any Content-Length, lying or not), half-close, read the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    header, _, rest = data.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, header, rest


def post(
    port: int,
    body: bytes,
    content_type: str | None,
    encoding: str | None = None,
    auth: str | None = f"Bearer {TOKEN}",
    length: str | None = None,
) -> tuple[int, bytes, bytes]:
    lines = [b"POST /v1/traces HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type.encode("latin-1"))
    if encoding is not None:
        lines.append(b"Content-Encoding: " + encoding.encode("latin-1"))
    if auth is not None:
        lines.append(b"Authorization: " + auth.encode("latin-1"))
    lines.append(b"Content-Length: " + (length if length is not None else str(len(body))).encode("latin-1"))
    return raw_http(port, b"\r\n".join(lines) + b"\r\n\r\n", body)


def check(status: int, header: bytes, body: bytes) -> None:
    """Never a 5xx; a 200 carries an ExportTraceServiceResponse, a refusal a Status with a message."""
    event(f"HTTP {status}")
    assert status in ALLOWED, (status, header, body[:300])
    is_json = b"content-type: application/json" in header.lower()
    if status == 200:
        if is_json:
            assert isinstance(json.loads(body), dict)
        else:
            ExportTraceServiceResponse.FromString(body)
    elif status != 405:
        message = json.loads(body)["message"] if is_json else status_pb2.Status.FromString(body).message
        assert message


def still_healthy(srv: ReceiverServer, sink: CountingSink) -> None:
    status, _, body = raw_http(
        srv.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b""
    )
    assert status == 200 and json.loads(body)["status"] == "ok"
    before = len(sink.keys)
    request = json_to_request(SMALL_JSON)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.span_id = (before + 1).to_bytes(8, "big")
    span.trace_id = b"\x99" * 8 + (before + 1).to_bytes(8, "big")
    status, header, body = post(srv.http_port, request.SerializeToString(), "application/x-protobuf")
    assert status == 200, body
    import time

    deadline = time.monotonic() + 10
    while (span.trace_id.hex(), span.span_id.hex()) not in sink.keys:
        assert time.monotonic() < deadline, "the worker stopped delivering"
        time.sleep(0.02)


CONTENT_TYPES = st.sampled_from(
    ["application/x-protobuf", "application/json", "application/json; charset=utf-8", "application/protobuf"]
) | st.text(max_size=40).filter(lambda s: "\r" not in s and "\n" not in s)
ENCODINGS = (
    st.none()
    | st.sampled_from(["gzip", "identity", "deflate", "br", "zstd", "GZIP", ""])
    | st.text(max_size=10)
)


def _header_safe(text: str) -> str:
    return "".join(ch for ch in text if ch not in "\r\n" and ord(ch) < 256)


@fuzz(1500)
@given(body=st.binary(max_size=4096), ctype=CONTENT_TYPES, encoding=ENCODINGS)
def test_random_bytes_any_content_type_and_encoding(
    server: tuple[ReceiverServer, CountingSink], body: bytes, ctype: str, encoding: str | None
) -> None:
    srv, _ = server
    check(
        *post(srv.http_port, body, _header_safe(ctype), None if encoding is None else _header_safe(encoding))
    )


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "splice"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 32))]
        else:
            other = draw(st.sampled_from(seeds))
            j = draw(st.integers(0, len(other)))
            data[i:] = other[j:]
    return bytes(data)


@fuzz(1500)
@given(body=mutated(PROTOS), compress=st.booleans())
def test_mutated_protobuf(server: tuple[ReceiverServer, CountingSink], body: bytes, compress: bool) -> None:
    srv, _ = server
    if compress:
        check(*post(srv.http_port, gzip.compress(body), "application/x-protobuf", "gzip"))
    else:
        check(*post(srv.http_port, body, "application/x-protobuf"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _replace_random_node(doc: object, draw: st.DrawFn) -> object:
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc)))
        doc[key] = _replace_random_node(doc[key], draw)
        return doc
    if isinstance(doc, list) and doc and draw(st.booleans()):
        i = draw(st.integers(0, len(doc) - 1))
        doc[i] = _replace_random_node(doc[i], draw)
        return doc
    return draw(JSON_VALUES | st.sampled_from(["00", "zz", "0af7651916cd43dd8448eb211c80319c", -1, 2**70]))


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    seed = draw(st.sampled_from([SMALL_JSON, *JSONS]))
    if draw(st.booleans()):
        doc = json.loads(seed)
        for _ in range(draw(st.integers(1, 3))):
            doc = _replace_random_node(doc, draw)
        return json.dumps(doc).encode()
    return draw(mutated([seed]))


@fuzz(1200)
@given(body=mutated_json())
def test_mutated_otlp_json(server: tuple[ReceiverServer, CountingSink], body: bytes) -> None:
    srv, _ = server
    check(*post(srv.http_port, body, "application/json"))


@fuzz(500)
@given(
    declared=st.one_of(
        st.integers(0, 2 * LIMIT).map(str),
        st.integers(LIMIT, 10**30).map(str),
        st.sampled_from(["-1", "abc", "", " 12", "1e9", "0x10", "99999999999999999999999999"]),
    ),
    body=st.binary(max_size=2048),
    auth=st.sampled_from(
        [f"Bearer {TOKEN}"] * 6 + [None, "Bearer", f"bearer {TOKEN}", TOKEN, f"Bearer {TOKEN}x"]
    ),
    bomb=st.booleans(),
)
def test_declared_lengths_tokens_and_bombs(
    server: tuple[ReceiverServer, CountingSink], declared: str, body: bytes, auth: str | None, bomb: bool
) -> None:
    srv, _ = server
    if bomb:
        body = BOMB
        declared = str(len(body))
    status, header, reply = post(
        srv.http_port, body, "application/x-protobuf", "gzip" if bomb else None, auth, declared
    )
    check(status, header, reply)
    if auth not in (f"Bearer {TOKEN}", f"bearer {TOKEN}"):
        assert status == 401
    elif bomb or (declared.strip().isdigit() and int(declared) > LIMIT):
        assert status == 413


@fuzz(400)
@given(payload=st.binary(max_size=2048) | mutated(PROTOS), compress=st.booleans())
def test_grpc_random_payloads(
    server: tuple[ReceiverServer, CountingSink], payload: bytes, compress: bool
) -> None:
    srv, _ = server
    channel = grpc.insecure_channel(
        f"127.0.0.1:{srv.grpc_port}", compression=grpc.Compression.Gzip if compress else None
    )
    try:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        try:
            reply = export(payload, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
            ExportTraceServiceResponse.FromString(reply)
            event("gRPC OK")
        except grpc.RpcError as err:
            event(f"gRPC {err.code().name}")
            assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), err
            assert err.details()
    finally:
        channel.close()


def test_grpc_zip_bomb_is_refused(server: tuple[ReceiverServer, CountingSink]) -> None:
    srv, sink = server
    bomb = b"\x0a" + b"\xff" * 3 + b"\x7f" + b"\0" * (LIMIT * 8)  # large, compresses to almost nothing
    assert len(zlib.compress(bomb)) < LIMIT
    with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}", compression=grpc.Compression.Gzip) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(bomb, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    still_healthy(srv, sink)


def test_zz_still_healthy_after_everything(server: tuple[ReceiverServer, CountingSink]) -> None:
    srv, sink = server
    still_healthy(srv, sink)
