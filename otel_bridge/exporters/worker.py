"""An exporter (W&B, Weave, OTLP) running in its own process, fed span batches on stdin.

The W&B and Weave SDKs cost seconds of CPU to import and start, the OTLP exporter's protobuf
encoding costs more CPU per span than building the span, and all of it holds the GIL: in the
eval's process that time is taken from the eval's event loop. Here it runs beside it. Started by
``otel_bridge.exporters.process``::

    python -m otel_bridge.exporters.worker NAME

The frames are ``otel_bridge.exporters.worker_protocol``'s: span batches, flush requests and
metrics frames (the ``metrics`` worker: ``exporters.worker_metrics``) in, acknowledgements and
notes out (other stdout lines are the SDKs' own output, which the eval's
process passes on; the bridge's own messages are notes, said in the eval's closing line). A
reader thread takes stdin into an inbox bounded in bytes (``INBOX_MAX_BYTES``) while the main
thread does the sink's I/O, so a slow backend never backs the pipe up into the eval's process; a
full inbox drops span batches (counted in the final report, never control frames). End of input
(the eval's process exited, however it exited) ends still-open tasks as failed, closes the sink,
sends a final report (OTLP: spans not delivered, where they are kept) and exits. Settings come
from the same environment as the eval's.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from otel_bridge import notify, redact
from otel_bridge.config import Settings, environment, load_settings
from otel_bridge.exporters.worker_protocol import (
    REPORTED,
    Ack,
    LogCopy,
    Secrets,
    ack_frame,
    parse_control,
    parse_metrics,
)
from otel_bridge.logcopies import LogCopier
from otel_bridge.otlp_json import OtlpJsonError, readable_spans
from otel_bridge.records import records_from_line
from otel_bridge.sinks.base import DeliveryError, RecordSink
from otel_bridge.sinks.registry import make_record_sink

#: The most span data the worker holds that its sink has not taken yet.
INBOX_MAX_BYTES = 256 * 1024 * 1024
_EOF = b""


class Inbox:
    """Lines read from stdin, waiting for the sink: bounded in bytes, in order."""

    def __init__(self, max_bytes: int = INBOX_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.dropped = 0  # spans in batches refused because the inbox was full
        self._lines: deque[bytes] = deque()
        self._ready = threading.Condition()

    def put(self, line: bytes) -> None:
        with self._ready:
            full = self.bytes + len(line) > self.max_bytes and self._lines
            if full and parse_control(line) is None and parse_metrics(line) is None:
                self.dropped += _span_count(line)
                return
            self._lines.append(line)
            self.bytes += len(line)
            self._ready.notify()

    def get(self) -> bytes:
        """The next line; ``_EOF`` once input has ended and everything before it was taken."""
        with self._ready:
            while not self._lines:
                self._ready.wait()
            line = self._lines.popleft()
            self.bytes -= len(line)
            return line

    def read_from(self, stream: BinaryIO) -> None:
        try:
            for raw in stream:
                line = raw.strip()
                if line:
                    self.put(line)
        finally:
            with self._ready:
                self._lines.append(_EOF)
                self._ready.notify()


def _span_count(line: bytes) -> int:
    try:
        doc = json.loads(line)
        return sum(len(ss.get("spans") or []) for rs in doc["resourceSpans"] for ss in rs["scopeSpans"])
    except Exception:
        return 1


class _Target(Protocol):
    def take(self, line: bytes) -> None: ...
    def flush(self, timeout_s: float) -> bool: ...
    def report(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class _RecordTarget:
    """Weave / W&B: the same RecordSink as ``sync`` and the receiver."""

    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink

    def take(self, line: bytes) -> None:
        self.sink.consume(records_from_line(line))

    def flush(self, timeout_s: float) -> bool:
        return self.sink.flush(timeout_s)

    def report(self) -> dict[str, Any]:
        return {}  # the worker adds its inbox's drops

    def close(self) -> None:
        self.sink.finalize_incomplete("the process exited before the task finished")
        self.sink.close()


class _OtlpTarget:
    """The standard OTLP exporter (via ResilientExporter), fed the eval's spans."""

    def __init__(self, settings: Settings) -> None:
        from otel_bridge.exporters.otlp import ResilientExporter, make_otlp_exporter
        from otel_bridge.exporters.span_file import SpanFileExporter

        core = settings.core
        inner, endpoint = make_otlp_exporter(core)
        # without a span file, what could not be delivered is kept in its own file
        spill = None if "file" in core.exporters else SpanFileExporter(core.span_dir, "undelivered-")
        self.spill = spill
        self.exporter = ResilientExporter(inner, endpoint, core.export_max_bytes, spill)

    def take(self, line: bytes) -> None:
        self.exporter.export(readable_spans(line))

    def flush(self, timeout_s: float) -> bool:
        return True  # every line is exported as it arrives

    def report(self) -> dict[str, Any]:
        e = self.exporter
        kept = [str(p) for p in self.spill.paths.values()] if self.spill is not None else []
        return {"failed": e.failed, "error": e.last_error, "endpoint": e.endpoint, "kept": kept}

    def close(self) -> None:
        self.exporter.shutdown()


class _MetricsOnly:
    """The ``metrics`` worker: it takes metrics frames only (``_Metrics``), no spans."""

    def take(self, line: bytes) -> None:
        return None

    def flush(self, timeout_s: float) -> bool:
        return True

    def report(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None


class _Metrics:
    """The metrics frames' handler, started by the first frame (``exporters.worker_metrics``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.target: Any = None

    def take(self, line: bytes) -> None:
        try:
            if self.target is None:
                from otel_bridge.exporters.worker_metrics import MetricsTarget

                self.target = MetricsTarget(self.settings)
            self.target.take(line)
        except Exception as exc:  # never fatal: the metric file keeps every point
            notify.say(
                f"the metrics exporter failed ({type(exc).__name__}: {exc}); the metric file keeps "
                "them — deliver them later with `otel-bridge sync <span file> --to otlp`.",
                key="metrics-failed",
            )

    def report(self) -> dict[str, Any]:
        return {"metrics": self.target.report()} if self.target is not None else {}

    def close(self) -> None:
        if self.target is not None:
            with contextlib.suppress(Exception):  # reported as undelivered points
                self.target.close()


def _target(name: str, settings: Settings) -> _Target | None:
    if name == "otlp":
        return _OtlpTarget(settings)
    if name == "metrics":
        return _MetricsOnly()
    sink = make_record_sink(name, settings)
    return None if sink is None else _RecordTarget(sink)


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C reaches the whole process group: the eval decides, this process ends with its input
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = sys.argv[1:] if argv is None else argv
    name = args[0]
    # acknowledgements share stdout with whatever the SDKs print: marked lines, written whole
    real_stdout = sys.stdout
    writing = threading.Lock()  # notes come from any thread

    def ack(message: Ack) -> None:
        with writing:
            real_stdout.write(ack_frame(message) + "\n")
            real_stdout.flush()

    # the user hears this worker's messages in the eval's one closing line, not as a stream
    notify.relay(lambda message: ack(Ack(None, True, note=message)))

    try:
        settings = load_settings()
        target = _target(name, settings)
    except Exception as exc:
        notify.say(
            f"the {name} exporter could not start ({type(exc).__name__}: {exc}); spans still go to "
            f"the span file — deliver them later with `otel-bridge sync <file> --to {name}`."
        )
        return REPORTED
    if target is None:
        notify.say(f"the {name} exporter is unknown.")
        return REPORTED
    inbox = Inbox()
    metrics = _Metrics(settings)
    # the eval's redacted log copies, made here off its GIL: this process's redactors know every
    # secret the eval told it (redact.remember), so the copy needs nothing more
    patterns = settings.content.redact_patterns
    copies = LogCopier(settings.core.span_dir, lambda _: redact.Redactor(environment(), patterns=patterns))
    threading.Thread(target=inbox.read_from, args=(sys.stdin.buffer,), name="stdin", daemon=True).start()

    def report() -> dict[str, Any]:
        return {**target.report(), **metrics.report(), "dropped": inbox.dropped}

    while (line := inbox.get()) != _EOF:
        control = parse_control(line)
        if isinstance(control, Secrets):  # secrets new to the eval's environment: known from now on
            redact.remember(control.values)
            continue
        if isinstance(control, LogCopy):  # in a thread: flushes are still answered meanwhile
            copies.copy(control.log, Path(control.dest))
            continue
        if control is not None:
            ok = target.flush(control.timeout_s)
            ack(Ack(control.ident, ok, report=report()))
            continue
        if (metric_line := parse_metrics(line)) is not None:
            metrics.take(metric_line)
            continue
        try:
            target.take(line)
        except DeliveryError:
            pass  # the sink said why once and keeps the writes; it tells again at close if they stay
        except OtlpJsonError as exc:  # not expected from the parent; never fatal
            notify.say(f"the {name} exporter got a malformed batch ({exc}); skipped.", key="worker-bad-batch")
        except Exception as exc:
            notify.say(
                f"the {name} exporter failed ({type(exc).__name__}: {exc}); the span file keeps "
                f"everything — deliver later with `otel-bridge sync <file> --to {name}`.",
                key=f"sink-failed:{name}",
            )
    copies.wait(None)  # before the final report; the eval's exit deadline bounds this process
    closed = True
    try:
        metrics.close()
        target.close()
    except Exception as exc:
        closed = False
        notify.say(f"the {name} exporter could not finish ({type(exc).__name__}: {exc}).")
    ack(Ack(None, closed, final=True, report=report()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
