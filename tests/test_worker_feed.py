"""A worker's stdin is read while its sink is busy: a slow backend never backs up the eval's feed.

A real OTLP worker (``python -m otel_bridge.exporters.worker otlp``) exports to a real OTLP/HTTP
receiver on loopback (``tests/support/otlp_capture.py``) that holds every request until the test
releases it: the stand-in for a stuck backend, since no real backend can be made to stall on
cue. While the first request hangs, the test writes ~24 MB of span batches into the worker's
stdin, 400 times what a pipe buffers. Before the worker read its stdin on its own thread those
writes blocked until the backend answered (and the eval's side dropped spans); now they finish
while the backend is still stuck, and after the release every span arrives, none dropped.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from otel_bridge.exporters.worker_protocol import parse_ack
from otel_bridge.otlp_json import spans_to_json
from tests.support.bridge import ROOT, subprocess_env
from tests.support.otlp_capture import OtlpCapture

LINES = 48
SPANS_PER_LINE = 256
PAYLOAD = "x" * 1800  # ~2 KB a span: ~24 MB in all


def _lines() -> tuple[list[bytes], set[tuple[str, str]]]:
    lines: list[bytes] = []
    keys: set[tuple[str, str]] = set()
    for n in range(LINES):
        spans = []
        for i in range(SPANS_PER_LINE):
            trace_id, span_id = n + 1, i + 1
            context = SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.SAMPLED))
            spans.append(
                ReadableSpan(
                    name="work",
                    context=context,
                    attributes={"payload": PAYLOAD, "n": n},
                    start_time=1_000_000_000,
                    end_time=2_000_000_000,
                )
            )
            keys.add((f"{trace_id:032x}", f"{span_id:016x}"))
        lines.append(spans_to_json(spans).encode() + b"\n")
    return lines, keys


def test_a_stuck_backend_does_not_back_up_the_workers_input(tmp_path: Path) -> None:
    lines, keys = _lines()
    released = threading.Event()
    with OtlpCapture() as capture:
        handle = capture._handle

        def stuck(*args: Any) -> None:  # every request waits until the test releases the backend
            released.wait(timeout=60)
            handle(*args)

        capture._handle = stuck  # type: ignore[method-assign]
        env = subprocess_env(
            {
                "INSPECT_OTEL_EXPORTERS": "file,otlp",  # the span file has them: no spill file
                "INSPECT_OTEL_DIR": str(tmp_path / "spans"),
                "OTEL_EXPORTER_OTLP_ENDPOINT": capture.http_endpoint,
                "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
            }
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "otel_bridge.exporters.worker", "otlp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        assert worker.stdin is not None and worker.stdout is not None
        started = time.monotonic()
        for line in lines:
            worker.stdin.write(line)
            worker.stdin.flush()
        written_s = time.monotonic() - started
        backend_still_stuck = not released.is_set() and len(capture.received) == 0
        released.set()
        worker.stdin.close()
        acks = [a for raw in worker.stdout if (a := parse_ack(raw.decode())) is not None]
        assert worker.wait(timeout=120) == 0
        received = capture.wait_for(len(keys), timeout=60)
    print(f"worker feed: {sum(map(len, lines)) / 1e6:.1f} MB written in {written_s:.2f}s, backend stuck")
    assert backend_still_stuck, "all of the input was taken while the backend had not answered once"
    (final,) = [a for a in acks if a.final]
    assert final.report["dropped"] == 0 and final.report["failed"] == 0, final.report
    assert {s.key for s in received} == keys
