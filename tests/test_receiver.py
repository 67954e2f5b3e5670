"""`otel-bridge serve`: real sockets, the SDK's real OTLP/HTTP and OTLP/gRPC exporters, real processes.

What is proven here: every accepted span reaches a sink exactly once whatever the batching, order,
duplicates and transport; bad input gets the documented 4xx with a message that says what to fix;
a restart replays what was acknowledged but not delivered; SIGTERM delivers in-flight work; two
receiver processes sharing the load write each span once when routing keeps a run on one receiver.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.otlp_json import json_to_request, request_to_json
from otel_bridge.receiver import ReceiverConfigError, ReceiverOptions, ReceiverServer
from otel_bridge.receiver.spool import Spool, SpoolInUse, decode_entry
from otel_bridge.records import SpanRecord, from_request, read_span_file
from otel_bridge.sinks.base import RecordSink
from otel_bridge.sinks.file import FileRecordSink
from tests.support.demo_spans import demo_span_file

REPO = Path(__file__).resolve().parents[1]
SAMPLE = demo_span_file()
ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest
ExportTraceServiceResponse = trace_service_pb2.ExportTraceServiceResponse
UNTRANSLATABLE = "test.untranslatable"


# --- a test consumer ------------------------------------------------------------------------------
class RecordingSink(RecordSink):
    """A RecordSink that records every span it is fed (to count deliveries), optionally failing.

    ``log``: also append each consumed key to this file (fsynced on flush) so a test can watch a
    receiver running in another process. ``fail_flag``: while that file exists, ``consume`` raises.
    ``delay_s``: sleep per consume (in-flight work for the SIGTERM test).
    """

    name = "recording"

    def __init__(
        self,
        log: Path | None = None,
        fail_flag: Path | None = None,
        delay_s: float = 0.0,
        per_task: bool = False,
    ) -> None:
        self.consumed: list[tuple[str, str]] = []
        self.records: dict[tuple[str, str], SpanRecord] = {}
        self.finalized: list[str] = []
        self.finalized_tasks: list[tuple[list[str], str]] = []
        self.log = log
        self.fail_flag = fail_flag
        self.delay_s = delay_s
        self._fh = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
        self._lock = threading.Lock()
        self.finalizes_per_task = per_task

    def validate(self, records: Sequence[SpanRecord]) -> dict[tuple[str, str], str]:
        return {
            (r.trace_id, r.span_id): "marked untranslatable by the test"
            for r in records
            if r.attributes.get(UNTRANSLATABLE)
        }

    def consume(self, records: Sequence[SpanRecord]) -> None:
        if self.fail_flag is not None and self.fail_flag.exists():
            raise ConnectionError("destination down (test)")
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            for r in records:
                if r.attributes.get(UNTRANSLATABLE):
                    continue  # what a real sink does with what it said it cannot translate
                key = (r.trace_id, r.span_id)
                self.consumed.append(key)
                self.records[key] = r
                if self._fh is not None:
                    self._fh.write(json.dumps(key) + "\n")

    def flush(self, timeout_s: float) -> bool:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return True

    def finalize_incomplete(self, reason: str) -> None:
        self.finalized.append(reason)

    def finalize_tasks(self, task_ids: Sequence[str], reason: str) -> None:
        self.finalized_tasks.append((list(task_ids), reason))

    def close(self) -> None:
        if self._fh is not None:
            self.flush(0)
            self._fh.close()

    def problem(self) -> str | None:
        return None

    def counts(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.consumed)


def make_recording_sink(settings: Settings) -> RecordingSink:
    """Factory for ``--to tests.test_receiver:make_recording_sink`` in receiver subprocesses."""
    flag = os.environ.get("RECORDING_SINK_FAIL_FLAG")
    return RecordingSink(
        log=Path(os.environ["RECORDING_SINK_LOG"]),
        fail_flag=Path(flag) if flag else None,
        delay_s=float(os.environ.get("RECORDING_SINK_DELAY", "0")),
    )


def read_log(path: Path) -> Counter[tuple[str, str]]:
    if not path.exists():
        return Counter()
    return Counter(tuple(json.loads(line)) for line in path.read_text().splitlines() if line.strip())


# --- spans from a real TracerProvider ---------------------------------------------------------------
def make_spans(
    traces: int = 6, per_trace: int = 8, run_id: str = "run-A", task_id: str = "task-1"
) -> list[ReadableSpan]:
    """Realistic nested spans (sample → chat/tool children) with Inspect identifiers."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "inspect-ai", "test.run": run_id}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(c.SCOPE_NAME)
    ids = {c.RUN_ID: run_id, c.TASK_ID: task_id}
    for t in range(traces):
        with tracer.start_as_current_span(c.SPAN_SAMPLE, attributes={**ids, c.SAMPLE_ID: t}):
            for i in range(per_trace - 1):
                name = "chat m" if i % 2 == 0 else "execute_tool add"
                with tracer.start_as_current_span(
                    name, attributes={**ids, "test.index": i, "test.text": "x" * i}
                ):
                    pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def key_of(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


def random_batches(spans: Sequence[ReadableSpan], rng: random.Random) -> list[list[ReadableSpan]]:
    """Shuffled spans cut at random boundaries."""
    order = list(spans)
    rng.shuffle(order)
    out, i = [], 0
    while i < len(order):
        n = rng.randint(1, 9)
        out.append(order[i : i + n])
        i += n
    return out


# --- running receivers --------------------------------------------------------------------------------
@contextlib.contextmanager
def receiver(tmp_path: Path, sinks: Sequence[Any], **options: Any) -> Iterator[ReceiverServer]:
    server = ReceiverServer(sinks, tmp_path / "spool", ReceiverOptions(**options), http_port=0, grpc_port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop(10)


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def post(
    port: int, body: bytes, headers: dict[str, str], path: str = "/v1/traces"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def status_message(body: bytes, content_type: str) -> str:
    if content_type.startswith("application/json"):
        return str(json.loads(body)["message"])
    return status_pb2.Status.FromString(body).message


PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


# --- delivery ---------------------------------------------------------------------------------------
def test_real_exporters_deliver_every_span_exactly_once_whatever_batching_order_and_duplicates(
    tmp_path: Path,
) -> None:
    spans = make_spans(traces=6, per_trace=8)
    rng = random.Random(5)
    sink = RecordingSink()
    files = FileRecordSink(tmp_path / "spans", prefix="received-t-")
    with receiver(tmp_path, [sink, files]) as server:
        http_exp = HttpExporter(
            endpoint=f"http://127.0.0.1:{server.http_port}/v1/traces", compression=Compression.Gzip
        )
        grpc_exp = GrpcExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True)
        first = random_batches(spans, rng)
        for batch in first:
            assert http_exp.export(batch) == SpanExportResult.SUCCESS
        for batch in first[::2]:  # a retried request, byte for byte
            assert http_exp.export(batch) == SpanExportResult.SUCCESS
        for batch in random_batches(spans, rng):  # the same spans, re-cut and re-ordered, over gRPC
            assert grpc_exp.export(batch) == SpanExportResult.SUCCESS
        wait_until(lambda: len(sink.counts()) == len(spans), what="all spans at the sink")
        time.sleep(0.3)  # anything extra would arrive now
        http_exp.shutdown()
        grpc_exp.shutdown()
    counts = sink.counts()
    assert set(counts) == {key_of(s) for s in spans}
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    written = [r for f in (tmp_path / "spans").glob("*.jsonl") for r in read_span_file(f)]
    assert sorted((r.trace_id, r.span_id) for r in written) == sorted(counts)
    by_key = {(r.trace_id, r.span_id): r for r in written}
    for s in spans:
        r = by_key[key_of(s)]
        assert (r.name, r.attributes, r.parent_id is None) == (
            s.name,
            dict(s.attributes or {}),
            s.parent is None,
        )
        assert r.resource["test.run"] == "run-A"


def test_sample_span_file_round_trips_through_json_and_protobuf(tmp_path: Path) -> None:
    """A real eval's span file, sent as OTLP/JSON and as gzipped protobuf, shuffled, lands unchanged."""
    lines = [ln for ln in SAMPLE.read_bytes().splitlines() if ln.strip()]
    expected = {(r.trace_id, r.span_id): r for r in read_span_file(SAMPLE)}
    sink = RecordingSink()
    with receiver(tmp_path, [sink]) as server:
        order = list(range(len(lines))) * 2
        random.Random(1).shuffle(order)
        for n, i in enumerate(order):
            if n % 2:
                status, headers, body = post(server.http_port, lines[i], JS)
                assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {})
            else:
                pb = gzip.compress(json_to_request(lines[i]).SerializeToString())
                status, headers, body = post(server.http_port, pb, {**PB, "Content-Encoding": "gzip"})
                assert status == 200 and headers["content-type"] == "application/x-protobuf"
                assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
        wait_until(lambda: len(sink.counts()) == len(expected), what="sample spans")
    assert max(sink.counts().values()) == 1
    assert sink.records == expected


def test_a_retried_request_is_spooled_and_fed_once_even_concurrently(tmp_path: Path) -> None:
    body = encode_spans(make_spans(traces=2, per_trace=5)).SerializeToString()
    sink = RecordingSink()
    with receiver(tmp_path, [sink]) as server:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(post(server.http_port, body, PB)[0]))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8
        wait_until(lambda: len(sink.counts()) == 10, what="10 spans")
        time.sleep(0.3)
    lines = [
        ln for p in (tmp_path / "spool").glob("spool-*.jsonl") for ln in p.read_bytes().splitlines() if ln
    ]
    assert len(lines) == 1
    spooled = trace_service_pb2.ExportTraceServiceRequest.FromString(decode_entry(lines[0]) or b"")
    assert len(from_request(spooled)) == 10
    assert sum(sink.counts().values()) == 10


def test_spool_rotates_segments_commits_and_drops_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_pending_bytes=10**6, dedup_keys=100, segment_bytes=100)
    with pytest.raises(SpoolInUse, match="give each receiver its own --spool-dir"):
        Spool(tmp_path, max_pending_bytes=10**6, dedup_keys=100)
    for i in range(10):
        assert spool.append(b'{"n":%d,"pad":"%s"}' % (i, b"x" * 40), [bytes([i]) * 24]) is None
    assert spool.append(b"{}", [bytes([3]) * 24]) == []  # already spooled: nothing written
    first = spool.read(4, 10**6)
    assert [json.loads(e.line)["n"] for e in first] == [0, 1, 2, 3]
    spool.commit(first[-1].end)
    assert len(list(tmp_path.glob("spool-*.jsonl"))) < 10  # finished segments are deleted
    spool.close()
    newest = max(tmp_path.glob("spool-*.jsonl"))
    with open(newest, "ab") as fh:
        fh.write(b'{"n":99,"cut-by-a-cra')  # a write the crash interrupted (never acknowledged)
    again = Spool(tmp_path, max_pending_bytes=10**6, dedup_keys=100, segment_bytes=100)
    assert again.torn_tail_bytes == len(b'{"n":99,"cut-by-a-cra')
    assert [json.loads(e.line)["n"] for e in again.unread_entries()] == [4, 5, 6, 7, 8, 9]
    assert again.seen(bytes([9]) * 24) and not again.seen(bytes([42]) * 24)
    assert again.append(b'{"n":10}', [bytes([10]) * 24]) is None
    assert [json.loads(e.line)["n"] for e in again.read(100, 10**6)] == [4, 5, 6, 7, 8, 9, 10]
    again.close()


# --- bad input ------------------------------------------------------------------------------------
def test_bad_requests_get_clear_4xx_and_the_server_stays_healthy(tmp_path: Path) -> None:
    good = encode_spans(make_spans(traces=1, per_trace=3)).SerializeToString()
    sink = RecordingSink()
    with receiver(tmp_path, [sink], max_body_bytes=64 * 1024) as server:
        port = server.http_port

        status, h, body = post(port, b"\x0a\xff\xff\xff\x0f", PB)
        assert status == 400
        assert "not a protobuf ExportTraceServiceRequest" in status_message(body, h["content-type"])

        status, h, body = post(port, b'{"resourceSpans": [', JS)
        assert status == 400 and "not an OTLP/JSON" in status_message(body, h["content-type"])

        status, h, body = post(
            port, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JS
        )
        assert status == 400 and "not hex" in status_message(body, h["content-type"])

        status, h, body = post(port, b"not gzip at all", {**PB, "Content-Encoding": "gzip"})
        assert status == 400 and "not valid gzip" in status_message(body, h["content-type"])

        status, h, body = post(port, good, {"Content-Type": "text/plain"})
        assert status == 415
        assert "application/x-protobuf or application/json" in status_message(body, h["content-type"])

        status, h, body = post(port, good, {**PB, "Content-Encoding": "br"})
        assert status == 415 and "Content-Encoding 'br'" in status_message(body, h["content-type"])

        status, h, body = post(port, b"\0" * (64 * 1024 + 1), PB)
        assert status == 413 and "exceeds the limit of 65536 bytes" in status_message(body, h["content-type"])

        bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 KiB on the wire, 50 MiB inflated
        assert len(bomb) < 64 * 1024
        status, h, body = post(port, bomb, {**PB, "Content-Encoding": "gzip"})
        assert status == 413 and "decompressed body exceeds" in status_message(body, h["content-type"])

        # a huge declared length is refused from the headers, without waiting for the body
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/v1/traces")
        conn.putheader("Content-Type", "application/x-protobuf")
        conn.putheader("Content-Length", str(10**15))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
        conn.close()

        status, h, body = post(port, good, PB, path="/v1/metrics")
        assert status == 404

        health = json.loads(post_get(port, "/healthz"))
        assert health["status"] == "ok"
        assert post(port, good, PB)[0] == 200  # still accepting
        wait_until(lambda: len(sink.counts()) == 3, what="the good request")

    with receiver(tmp_path, [RecordingSink()], max_body_bytes=64 * 1024) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\xff\xff\xff\x0f", timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a protobuf ExportTraceServiceRequest" in (err.value.details() or "")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\0" * (64 * 1024 + 1), timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()


def post_get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read()
    finally:
        conn.close()


def test_bearer_token_is_required_when_configured(tmp_path: Path) -> None:
    spans = make_spans(traces=1, per_trace=2)
    body = encode_spans(spans).SerializeToString()
    sink = RecordingSink()
    with receiver(tmp_path, [sink], token="s3cret-token-for-tests") as server:
        port = server.http_port
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token-for-tests"}):
            status, h, resp = post(port, body, {**PB, **headers})
            assert status == 401, headers
            assert h["www-authenticate"] == "Bearer"
            assert "bearer token" in status_message(resp, h["content-type"])
        assert post(port, body, {**PB, "Authorization": "Bearer s3cret-token-for-tests"})[0] == 200

        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(encode_spans(spans), metadata=[("authorization", "Bearer x")], timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = GrpcExporter(
            endpoint=f"127.0.0.1:{server.grpc_port}",
            insecure=True,
            headers={"authorization": "Bearer s3cret-token-for-tests"},
        )
        assert good.export(spans) == SpanExportResult.SUCCESS
        wait_until(lambda: len(sink.counts()) == 2, what="authorized spans")
        channel.close()
        good.shutdown()


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ReceiverConfigError, match="INSPECT_OTEL_RECEIVER_TOKEN"):
        ReceiverServer([RecordingSink()], tmp_path / "spool", ReceiverOptions(), host="0.0.0.0").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL", "WANDB"))}
    proc = subprocess.run(
        [sys.executable, "-m", "otel_bridge.receiver.cli", "serve", "--host", "0.0.0.0", "--to", "file",
         "--spool-dir", str(tmp_path / "s"), "--span-dir", str(tmp_path / "spans")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refusing to listen on '0.0.0.0' without a token" in proc.stderr
    assert "INSPECT_OTEL_RECEIVER_TOKEN" in proc.stderr
    assert not (tmp_path / "s" / "lock").exists()  # refused before touching anything


# --- partial success -----------------------------------------------------------------------------
def test_untranslatable_and_invalid_spans_are_reported_in_partial_success(tmp_path: Path) -> None:
    spans = make_spans(traces=2, per_trace=4)
    request = encode_spans(spans)
    marked = request.resource_spans[0].scope_spans[0].spans[0]
    marked.attributes.add(key=UNTRANSLATABLE).value.bool_value = True
    broken = request.resource_spans[0].scope_spans[0].spans.add()
    broken.CopyFrom(request.resource_spans[0].scope_spans[0].spans[1])
    broken.trace_id = b"\x01\x02\x03"
    broken.name = "broken-ids"
    sink = RecordingSink()
    with receiver(tmp_path, [sink]) as server:
        status, h, body = post(server.http_port, request.SerializeToString(), PB)
        assert status == 200
        partial = ExportTraceServiceResponse.FromString(body).partial_success
        assert partial.rejected_spans == 2
        assert "trace_id must be 16 non-zero bytes (got 3)" in partial.error_message
        assert "'broken-ids'" in partial.error_message
        assert "recording cannot translate span" in partial.error_message

        status, h, body = post(server.http_port, request_to_json(request).encode(), JS)
        doc = json.loads(body)
        assert status == 200 and doc["partialSuccess"]["rejectedSpans"] in (2, "2")

        stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        assert stub.Export(request, timeout=5).partial_success.rejected_spans == 2
        wait_until(lambda: len(sink.counts()) == len(spans) - 1, what="the translatable spans")
        time.sleep(0.3)
    assert set(sink.counts()) == {key_of(s) for s in spans} - {(marked.trace_id.hex(), marked.span_id.hex())}
    assert max(sink.counts().values()) == 1


def test_full_spool_answers_503_so_the_collector_retries(tmp_path: Path) -> None:
    flag = tmp_path / "down"
    flag.touch()
    sink = RecordingSink(fail_flag=flag)
    with receiver(tmp_path, [sink], spool_max_bytes=4096) as server:
        codes = [
            post(server.http_port, encode_spans(make_spans(1, 6)).SerializeToString(), PB)[0]
            for _ in range(6)
        ]
        assert codes[0] == 200 and 503 in codes
        flag.unlink()
        wait_until(
            lambda: server.receiver is not None and server.receiver.spool.pending_bytes() == 0, what="drain"
        )
        assert post(server.http_port, encode_spans(make_spans(1, 6)).SerializeToString(), PB)[0] == 200


# --- stale tasks ------------------------------------------------------------------------------------
def test_silent_tasks_are_finalized_but_active_and_ended_ones_are_not(tmp_path: Path) -> None:
    ended = make_spans(traces=1, per_trace=2, task_id="T-ended")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span(c.SPAN_TASK, attributes={c.TASK_ID: "T-ended"}):
        pass
    silent = make_spans(traces=1, per_trace=2, task_id="T-silent")
    per_task = RecordingSink(per_task=True)
    with receiver(tmp_path, [per_task], stale_after_s=0.6) as server:
        exp = HttpExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/traces")
        exp.export(ended + list(memory.get_finished_spans()) + silent)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # T-active keeps sending
            exp.export(make_spans(traces=1, per_trace=1, task_id="T-active"))
            time.sleep(0.1)
        wait_until(lambda: per_task.finalized_tasks, what="finalize_tasks")
        exp.shutdown()
    assert per_task.finalized_tasks[0][0] == ["T-silent"]
    assert "INSPECT_OTEL_RECEIVER_STALE_AFTER" in per_task.finalized_tasks[0][1]
    assert per_task.finalized == []

    plain = RecordingSink()  # protocol only: finalize_incomplete once every open task is silent
    with receiver(tmp_path / "2", [plain], stale_after_s=0.5) as server:
        HttpExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/traces").export(silent)
        wait_until(lambda: plain.finalized, what="finalize_incomplete")
    assert len(plain.finalized) == 1


# --- processes: restart, SIGTERM, two receivers ---------------------------------------------------
class ReceiverProcess:
    """``python -m otel_bridge.receiver.cli serve`` on free loopback ports."""

    def __init__(self, spool: Path, span_dir: Path, to: str, env: dict[str, str] | None = None) -> None:
        self.args = [
            sys.executable, "-m", "otel_bridge.receiver.cli", "serve", "--port", "0", "--grpc-port", "0",
            "--spool-dir", str(spool), "--span-dir", str(span_dir), "--to", to,
        ]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL", "WANDB"))}
        self.env.update(env or {})
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.http_port = self.grpc_port = 0

    def start(self) -> ReceiverProcess:
        self.lines = []
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"listening http=127\.0\.0\.1:(\d+) grpc=127\.0\.0\.1:(\d+)", line)
                if m:
                    self.http_port, self.grpc_port = int(m.group(1)), int(m.group(2))
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(60):
            self.proc.kill()
            raise AssertionError("receiver did not start:\n" + "".join(self.lines))
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    @property
    def traces_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"


def test_restart_replays_what_was_acknowledged_but_not_delivered(tmp_path: Path) -> None:
    log, flag = tmp_path / "delivered.jsonl", tmp_path / "destination-down"
    flag.touch()
    env = {"RECORDING_SINK_LOG": str(log), "RECORDING_SINK_FAIL_FLAG": str(flag)}
    proc = ReceiverProcess(
        tmp_path / "spool", tmp_path / "spans", "tests.test_receiver:make_recording_sink", env
    )
    proc.start()
    spans = make_spans(traces=4, per_trace=5)
    batches = random_batches(spans, random.Random(3))
    exp = HttpExporter(endpoint=proc.traces_url)
    for batch in batches:
        assert exp.export(batch) == SpanExportResult.SUCCESS  # acknowledged: spooled and fsynced
    exp.shutdown()
    time.sleep(0.3)
    assert read_log(log) == Counter()  # the destination is down: nothing delivered yet
    assert proc.stop(signal.SIGKILL) == -signal.SIGKILL

    flag.unlink()
    proc.start()
    assert any("replaying" in line for line in proc.lines)
    wait_until(lambda: len(read_log(log)) == len(spans), what="replayed spans")
    exp = HttpExporter(endpoint=proc.traces_url)
    for batch in batches[:3]:  # the collector retrying requests it sent before the crash
        assert exp.export(batch) == SpanExportResult.SUCCESS
    exp.shutdown()
    time.sleep(0.5)
    assert proc.stop() == 0
    counts = read_log(log)
    assert set(counts) == {key_of(s) for s in spans}
    assert max(counts.values()) == 1

    proc.start()  # everything was committed: nothing to replay
    assert not any("replaying" in line for line in proc.lines)
    assert proc.stop() == 0
    assert read_log(log) == counts


def test_sigterm_delivers_in_flight_work_before_exiting(tmp_path: Path) -> None:
    log = tmp_path / "delivered.jsonl"
    env = {"RECORDING_SINK_LOG": str(log), "RECORDING_SINK_DELAY": "0.15"}
    proc = ReceiverProcess(
        tmp_path / "spool", tmp_path / "spans", "tests.test_receiver:make_recording_sink", env
    )
    proc.start()
    spans = make_spans(traces=10, per_trace=3)
    exp = HttpExporter(endpoint=proc.traces_url)
    for i in range(0, len(spans), 3):
        assert exp.export(spans[i : i + 3]) == SpanExportResult.SUCCESS
    exp.shutdown()
    assert len(read_log(log)) < len(spans)  # the slow sink is still working
    assert proc.stop(signal.SIGTERM) == 0
    assert any("stopped;" in line and f"{len(spans)} span(s) delivered" in line for line in proc.lines)
    assert read_log(log) == Counter({key_of(s): 1 for s in spans})


def _route_run(run_id: str) -> int:
    return sum(run_id.encode()) % 2  # what the collector's loadbalancing exporter does by routing key


def test_two_receivers_sharing_load_write_each_span_once_with_run_affinity(tmp_path: Path) -> None:
    """docs/scaling.md: route by run (or project); then per-receiver dedup gives exactly-once files."""
    span_dir = tmp_path / "spans"
    procs = [ReceiverProcess(tmp_path / f"spool{i}", span_dir, "file").start() for i in range(2)]
    runs = {
        f"run-{n}": make_spans(traces=3, per_trace=6, run_id=f"run-{n}", task_id=f"task-{n}") for n in "ABCD"
    }
    assert {_route_run(r) for r in runs} == {0, 1}  # both receivers get work
    rng = random.Random(11)
    sends: list[tuple[int, list[ReadableSpan]]] = []
    for run_id, spans in runs.items():
        target = _route_run(run_id)
        batches = random_batches(spans, rng)
        sends += [(target, b) for b in batches]
        sends += [(target, b) for b in rng.sample(batches, k=len(batches) // 2)]  # retries
        sends += [(target, b) for b in random_batches(spans, rng)]  # re-batched duplicates
    rng.shuffle(sends)

    def send(part: list[tuple[int, list[ReadableSpan]]]) -> None:
        exporters = [
            HttpExporter(endpoint=procs[0].traces_url, compression=Compression.Gzip),
            GrpcExporter(endpoint=f"127.0.0.1:{procs[1].grpc_port}", insecure=True),
        ]
        for target, batch in part:
            assert exporters[target].export(batch) == SpanExportResult.SUCCESS
        for e in exporters:
            e.shutdown()

    threads = [threading.Thread(target=send, args=(sends[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.stop() for p in procs] == [0, 0]

    files = sorted(span_dir.glob("*.jsonl"))
    assert len({f.name.split("-")[1] for f in files}) == 2  # both receivers wrote, into separate files
    written = [r for f in files for r in read_span_file(f)]
    counts = Counter((r.trace_id, r.span_id) for r in written)
    sent = {key_of(s): s for spans in runs.values() for s in spans}
    assert set(counts) == set(sent)
    assert max(counts.values()) == 1
    for r in written:
        s = sent[(r.trace_id, r.span_id)]
        assert (r.name, r.attributes) == (s.name, dict(s.attributes or {}))


def test_two_receivers_without_affinity_duplicate_exactly_the_cross_receiver_retries(tmp_path: Path) -> None:
    """Without routing, a retry landing on the other receiver is written twice (sinks must be idempotent)."""
    span_dir = tmp_path / "spans"
    procs = [ReceiverProcess(tmp_path / f"spool{i}", span_dir, "file").start() for i in range(2)]
    spans = make_spans(traces=4, per_trace=5)
    batches = random_batches(spans, random.Random(2))
    exporters = [HttpExporter(endpoint=p.traces_url) for p in procs]
    for i, batch in enumerate(batches):  # round robin
        assert exporters[i % 2].export(batch) == SpanExportResult.SUCCESS
    crossed = batches[:2]  # retried on the other receiver (lost ack)
    for i, batch in enumerate(crossed):
        assert exporters[(i + 1) % 2].export(batch) == SpanExportResult.SUCCESS
    same = batches[2:4]  # retried on the same receiver
    for i, batch in enumerate(same):
        assert exporters[i % 2].export(batch) == SpanExportResult.SUCCESS
    for e in exporters:
        e.shutdown()
    assert [p.stop() for p in procs] == [0, 0]
    counts = Counter((r.trace_id, r.span_id) for f in span_dir.glob("*.jsonl") for r in read_span_file(f))
    assert set(counts) == {key_of(s) for s in spans}
    assert {k for k, n in counts.items() if n == 2} == {key_of(s) for b in crossed for s in b}
    assert max(counts.values()) == 2
