"""The ``file`` record sink: received spans into span files, so the receiver works with nothing else set up.

Files have the in-process span-file format (OTLP/JSON lines, one file per Inspect run), so
``otel-bridge show`` and ``otel-bridge sync --to weave,wandb`` work on them later. Names carry a
per-receiver prefix: two receivers writing into one directory never share a file. A span already
written (seen in this process or in this receiver's recent files) is skipped, which makes a spool
replay after a crash idempotent.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from otel_bridge import conventions as c
from otel_bridge import spanfiles
from otel_bridge.records import FileReadReport, NotASpanFile, SpanRecord, read_span_file, records_to_json
from otel_bridge.sinks.base import DeliveryError, RecordSink
from otel_bridge.spanfiles import SUFFIX

_RUN_ENDS = frozenset({c.SPAN_RUN, c.SPAN_EVAL_SET})


class FileRecordSink(RecordSink):
    """A ``RecordSink`` writing span files; fsynced on ``flush`` (the receiver commits after that)."""

    name = "file"

    def __init__(self, directory: Path, prefix: str, remember: int = 200_000) -> None:
        self.directory = directory
        self.prefix = prefix
        self.written = 0
        self._paths: dict[str, Path] = {}
        self._handles: dict[str, IO[str]] = {}
        self._seen: set[tuple[str, str]] = set()
        self._order: deque[tuple[str, str]] = deque()
        self._remember_max = remember
        self._error: str | None = None
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._ended: set[str] = set()
        self._load_recent()

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._remember_max:
            self._seen.discard(self._order.popleft())

    def _load_recent(self) -> None:
        """Rebuild the seen-set from this receiver's newest files (what a replay could repeat)."""
        if not self.directory.is_dir():
            return
        files = sorted(
            self.directory.glob(f"{self.prefix}*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        keys: list[tuple[str, str]] = []
        for path in files:
            try:
                keys.extend((r.trace_id, r.span_id) for r in read_span_file(path, FileReadReport(path)))
            except (OSError, NotASpanFile):
                continue
            if len(keys) >= self._remember_max:
                break
        for key in reversed(keys[: self._remember_max]):
            self._remember(key)

    def _path_for(self, key: str) -> Path:
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = spanfiles.path_for(self.directory, self.prefix, key)
        return path

    def consume(self, records: Sequence[SpanRecord]) -> None:
        with self._lock:
            self._consume(records)

    def _consume(self, records: Sequence[SpanRecord]) -> None:
        groups: dict[str, list[SpanRecord]] = {}
        for r in records:
            if (r.trace_id, r.span_id) not in self._seen:
                groups.setdefault(spanfiles.file_key(r.attributes), []).append(r)
        if not groups:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for key, group in groups.items():
                handle = self._handles.get(key)
                if handle is None:
                    handle = open(self._path_for(key), "a", encoding="utf-8")  # noqa: SIM115
                    self._handles[key] = handle
                handle.write(records_to_json(group) + "\n")
                handle.flush()
                self._dirty.add(key)
                if any(r.name in _RUN_ENDS for r in group):
                    self._ended.add(key)  # closed after its next fsync: file handles stay bounded
                for r in group:
                    self._remember((r.trace_id, r.span_id))
                self.written += len(group)
        except OSError as exc:
            self._error = f"cannot write span files in {self.directory} ({exc})"
            raise DeliveryError(self._error) from exc

    def flush(self, timeout_s: float) -> bool:
        """fsync what was written since the last flush; close the files of runs that ended."""
        with self._lock:
            try:
                for key in list(self._dirty):
                    os.fsync(self._handles[key].fileno())
                    self._dirty.discard(key)
            except OSError as exc:
                self._error = f"cannot write span files in {self.directory} ({exc})"
                return False
            for key in list(self._ended):
                handle = self._handles.pop(key, None)
                if handle is not None:
                    handle.close()
                self._ended.discard(key)
            return True

    def finalize_incomplete(self, reason: str) -> None:
        """Span files hold raw spans; there is no task state to end."""

    def close(self) -> None:
        self.flush(0)
        with self._lock:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()
            self._dirty.clear()

    def problem(self) -> str | None:
        return self._error
