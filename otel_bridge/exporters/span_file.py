"""OTLP/JSON-lines span files, one per run, appended as spans end: the bridge's safety net.

``SpanFileProcessor`` is the file's feed: the eval's loop only appends each ended span to a
byte-bounded queue (``exporters.feed``); a thread writes what gathered every
``FILE_INTERVAL_S`` as one line per run and hands it to the OS (no fsync: a killed process
loses nothing written, a lost machine may). So after ``kill -9`` of the eval, every span that
ended more than ``FILE_INTERVAL_S`` plus one write before the kill is in the file. A full queue
makes the loop wait briefly rather than drop; a failed write (disk full, read-only directory,
file size limit) is said once, with the reason and the path, and never reaches the eval. A
failed write leaves no half line behind (the file is cut back to its last whole line).
``otel-bridge show`` and ``sync`` read these files.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import notify, spanfiles
from otel_bridge.exporters.feed import STOP, FlushMark, SpanFeed
from otel_bridge.otlp_json import spans_to_json

#: How long ended spans gather before the thread writes them (the window a kill -9 can lose).
FILE_INTERVAL_S = 0.2
#: The most the span file's queue holds (estimated from the encoded size of written spans).
FILE_QUEUE_MAX_BYTES = 64 * 1024 * 1024


class SpanFileExporter(SpanExporter):
    """Writes each batch as one OTLP/JSON line into the file of the run it belongs to.

    Args:
        directory: where the files go (created on the first export).
        prefix: prepended to every file name (e.g. ``undelivered-``), so writers never share a file.
    """

    def __init__(self, directory: Path | str, prefix: str = "") -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        #: The file of each run key written so far.
        self.paths: dict[str, Path] = {}
        self._handles: dict[str, BinaryIO] = {}
        self._lock = threading.Lock()
        self.written = 0
        self.written_bytes = 0
        self.failed = 0
        self.last_error: str | None = None
        self.failed_path: Path | None = None  # where the last failed write went

    def path_for(self, key: str) -> Path:
        path = self.paths.get(key)
        if path is None:
            path = self.paths[key] = spanfiles.path_for(self.directory, self.prefix, key)
        return path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS if self.write(spans) >= 0 else SpanExportResult.FAILURE

    def write(self, spans: Sequence[ReadableSpan]) -> int:
        """Append ``spans``; the bytes written, or -1 when some could not be (counted, not raised)."""
        groups: dict[str, list[ReadableSpan]] = {}
        for span in spans:
            groups.setdefault(spanfiles.file_key(span.attributes or {}), []).append(span)
        total, ok = 0, True
        with self._lock:
            for key, group in groups.items():
                data = (spans_to_json(group) + "\n").encode("utf-8")
                target = self.path_for(key)
                try:
                    self._append(key, target, data)
                except Exception as exc:  # disk full, permissions, size limit: counted and reported
                    ok = False
                    self.failed += len(group)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self.failed_path = target if target.parent.is_dir() else self.directory
                    continue
                self.written += len(group)
                total += len(data)
        self.written_bytes += total
        return total if ok else -1

    def _append(self, key: str, path: Path, data: bytes) -> None:
        handle = self._handles.get(key)
        if handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = self._handles[key] = open(path, "ab", buffering=0)  # noqa: SIM115
        start = handle.tell()
        try:
            view = memoryview(data)
            while view:  # an unbuffered write may be short (a size limit reached mid-line)
                n = handle.write(view)
                if not n:
                    raise OSError("short write")
                view = view[n:]
        except BaseException:
            with contextlib.suppress(OSError):  # no half line: a reader would see a damaged file
                os.ftruncate(handle.fileno(), start)
            raise

    def close_run(self, key: str) -> None:
        """The run ended: release its file handle (a later export reopens it for appending)."""
        with self._lock:
            handle = self._handles.pop(key, None)
            if handle is not None:
                handle.close()

    def shutdown(self) -> None:
        with self._lock:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written before it returns


class SpanFileProcessor(SpanProcessor):
    """Feeds a ``SpanFileExporter`` from its own thread (see the module docstring)."""

    def __init__(
        self,
        exporter: SpanFileExporter,
        interval_s: float = FILE_INTERVAL_S,
        max_bytes: int = FILE_QUEUE_MAX_BYTES,
    ) -> None:
        self.exporter = exporter
        self._reported_failed = 0
        self.feed = SpanFeed(
            "otel-bridge-span-file",
            self._deliver,
            self._control,
            max_bytes=max_bytes,
            interval_s=interval_s,
            on_drop=self._say_dropping,
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.feed.put(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if not self.feed.alive:
            return True
        mark = FlushMark()
        self.feed.send(mark)
        return mark.done.wait(timeout_millis / 1000)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        if self.feed.alive:
            self.feed.send(STOP)
            self.feed.join(timeout_s)
        self.exporter.shutdown()

    @property
    def lost(self) -> int:
        """Spans that are not in the span file: refused by a full queue or not written."""
        return self.feed.dropped + self.exporter.failed

    def _deliver(self, spans: list[ReadableSpan]) -> int:
        written = self.exporter.write(spans)
        if written < 0:
            e = self.exporter
            notify.say(
                f"could not write the span file {e.failed_path} ({e.last_error}); spans (and redacted log "
                "copies) that cannot be written there are not kept (the eval and its log are unaffected).",
                key="span-file-write",
            )
        return written

    @staticmethod
    def _control(item: object) -> None:
        return None  # flush marks are set by the feed; the stop needs nothing more here

    def _say_dropping(self) -> None:
        notify.say(
            "the span file's writer is behind and its queue is full; spans that still find no room "
            "after a short wait are dropped from it (the eval is unaffected).",
            key="span-file-full",
        )
