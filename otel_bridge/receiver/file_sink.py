"""The ``file`` record sink: received spans into span files, so the receiver works with nothing else set up.

Files have the in-process span-file format (OTLP/JSON lines, one file per Inspect run), so
``otel-bridge show`` and ``otel-bridge sync --to weave,wandb`` work on them later. Names carry a
per-receiver prefix: two receivers writing into one directory never share a file. A span already
written (seen in this process or in this receiver's recent files) is skipped, which makes a spool
replay after a crash idempotent.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_bridge import conventions as c
from otel_bridge.otlp_json import request_to_json
from otel_bridge.records import FileReadReport, NotASpanFile, SpanRecord, read_span_file
from otel_bridge.sinks.file import SUFFIX

_STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
_INT64 = 2**63


def _any(value: Any) -> AnyValue:
    v = AnyValue()
    if value is None:
        return v
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int) and -_INT64 <= value < _INT64:
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list | tuple):
        v.array_value.values.extend(_any(x) for x in value)
    elif isinstance(value, dict):
        v.kvlist_value.values.extend(_kvs(value))
    else:
        v.string_value = str(value)
    return v


def _kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=str(k), value=_any(v)) for k, v in attrs.items()]


def records_to_request(records: Sequence[SpanRecord]) -> ExportTraceServiceRequest:
    """Inverse of ``records.from_request`` (bytes attribute values stay hex strings; scope is not kept)."""
    request = ExportTraceServiceRequest()
    by_resource: dict[str, Any] = {}
    for r in records:
        rkey = json.dumps(r.resource, sort_keys=True, default=str)
        scope_spans = by_resource.get(rkey)
        if scope_spans is None:
            rs = request.resource_spans.add()
            rs.resource.attributes.extend(_kvs(r.resource))
            scope_spans = rs.scope_spans.add()
            by_resource[rkey] = scope_spans
        span = Span(
            trace_id=bytes.fromhex(r.trace_id),
            span_id=bytes.fromhex(r.span_id),
            parent_span_id=bytes.fromhex(r.parent_id) if r.parent_id else b"",
            name=r.name,
            kind=r.kind,  # type: ignore[arg-type]
            start_time_unix_nano=r.start_ns,
            end_time_unix_nano=r.end_ns,
            status=Status(code=_STATUS_CODES.get(r.status, 0), message=r.status_message),  # type: ignore[arg-type]
        )
        span.attributes.extend(_kvs(r.attributes))
        for e in r.events:
            event = span.events.add()
            event.name = e.name
            event.time_unix_nano = e.time_ns
            event.attributes.extend(_kvs(e.attributes))
        for trace_id, span_id in r.links:
            link = span.links.add()
            link.trace_id = bytes.fromhex(trace_id)
            link.span_id = bytes.fromhex(span_id)
        scope_spans.spans.append(span)
    return request


def file_key(record: SpanRecord) -> str:
    """Same grouping as the in-process span files: by Inspect run, else eval set, else ``misc``."""
    run_id = record.attributes.get(c.RUN_ID)
    if run_id:
        return str(run_id)
    eval_set = record.attributes.get(c.EVAL_SET_ID)
    return f"eval-set-{eval_set}" if eval_set else "misc"


class FileRecordSink:
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
            existing = sorted(self.directory.glob(f"{self.prefix}*_{key}{SUFFIX}"))
            if existing:
                path = existing[-1]
            else:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                path = self.directory / f"{self.prefix}{stamp}_{key}{SUFFIX}"
            self._paths[key] = path
        return path

    def consume(self, records: Sequence[SpanRecord]) -> None:
        groups: dict[str, list[SpanRecord]] = {}
        for r in records:
            if (r.trace_id, r.span_id) not in self._seen:
                groups.setdefault(file_key(r), []).append(r)
        if not groups:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for key, group in groups.items():
                handle = self._handles.get(key)
                if handle is None:
                    handle = open(self._path_for(key), "a", encoding="utf-8")  # noqa: SIM115
                    self._handles[key] = handle
                handle.write(request_to_json(records_to_request(group)) + "\n")
                handle.flush()
                for r in group:
                    self._remember((r.trace_id, r.span_id))
                self.written += len(group)
        except OSError as exc:
            self._error = f"cannot write span files in {self.directory} ({exc})"
            raise

    def flush(self, timeout_s: float) -> bool:
        try:
            for handle in self._handles.values():
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self._error = f"cannot write span files in {self.directory} ({exc})"
            return False
        return True

    def finalize_incomplete(self, reason: str) -> None:
        """Span files hold raw spans; there is no task state to end."""

    def close(self) -> None:
        self.flush(0)
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def problem(self) -> str | None:
        return self._error
