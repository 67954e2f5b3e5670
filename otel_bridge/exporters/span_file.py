"""OTLP/JSON-lines span files, one per run, appended as spans end.

A line is written and flushed per export batch, so a killed process keeps everything exported
before it died; ``otel-bridge show`` and ``sync`` read these files.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import spanfiles
from otel_bridge.otlp_json import spans_to_json


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
        self._handles: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None

    def path_for(self, key: str) -> Path:
        path = self.paths.get(key)
        if path is None:
            path = self.paths[key] = spanfiles.path_for(self.directory, self.prefix, key)
        return path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        groups: dict[str, list[ReadableSpan]] = {}
        for span in spans:
            groups.setdefault(spanfiles.file_key(span.attributes or {}), []).append(span)
        try:
            with self._lock:
                self.directory.mkdir(parents=True, exist_ok=True)
                for key, group in groups.items():
                    handle = self._handles.get(key)
                    if handle is None:
                        handle = open(self.path_for(key), "a", encoding="utf-8")  # noqa: SIM115
                        self._handles[key] = handle
                    handle.write(spans_to_json(group) + "\n")
                    handle.flush()
                    self.written += len(group)
        except Exception as exc:  # disk full, permissions: counted and reported, never raised
            self.failed += len(spans)
            self.last_error = f"{type(exc).__name__}: {exc}"
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

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
        return True  # every export is written and flushed before it returns
