"""The metric file: OTLP/JSON ``ExportMetricsServiceRequest`` lines beside the run's span file.

Each collection appends one line of *delta* points (what changed since the previous line), so a
run's lines add up to that run's totals even when one process runs several evals, and a killed
process keeps every line written before it died. ``otel-bridge show`` sums them; ``otel-bridge
sync --to otlp`` sends each line as the protobuf request it encodes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from otel_bridge import spanfiles

_KINDS = (Counter, Histogram, ObservableCounter, UpDownCounter, ObservableUpDownCounter, ObservableGauge)


def temporalities(delta: bool) -> dict[type, AggregationTemporality]:
    """The SDK's "delta" preference (monotonic kinds as deltas), or cumulative for every kind."""
    monotonic = (Counter, Histogram, ObservableCounter)
    return {
        kind: AggregationTemporality.DELTA
        if delta and kind in monotonic
        else AggregationTemporality.CUMULATIVE
        for kind in _KINDS
    }


def has_points(data: MetricsData) -> bool:
    return any(
        metric.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


def to_json(data: MetricsData) -> str:
    """SDK metrics → one OTLP/JSON line (no bytes fields: exemplars are off)."""
    doc = json_format.MessageToDict(encode_metrics(data), use_integers_for_enums=True)
    return json.dumps(doc, separators=(",", ":"))


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, request dict) of every readable line; a damaged line (killed writer) is skipped."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "resourceMetrics" in doc:
                yield number, doc


def to_request(doc: dict[str, Any]) -> ExportMetricsServiceRequest:
    return json_format.ParseDict(doc, ExportMetricsServiceRequest(), ignore_unknown_fields=True)


class MetricFileExporter(MetricExporter):
    """Appends each collection's delta points to the metric file of the current run.

    Args:
        span_path: the span file a run key's spans go to (the span-file exporter's own choice,
            so both files share a stem); the metric file is named from it.
        forward: also given every line (the OTLP export's worker), written to the file or not.
    """

    def __init__(
        self, span_path: Callable[[str], Path], forward: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(preferred_temporality=temporalities(delta=True))
        self.span_path = span_path
        self.forward = forward
        self.key = "misc"  # the run the next lines belong to (set when a run starts)
        self.paths: dict[str, Path] = {}
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        path = self.paths.get(key)
        if path is None:
            path = self.paths[key] = spanfiles.metrics_path(self.span_path(key))
        return path

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not has_points(metrics_data):
            return MetricExportResult.SUCCESS
        try:
            line = to_json(metrics_data)
            if self.forward is not None:
                self.forward(line)  # one encoding for both: the worker adds the deltas up
            with self._lock:
                path = self.path_for(self.key)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                self.written += 1
        except Exception as exc:  # disk full, permissions: counted and reported, never raised
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True  # every line is written and closed before export returns

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None
