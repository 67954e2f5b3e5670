"""OTLP/JSON-lines span files, one per run, appended as spans end.

A line is written and flushed per export batch, so a killed process keeps everything exported
before it died; ``otel-bridge show`` and ``sync`` read these files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import conventions as c
from otel_bridge.otlp_json import spans_to_json

SUFFIX = ".jsonl"


def file_key(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    run_id = attrs.get(c.RUN_ID)
    if run_id:
        return str(run_id)
    eval_set = attrs.get(c.EVAL_SET_ID)
    return f"eval-set-{eval_set}" if eval_set else "misc"


class FileSpanExporter(SpanExporter):
    """Writes each batch as one OTLP/JSON line into the file of the run it belongs to."""

    def __init__(self, directory: Path, prefix: str = "") -> None:
        self.directory = directory
        self.prefix = prefix
        self.paths: dict[str, Path] = {}
        self._handles: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None

    def path_for(self, key: str) -> Path:
        path = self.paths.get(key)
        if path is None:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            path = self.directory / f"{self.prefix}{stamp}_{key}{SUFFIX}"
            existing = sorted(self.directory.glob(f"{self.prefix}*_{key}{SUFFIX}"))
            if existing:  # a run resumed in this process, or a second exporter for it
                path = existing[-1]
            self.paths[key] = path
        return path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        groups: dict[str, list[ReadableSpan]] = {}
        for span in spans:
            groups.setdefault(file_key(span), []).append(span)
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
        return True
