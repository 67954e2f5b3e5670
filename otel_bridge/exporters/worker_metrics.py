"""The worker's end of the metrics frame: the eval's metric lines rebuilt and sent over OTLP.

The eval's process keeps only the SDK's aggregation and the metric file: each collection is one
OTLP/JSON line of *delta* points, written to the file and sent as a metrics frame
(``worker_protocol.metrics_frame``) to ``python -m otel_bridge.exporters.worker metrics``. Here the
lines are added up into cumulative points (what Prometheus needs; with the ``delta`` preference
each line is passed on as it is), rebuilt as the SDK's ``MetricsData`` and exported by the
standard OTLP metric exporter, over HTTP or gRPC (``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``). So a
slow or dead endpoint, the exporter's imports and its protobuf encoding cost the eval nothing.

An export waits at most one export timeout (``INSPECT_OTEL_FLUSH_TIMEOUT``, capped by the OTLP
timeout); after a failure exports rest for ``COOLDOWN_S``. Cumulative points lose nothing by a
skipped export: the next one carries the totals. What the last export could not deliver is in
the report the eval's closing line reads; the metric file keeps every point for ``sync --to otlp``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_bridge.anyvalue import kvs_from_proto
from otel_bridge.config import Settings

COOLDOWN_S = 30.0
_DELTA = AggregationTemporality.DELTA
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)


def metrics_endpoint(settings: Settings, protocol: str | None = None) -> str:
    """Where the OTLP metrics exporter sends (as the SDK resolves it), for messages and sync."""
    core = settings.core
    if settings.metrics.otlp_endpoint:
        return settings.metrics.otlp_endpoint
    if (protocol or settings.metrics.otlp_protocol) == "grpc":
        return core.otlp_endpoint or "http://localhost:4317"
    return (core.otlp_endpoint or "http://localhost:4318").rstrip("/") + "/v1/metrics"


# ---------------------------------------------------------------------- the lines, added up
@dataclass
class _Point:
    attrs: dict[str, Any]
    start: int
    time: int
    value: float = 0  # sums and gauges
    count: int = 0  # histograms from here on
    total: float = 0.0
    buckets: list[int] = field(default_factory=list)
    bounds: tuple[float, ...] = ()
    low: float = 0.0
    high: float = 0.0


@dataclass
class _Metric:
    name: str
    description: str
    unit: str
    kind: str  # "sum", "gauge" or "histogram"
    temporality: AggregationTemporality
    monotonic: bool
    points: dict[tuple[tuple[str, str], ...], _Point] = field(default_factory=dict)


@dataclass
class _Scope:
    scope: InstrumentationScope
    metrics: dict[str, _Metric] = field(default_factory=dict)


@dataclass
class _Resource:
    resource: Resource
    scopes: dict[tuple[str, str, str], _Scope] = field(default_factory=dict)


def _number(point: pb.NumberDataPoint) -> float:
    return point.as_int if point.WhichOneof("value") == "as_int" else point.as_double


class Accumulator:
    """Metric lines added up: delta sums and histograms summed, gauges and cumulative points replaced.

    ``cumulative=False`` keeps each line's points as they came (the ``delta`` preference:
    one accumulator per line).
    """

    def __init__(self, cumulative: bool = True) -> None:
        self.cumulative = cumulative
        self.resources: dict[bytes, _Resource] = {}
        self.points = 0  # series held

    def add(self, request: ExportMetricsServiceRequest) -> None:
        for rm in request.resource_metrics:
            key = rm.resource.SerializeToString(deterministic=True) + rm.schema_url.encode()
            res = self.resources.get(key)
            if res is None:
                resource = Resource(kvs_from_proto(rm.resource.attributes), rm.schema_url or None)
                res = self.resources[key] = _Resource(resource)
            for sm in rm.scope_metrics:
                s = sm.scope
                scope = res.scopes.get((s.name, s.version, sm.schema_url))
                if scope is None:
                    made = InstrumentationScope(
                        s.name, s.version or None, sm.schema_url or None, kvs_from_proto(s.attributes)
                    )
                    scope = res.scopes[(s.name, s.version, sm.schema_url)] = _Scope(made)
                for metric in sm.metrics:
                    self._metric(scope, metric)

    def _metric(self, scope: _Scope, metric: pb.Metric) -> None:
        kind = metric.WhichOneof("data")
        if kind not in ("sum", "gauge", "histogram"):
            return  # the bridge records no exponential histograms or summaries
        data = getattr(metric, kind)
        temporality = AggregationTemporality(getattr(data, "aggregation_temporality", 0) or 2)
        adding = self.cumulative and kind != "gauge" and temporality == _DELTA
        state = scope.metrics.get(metric.name)
        if state is None:
            out = AggregationTemporality.CUMULATIVE if adding else temporality
            monotonic = bool(getattr(data, "is_monotonic", False))
            state = _Metric(metric.name, metric.description, metric.unit, kind, out, monotonic)
            scope.metrics[metric.name] = state
        for point in data.data_points:
            attrs = kvs_from_proto(point.attributes)
            key = tuple(sorted((k, repr(v)) for k, v in attrs.items()))
            slot = state.points.get(key)
            if slot is None or not adding:
                if slot is None:
                    self.points += 1
                slot = state.points[key] = _Point(attrs, point.start_time_unix_nano, point.time_unix_nano)
            slot.time = point.time_unix_nano
            if kind != "histogram":
                slot.value = slot.value + _number(point) if adding else _number(point)
                continue
            bounds = tuple(point.explicit_bounds)
            if slot.count and bounds == slot.bounds and len(slot.buckets) == len(point.bucket_counts):
                slot.buckets = [a + b for a, b in zip(slot.buckets, point.bucket_counts, strict=True)]
                slot.count, slot.total = slot.count + point.count, slot.total + point.sum
                slot.low, slot.high = min(slot.low, point.min), max(slot.high, point.max)
            else:  # the first point of the series, a replacing one, or new buckets
                slot.bounds, slot.buckets = bounds, list(point.bucket_counts)
                slot.count, slot.total, slot.low, slot.high = point.count, point.sum, point.min, point.max

    def metrics_data(self) -> MetricsData:
        """The SDK's ``MetricsData`` of every series held (what the standard exporter takes)."""
        return MetricsData(
            [
                ResourceMetrics(
                    res.resource, [_sdk_scope(s) for s in res.scopes.values()], res.resource.schema_url
                )
                for res in self.resources.values()
            ]
        )


def _sdk_scope(s: _Scope) -> ScopeMetrics:
    return ScopeMetrics(s.scope, [_sdk_metric(m) for m in s.metrics.values()], s.scope.schema_url or "")


def _sdk_metric(m: _Metric) -> Metric:
    data: Sum | Gauge | Histogram
    if m.kind == "histogram":
        points = [
            HistogramDataPoint(
                p.attrs, p.start, p.time, p.count, p.total, list(p.buckets), p.bounds, p.low, p.high
            )
            for p in m.points.values()
        ]
        data = Histogram(points, m.temporality)
    else:
        numbers = [NumberDataPoint(p.attrs, p.start, p.time, p.value) for p in m.points.values()]
        data = Gauge(numbers) if m.kind == "gauge" else Sum(numbers, m.temporality, m.monotonic)
    return Metric(m.name, m.description, m.unit, data)


def parse_request(line: bytes) -> ExportMetricsServiceRequest:
    return json_format.Parse(line, ExportMetricsServiceRequest(), ignore_unknown_fields=True)


# ---------------------------------------------------------------------- the worker's exporter
def _standard_exporter(settings: Settings, endpoint: str) -> MetricExporter:
    # at most the run-end flush's own bound: one export, no longer
    timeout = min(settings.core.otlp_timeout_s, settings.core.flush_timeout_s)
    if settings.metrics.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc(endpoint=endpoint, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http(endpoint=endpoint, timeout=timeout)


class MetricsTarget:
    """In the worker: every metrics frame added up and exported, failures counted for the report."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = metrics_endpoint(settings)
        self.cumulative = not settings.metrics.delta
        self.state = Accumulator()
        self.pending = False  # points received since the last delivered export
        self.failed_exports = 0
        self.lost_points = 0  # delta: points of failed exports (cumulative: the last state's)
        self.last_error: str | None = None
        self._down_until = 0.0
        # the spans' exporter's handler, for the same purpose (imported here: the eval's process
        # reads ``metrics_endpoint`` from this module and must keep the exporters' loggers as they are)
        from otel_bridge.exporters.otlp import _LastError

        self._log = _LastError()
        for name in _EXPORTER_LOGGERS:  # the exporters' warnings feed the report, not stderr
            logger = logging.getLogger(name)
            logger.addHandler(self._log)
            logger.propagate = False
        self.exporter = _standard_exporter(settings, self.endpoint)

    def take(self, line: bytes) -> None:
        request = parse_request(line)
        if not self.cumulative:
            self.state = Accumulator(cumulative=False)
        self.state.add(request)
        self.pending = True
        self.export()

    def export(self) -> bool:
        """Send what is held unless the endpoint is resting after a failure (True: all delivered)."""
        if not self.pending:
            return True
        ok = False
        if time.monotonic() >= self._down_until:
            timeout_ms = min(self.settings.core.otlp_timeout_s, self.settings.core.flush_timeout_s) * 1000
            try:
                result = self.exporter.export(self.state.metrics_data(), timeout_millis=timeout_ms)
                ok = result == MetricExportResult.SUCCESS
            except Exception as exc:  # the exporter should not raise; be sure
                self._log.last = f"{type(exc).__name__}: {exc}"
            if not ok:
                self.failed_exports += 1
                self.last_error = self._log.last or "export failed"
                self._down_until = time.monotonic() + COOLDOWN_S
        if ok or not self.cumulative:
            self.pending = False  # delivered; or (delta) gone with this export
        if not ok and not self.cumulative:
            self.lost_points += self.state.points
        return ok

    def report(self) -> dict[str, Any]:
        """Points the endpoint has not got (cumulative: the series whose totals it lacks)."""
        lost = self.state.points if self.cumulative and self.pending else self.lost_points
        return {"endpoint": self.endpoint, "failed": lost, "error": self.last_error if lost else None}

    def close(self) -> None:
        self.export()  # the last totals, unless the endpoint is resting after a failure
        self.exporter.shutdown()
