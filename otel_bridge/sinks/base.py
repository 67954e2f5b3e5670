"""The contract between span sources and the translating sinks (Weave, W&B Models).

Every source — the in-process pipeline, the OTLP receiver, ``otel-bridge sync`` — hands ended
spans to a ``RecordSink`` as ``SpanRecord``s, so one translation serves all three. A sink's
``consume`` must be idempotent (a span seen twice changes nothing) and must tolerate any
arrival order and batch boundary.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_bridge import notify
from otel_bridge.records import SpanRecord, from_readable


class RecordSink(Protocol):
    """A sink may also set ``span_names`` (a frozenset): the only spans it uses, so the
    in-process processor skips the others before queueing them."""

    name: str

    def consume(self, records: Sequence[SpanRecord]) -> None:
        """Apply these ended spans. Idempotent; called from one worker thread at a time."""

    def flush(self, timeout_s: float) -> bool:
        """Finish outstanding writes; True when everything was written."""

    def finalize_incomplete(self, reason: str) -> None:
        """Nothing more will arrive for tasks still open: end them as failed with ``reason``.

        Called by ``sync`` at the end of a file and by the in-process pipeline at exit; the
        receiver calls it only for tasks it considers abandoned.
        """

    def close(self) -> None:
        """Flush and release resources (does not finalise anything)."""

    def problem(self) -> str | None:
        """One line for the user when something could not be delivered, else None."""


_STOP = object()


class RecordSinkProcessor(SpanProcessor):
    """Runs a RecordSink off the eval's hot path: bounded queue, one worker thread.

    When the queue is full the span is dropped from this sink only (the span file still has
    it, and ``otel-bridge sync`` can deliver it later); the drop count is reported once.
    """

    def __init__(self, sink: RecordSink, max_queue: int = 20_000, batch: int = 256) -> None:
        self.sink = sink
        self.names: frozenset[str] | None = getattr(sink, "span_names", None)
        self.batch = batch
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue(max_queue)
        self._idle = threading.Event()
        self._idle.set()
        self._worker = threading.Thread(target=self._run, name=f"otel-bridge-{sink.name}", daemon=True)
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        # runs on the eval's loop: filter and enqueue only, the worker converts
        if self.names is not None and span.name not in self.names:
            return
        try:
            self._idle.clear()
            self._queue.put_nowait(span)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._idle.set()
                return
            records = [item]
            while len(records) < self.batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    break
                records.append(nxt)
            try:
                self.sink.consume([from_readable(r) for r in records if isinstance(r, ReadableSpan)])
            except Exception as exc:
                notify.say(
                    f"the {self.sink.name} exporter failed ({type(exc).__name__}: {exc}); the span file "
                    f"keeps everything — deliver later with `otel-bridge sync <file> --to {self.sink.name}`.",
                    key=f"sink-failed:{self.sink.name}",
                )
            if self._queue.empty():
                self._idle.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        drained = self._idle.wait(timeout_millis / 1000)
        return drained and self.sink.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        self._queue.put(_STOP)
        self._worker.join(timeout=10)
        try:
            self.sink.finalize_incomplete("the process exited before the task finished")
            self.sink.close()
        except Exception as exc:
            notify.say(f"the {self.sink.name} exporter could not finish ({type(exc).__name__}: {exc}).")
        if self.dropped:
            notify.say(
                f"{self.dropped} span(s) were not sent to {self.sink.name} (its queue was full); "
                f"the span file keeps them — `otel-bridge sync <file> --to {self.sink.name}` delivers them."
            )
