"""Feeds an exporter running in a worker process (``otel_bridge.exporters.worker``).

On the eval's loop ``on_end`` only filters and enqueues; a writer thread encodes batches as
OTLP/JSON lines into the worker's stdin. The worker's SDK imports, translation and writes use
another core instead of the eval's GIL. Bounded everywhere: a full queue drops spans from this
sink only (the span file keeps them), flushes wait at most their timeout, and shutdown waits a
fixed time for the worker to finish its runs before leaving it to ``otel-bridge sync``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import queue
import subprocess
import sys
import threading
import time
from typing import IO, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_bridge import config, notify
from otel_bridge.exporters.worker_protocol import REPORTED, Flush, flush_frame, parse_ack
from otel_bridge.otlp_json import spans_to_json

_STOP = object()


class WorkerSpanProcessor(SpanProcessor):
    """A span processor whose exporter runs in ``python -m otel_bridge.exporters.worker NAME``."""

    def __init__(
        self,
        name: str,
        span_names: frozenset[str] | None,
        max_queue: int = 20_000,
        batch: int = 256,
        delay_s: float = 0.0,
        exit_wait_s: float = 60.0,
    ) -> None:
        self.name = name
        self.names = span_names
        self.batch = batch
        self.delay_s = delay_s  # wait this long to fill a batch (fewer, larger OTLP requests)
        self.exit_wait_s = exit_wait_s  # the most exit waits for the worker to finish
        self.dropped = 0
        #: The worker's latest report (OTLP: spans not delivered, last error, where they are kept).
        self.report: dict[str, Any] = {}
        self._queue: queue.Queue[object] = queue.Queue(max_queue)
        self._ids = itertools.count(1)
        self._acks: dict[int, tuple[threading.Event, list[bool]]] = {}
        self._broken = False
        self._stopping = False
        # stdout carries the acknowledgements (worker_protocol frames); anything else the SDKs print
        # there is relayed to this process's stdout. stderr is inherited.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "otel_bridge.exporters.worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=config.environment(),  # settings made with otel_bridge.configure() included
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._ack_pipe = io.TextIOWrapper(self._proc.stdout, encoding="utf-8", errors="replace")
        self._writer = threading.Thread(target=self._write_loop, name=f"otel-bridge-{name}", daemon=True)
        self._reader = threading.Thread(target=self._read_acks, name=f"otel-bridge-{name}-acks", daemon=True)
        self._writer.start()
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    # ------------------------------------------------------------------ SpanProcessor
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.names is not None and span.name not in self.names:
            return
        try:
            self._queue.put_nowait(span)
        except queue.Full:
            self.dropped += 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._broken:
            return True  # nothing more can be delivered; the failure was reported once
        timeout_s = timeout_millis / 1000
        ident = next(self._ids)
        done = threading.Event()
        result: list[bool] = []
        self._acks[ident] = (done, result)
        try:
            self._queue.put(Flush(ident, timeout_s), timeout=timeout_s)
        except queue.Full:
            return False
        finished = done.wait(timeout_s)
        self._acks.pop(ident, None)
        return finished and bool(result) and result[0]

    def shutdown(self) -> None:
        self._stopping = True
        self._queue.put(_STOP)
        self._writer.join(timeout=10)
        try:
            code = self._proc.wait(timeout=self.exit_wait_s)
            self._reader.join(timeout=5)  # its final report
        except subprocess.TimeoutExpired:
            self._proc.kill()
            notify.say(
                f"the {self.name} exporter did not finish within {self.exit_wait_s:g}s and was stopped; "
                f"the span file keeps everything — `otel-bridge sync <file> --to {self.name}` delivers it."
            )
            return
        if code not in (0, None, REPORTED):
            self._say_broken(f"exit status {code}")
        if self.dropped:
            notify.say(
                f"{self.dropped} span(s) were not sent to {self.name} (its queue was full); "
                f"the span file keeps them — `otel-bridge sync <file> --to {self.name}` delivers them."
            )

    # ------------------------------------------------------------------ threads
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if isinstance(item, Flush):
                self._send_flush(item)
                continue
            spans = [item]
            held: list[object] = []
            deadline = time.monotonic() + self.delay_s
            while len(spans) < self.batch:
                try:
                    remaining = deadline - time.monotonic()
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(nxt, ReadableSpan):
                    spans.append(nxt)
                else:  # a flush or the stop: after this batch, in order
                    held.append(nxt)
                    break
            self._send(spans_to_json(spans))
            for control in held:
                if control is _STOP:
                    self._close_stdin()
                    return
                if isinstance(control, Flush):
                    self._send_flush(control)
        self._close_stdin()

    def _send_flush(self, flush: Flush) -> None:
        self._send(flush_frame(flush))

    def _send(self, line: str) -> None:
        if self._broken:
            return
        try:
            self._stdin.write(line.encode("utf-8") + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._broken = True
            self._say_broken("it stopped")

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()

    def _read_acks(self) -> None:
        for line in self._ack_pipe:
            ack = parse_ack(line)
            if ack is None:
                with contextlib.suppress(Exception):  # the worker's SDKs printing: pass it on
                    sys.stdout.write(line)
                    sys.stdout.flush()
                continue
            self.report = ack.report
            waiting = self._acks.get(ack.ident) if ack.ident is not None else None
            if waiting is not None:
                waiting[1].append(ack.ok)
                waiting[0].set()
        self._broken = True  # the worker is gone: wake every waiting flush
        for done, _ in list(self._acks.values()):
            done.set()
        if not self._stopping:
            try:
                code = self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            if code != REPORTED:  # REPORTED: the worker already said why
                self._say_broken("it stopped" if code is None else f"exit status {code}")

    def _say_broken(self, why: str) -> None:
        notify.say(
            f"the {self.name} exporter process failed ({why}); the span file keeps everything — "
            f"deliver it later with `otel-bridge sync <file> --to {self.name}`.",
            key=f"worker-broken:{self.name}",
        )
