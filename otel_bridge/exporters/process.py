"""Feeds an exporter running in a worker process (``otel_bridge.exporters.worker``).

On the eval's loop ``on_end`` only filters and enqueues (``exporters.feed``: a byte-bounded
queue); a writer thread encodes batches as OTLP/JSON lines into the worker's stdin. The worker's
SDK imports, translation and writes use another core instead of the eval's GIL, and the worker
reads its stdin on a thread of its own, so a slow backend never backs the pipe up into this
queue. Bounded everywhere: flushes wait at most their timeout, and the stop is in two halves
(``begin_stop`` for every worker at once, then ``finish_stop`` against one shared deadline) so
the end of a run waits once for all destinations, not for each in turn. What a worker did not
confirm is described by ``undelivered`` for the pipeline's one closing line.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_bridge import config, notify
from otel_bridge.exporters.feed import STOP, SpanFeed
from otel_bridge.exporters.worker_protocol import (
    REPORTED,
    Flush,
    LogCopy,
    Secrets,
    flush_frame,
    logcopy_frame,
    metrics_frame,
    parse_ack,
    secrets_frame,
)
from otel_bridge.otlp_json import spans_to_json

#: The most one worker's feed queue holds in the eval's process (estimated from encoded sizes).
WORKER_FEED_MAX_BYTES = 64 * 1024 * 1024


class WorkerSpanProcessor(SpanProcessor):
    """A span processor whose exporter runs in ``python -m otel_bridge.exporters.worker NAME``."""

    def __init__(
        self,
        name: str,
        span_names: frozenset[str] | None,
        max_bytes: int = WORKER_FEED_MAX_BYTES,
        batch: int = 256,
        delay_s: float = 0.05,
        kept: str | None = None,
    ) -> None:
        self.name = name
        self.names = span_names
        #: What the user is told keeps what this worker could not deliver, and how to send it.
        self.kept = kept or (
            f"the span file keeps its spans — deliver them later with `otel-bridge sync <file> --to {name}`"
        )
        #: The worker's latest report (spans not delivered or dropped, last error, kept files).
        self.report: dict[str, Any] = {}
        #: The worker's messages for the user, for the closing line (in the order they came).
        self.notes: list[str] = []
        self.final = False  # the worker sent its final report: it finished its work
        self.killed = False  # stopped at the exit deadline
        self.broken: str | None = None  # why the worker stopped early
        self._ids = itertools.count(1)
        self._acks: dict[int, tuple[threading.Event, list[bool]]] = {}
        self._stopping = False
        self._finished = False
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
        self.feed = SpanFeed(
            f"otel-bridge-{name}", self._deliver, self._control, max_bytes, delay_s, batch, block_s=0.25
        )
        self._reader = threading.Thread(target=self._read_acks, name=f"otel-bridge-{name}-acks", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    # ------------------------------------------------------------------ SpanProcessor
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.names is None or span.name in self.names:
            self.feed.put(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self.broken is not None or self._stopping:
            return True  # nothing more can be delivered; the failure is reported once
        timeout_s = timeout_millis / 1000
        ident = next(self._ids)
        done = threading.Event()
        result: list[bool] = []
        self._acks[ident] = (done, result)
        self.feed.send(Flush(ident, timeout_s))
        finished = done.wait(timeout_s)
        self._acks.pop(ident, None)
        return finished and bool(result) and result[0]

    def tell_secrets(self, values: dict[str, str]) -> None:
        """Secret values new to the eval's environment: in order with the spans, over the pipe."""
        self.feed.send(Secrets(dict(values)))

    def copy_log(self, log: str, dest: Path) -> bool:
        """A finished task's log for the worker to copy redacted into ``dest`` (``logcopies``);
        False when the worker has stopped (the caller copies it itself)."""
        if self.broken is not None or self._stopping:
            return False
        self.feed.send(LogCopy(log, str(dest)))
        return True

    def shutdown(self) -> None:
        self.begin_stop()
        self.finish_stop(time.monotonic() + 30.0)

    def send_metrics(self, line: str) -> None:
        """Queue one metric-file line for the worker's metrics export (a metrics frame, in order)."""
        self.feed.send(_MetricsLine(line))

    def begin_stop(self) -> None:
        """Send what is queued, then end the worker's input: it finishes its runs and exits."""
        if not self._stopping:
            self._stopping = True
            self.feed.send(STOP)

    def finish_stop(self, deadline: float) -> None:
        """Wait until ``deadline`` (time.monotonic) for the worker to finish; stop it after that."""
        if self._finished:
            return
        self._finished = True
        self.begin_stop()
        self.feed.join(deadline - time.monotonic())
        try:
            code = self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.killed = True
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=2)
            return
        self._reader.join(timeout=max(0.2, deadline - time.monotonic()))  # its final report
        if code not in (0, None, REPORTED) and self.broken is None:
            self.broken = f"exit status {code}"

    def undelivered(self) -> str | None:
        """What this destination did not confirm, for the closing line (None: all delivered)."""
        parts: list[str] = []
        dropped = self.feed.dropped + int(self.report.get("dropped") or 0)
        failed = int(self.report.get("failed") or 0)
        if failed:
            error = self.report.get("error") or "export failed"
            parts.append(f"{failed} span(s) not delivered to {self.report.get('endpoint')} ({error})")
        if dropped:
            parts.append(f"{dropped} span(s) dropped (queue full)")
        why = self.unconfirmed()
        if why is not None:
            parts.append(f"{self.feed.delivered} span(s) sent, {why}" if self.killed else why)
        return f"{self.name}: " + ", ".join(parts) if parts else None

    def unconfirmed(self) -> str | None:
        """Why the worker's final word is missing: stopped at the exit deadline, failed, silent."""
        if self.killed:
            return "not confirmed by the exit deadline"
        if self.broken is not None:
            return f"its process failed ({self.broken})"
        if not self.final and self._finished:
            return "no final report"
        return None

    def said(self) -> str | None:
        """The worker's own messages, for the closing line."""
        return f"{self.name}: " + "; ".join(n.rstrip(".") for n in self.notes) + "." if self.notes else None

    # ------------------------------------------------------------------ threads
    def _deliver(self, spans: list[ReadableSpan]) -> int:
        line = spans_to_json(spans)
        self._send(line)
        return len(line)

    def _control(self, item: object) -> None:
        if item is STOP:  # end of input: the worker finishes its runs and exits
            with contextlib.suppress(OSError):
                self._stdin.close()
        elif isinstance(item, Flush):
            self._send(flush_frame(item))
        elif isinstance(item, _MetricsLine):
            self._send(metrics_frame(item.line))
        elif isinstance(item, Secrets):
            self._send(secrets_frame(item))
        elif isinstance(item, LogCopy):
            self._send(logcopy_frame(item))

    def _send(self, line: str) -> None:
        if self.broken is not None:
            return
        try:
            self._stdin.write(line.encode("utf-8") + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            if not self.killed:
                self._set_broken("it stopped")

    def _read_acks(self) -> None:
        for line in self._ack_pipe:
            ack = parse_ack(line)
            if ack is None:
                with contextlib.suppress(Exception):  # the worker's SDKs printing: pass it on
                    sys.stdout.write(line)
                    sys.stdout.flush()
                continue
            if ack.note is not None:
                self.notes.append(ack.note)
                continue
            self.report = ack.report
            self.final = self.final or ack.final
            waiting = self._acks.get(ack.ident) if ack.ident is not None else None
            if waiting is not None:
                waiting[1].append(ack.ok)
                waiting[0].set()
        for done, _ in list(self._acks.values()):  # the worker is gone: wake every waiting flush
            done.set()
        if not self._stopping:
            try:
                code = self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            self._set_broken("it stopped" if code is None else f"exit status {code}", said=code == REPORTED)

    def _set_broken(self, why: str, said: bool = False) -> None:
        self.broken = why
        if not said:  # REPORTED: the worker already said why
            notify.say(
                f"the {self.name} exporter process failed ({why}); {self.kept}.",
                key=f"worker-broken:{self.name}",
            )
        with contextlib.suppress(OSError):
            self._stdin.close()


class _MetricsLine:
    """A feed control item: one metric-file line for the worker (never refused, kept in order)."""

    __slots__ = ("line",)

    def __init__(self, line: str) -> None:
        self.line = line


class MetricsWorker:
    """The eval's end of the metrics frame: OTLP metrics exported by ``worker … metrics``.

    Each metric-file line (the eval's only encoding of a collection) is queued for the worker,
    which adds the lines up and exports them (``exporters.worker_metrics``); stopped with the
    span workers against the same exit deadline.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        kept = "the metric file keeps them — deliver them later with `otel-bridge sync <span file> --to otlp`"
        # no spans: its feed thread wakes for the frames themselves, not on a short timer
        self.worker = WorkerSpanProcessor("metrics", frozenset(), delay_s=1.0, kept=kept)

    def send(self, line: str) -> None:
        self.worker.send_metrics(line)

    def begin_stop(self) -> None:
        self.worker.begin_stop()

    def finish_stop(self, deadline: float) -> None:
        self.worker.finish_stop(deadline)

    def undelivered(self) -> str | None:
        """What the endpoint has not confirmed (None: all delivered, as far as the worker said)."""
        w = self.worker
        report = w.report.get("metrics") or {}
        failed = int(report.get("failed") or 0)
        if failed:
            return f"{failed} metric point(s) not delivered: {report.get('error') or 'export failed'}"
        if w.broken is not None and not w.killed:
            return None  # said once when it failed, with where the points are kept
        return w.unconfirmed()
