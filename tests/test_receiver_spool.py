"""The spool's fast accept path: raw protobuf entries, group commit, and the fsync-before-200 rule.

The spool is real (files, fsync); only ``os.fsync`` is wrapped, to count calls and to hold one
open, so that the ordering "no 200 and no read before the data's fsync" can be observed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_bridge.otlp_json import request_to_json
from otel_bridge.receiver import spool as spool_module
from otel_bridge.receiver.spool import Spool, decode_entry, encode_entry
from otel_bridge.records import SpanRecord, read_span_file
from otel_bridge.sinks.base import RecordSink
from tests.test_receiver import PB, RecordingSink, key_of, make_spans, post, receiver, wait_until


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_an_entry_is_one_line_and_gives_back_the_same_bytes(data: bytes) -> None:
    line = encode_entry(data)
    assert b"\n" not in line and b"\r" not in line and len(line.splitlines()) <= 1
    assert decode_entry(line) == data


def test_otlp_json_lines_are_not_taken_for_entries() -> None:
    assert decode_entry(b'{"resourceSpans": []}') is None


class PlainSink(RecordSink):
    """A sink without ``validate``: the receiver builds no records on the accept path for it."""

    name = "plain"

    def __init__(self) -> None:
        self.records: list[SpanRecord] = []
        self._lock = threading.Lock()

    def consume(self, records: Sequence[SpanRecord]) -> None:
        with self._lock:
            self.records.extend(records)


def test_the_fast_path_spools_valid_new_spans_once(tmp_path: Path) -> None:
    """Whole requests go to the spool as received; a request with a bad id or a span twice is cut."""
    spans = make_spans(traces=3, per_trace=4)
    whole = encode_spans(spans[:6]).SerializeToString()
    mixed = encode_spans(spans[6:])
    ss = mixed.resource_spans[0].scope_spans[0]
    ss.spans.add().CopyFrom(ss.spans[0])  # the same span twice in one request
    bad = ss.spans.add()
    bad.CopyFrom(ss.spans[1])
    bad.span_id = bytes(8)  # an all-zero span id: rejected
    sink = PlainSink()
    with receiver(tmp_path, [sink]) as server:
        assert post(server.http_port, whole, PB)[0] == 200
        status, _, body = post(server.http_port, mixed.SerializeToString(), PB)
        assert status == 200
        assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 1
        assert post(server.http_port, whole, PB)[0] == 200  # a retry: already spooled
        wait_until(lambda: len(sink.records) >= len(spans), what="every span")
        time.sleep(0.3)  # a second copy would have arrived by now
    assert sorted((r.trace_id, r.span_id) for r in sink.records) == sorted(key_of(s) for s in spans)
    assert {r.name for r in sink.records} == {s.name for s in spans}


def test_a_spool_written_as_otlp_json_lines_is_replayed(tmp_path: Path) -> None:
    """Spools of the previous version hold span-file lines; after an upgrade they are delivered."""
    spans = make_spans(traces=2, per_trace=3)
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "spool-000000000000.jsonl").write_text(request_to_json(encode_spans(spans)) + "\n")
    sink = PlainSink()
    with receiver(tmp_path, [sink]):
        wait_until(lambda: len(sink.records) == len(spans), what="the replayed spans")
    assert sorted((r.trace_id, r.span_id) for r in sink.records) == sorted(key_of(s) for s in spans)


class Fsyncs:
    """``os.fsync`` as the spool calls it, counted, optionally held until ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold: bool = False) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        real = os.fsync

        def fsync(fd: Any) -> None:
            self.calls += 1
            self.entered.set()
            assert self.gate.wait(10)
            time.sleep(0.005)
            real(fd)

        monkeypatch.setattr(spool_module.os, "fsync", fsync)


def test_concurrent_appends_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, max_pending_bytes=10**8, dedup_keys=10_000)
    fsyncs = Fsyncs(monkeypatch)

    def appender(n: int) -> None:
        for i in range(25):
            assert spool.append(b'{"n":%d}' % (n * 100 + i), [bytes([n, i]) * 12]) is None

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spool.unread_entries()) == 200
    assert fsyncs.calls < 200  # group commit: waiting appenders were covered by one fsync
    spool.close()


def test_no_answer_and_no_read_before_the_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append, and a retry of the same spans, return only once the line is fsynced."""
    spool = Spool(tmp_path, max_pending_bytes=10**8, dedup_keys=100)
    fsyncs = Fsyncs(monkeypatch, hold=True)
    key = [b"k" * 24]
    returned: list[str] = []
    first = threading.Thread(target=lambda: returned.append(f"first {spool.append(b'{}', key)}"))
    first.start()
    assert fsyncs.entered.wait(5)
    retry = threading.Thread(target=lambda: returned.append(f"retry {spool.append(b'{}', key)}"))
    retry.start()
    retry.join(0.5)
    assert returned == [] and retry.is_alive()  # the retry's spans are not durable yet either
    assert spool.read(10, 10**6) == []  # nor may the worker feed them to a sink
    fsyncs.gate.set()
    first.join(5)
    retry.join(5)
    assert sorted(returned) == ["first None", "retry []"]
    assert [e.line for e in spool.read(10, 10**6)] == [b"{}"]
    spool.close()


def test_an_entry_the_sinks_keep_refusing_is_dead_lettered_as_a_span_file(tmp_path: Path) -> None:
    """The spool holds protobuf, the dead letter stays OTLP/JSON lines that `sync` reads."""
    flag = tmp_path / "down"
    flag.touch()
    spans = make_spans(traces=2, per_trace=3)
    sink = RecordingSink(fail_flag=flag)
    with receiver(tmp_path, [sink], retry_for_s=0.5) as server:
        assert post(server.http_port, encode_spans(spans).SerializeToString(), PB)[0] == 200
        assert server.receiver is not None
        rx = server.receiver
        wait_until(lambda: rx.dead_lettered == 1, what="the entry dead-lettered")
    lines = (tmp_path / "spool" / "dead-letter.jsonl").read_bytes().splitlines()
    assert len(lines) == 1 and lines[0].startswith(b"{")
    read = list(read_span_file(tmp_path / "spool" / "dead-letter.jsonl"))
    assert sorted((r.trace_id, r.span_id) for r in read) == sorted(key_of(s) for s in spans)
