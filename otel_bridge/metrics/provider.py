"""The bridge's own MeterProvider (never the global one), its readers, and the metrics thread.

Readers: the metric file (always, delta), the standard OTLP exporter (``otlp``, cumulative unless
the temporality preference says delta) and the console (``console``). None of them runs its own
timer: one daemon thread drains the hook's queue every ``DRAIN_S`` and collects every reader each
export interval, so a collection never misses what the hook queued before it. Exporting happens
in this process, on that thread: a collection encodes a few dozen points (not one per model
call), so it has no need of the spans' worker process.

An unreachable endpoint costs a run's end at most one export timeout (``INSPECT_OTEL_FLUSH_TIMEOUT``,
capped by the OTLP timeout), then the exporter rests for ``COOLDOWN_S``; cumulative points lose
nothing by a skipped export, and the metric file keeps every point for ``sync --to otlp``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from otel_bridge import __version__, notify, spanfiles
from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.metrics.files import MetricFileExporter, temporalities
from otel_bridge.metrics.recorder import MetricsRecorder

DRAIN_S = 0.5
COOLDOWN_S = 30.0
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)


class _LastLine(logging.Handler):
    """Keeps the exporter's last log line for the one message the user gets (instead of a stream)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()[:300]


_LOG = _LastLine()


def _capture_exporter_logs() -> None:
    """Once, when metrics go to OTLP: the exporters' warnings feed the one line instead of stderr."""
    for name in _EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG not in logger.handlers:
            logger.addHandler(_LOG)
            logger.propagate = False


def metrics_endpoint(settings: Settings) -> str:
    """Where the OTLP metrics exporter sends (as the SDK resolves it), for messages and sync."""
    core = settings.core
    if settings.metrics.otlp_endpoint:
        return settings.metrics.otlp_endpoint
    if core.otlp_protocol == "grpc":
        return core.otlp_endpoint or "http://localhost:4317"
    return (core.otlp_endpoint or "http://localhost:4318").rstrip("/") + "/v1/metrics"


class Delivery(MetricExporter):
    """The standard OTLP metrics exporter, counting failures and resting after one."""

    def __init__(self, settings: Settings) -> None:
        preferred = temporalities(settings.metrics.delta)
        super().__init__(preferred_temporality=preferred)
        self.endpoint = metrics_endpoint(settings)
        self.failed = 0
        self.delivered = 0
        self.last_error: str | None = None
        self._down_until = 0.0
        _capture_exporter_logs()
        # at most the run-end flush's own bound: the end of a run waits for one export, no longer
        timeout = min(settings.core.otlp_timeout_s, settings.core.flush_timeout_s)
        self.inner: MetricExporter
        if settings.core.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

            self.inner = Grpc(endpoint=self.endpoint, timeout=timeout, preferred_temporality=preferred)
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

            self.inner = Http(endpoint=self.endpoint, timeout=timeout, preferred_temporality=preferred)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        ok = False
        if time.monotonic() >= self._down_until:
            try:
                ok = (
                    self.inner.export(metrics_data, timeout_millis=timeout_millis)
                    == MetricExportResult.SUCCESS
                )
            except Exception as exc:  # the exporter should not raise; be sure
                _LOG.last = f"{type(exc).__name__}: {exc}"
            if not ok:
                self.last_error = _LOG.last or "export failed"
                self._down_until = time.monotonic() + COOLDOWN_S
        if ok:
            self.delivered += 1
            return MetricExportResult.SUCCESS
        self.failed += 1
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown()


def _reader(exporter: MetricExporter) -> PeriodicExportingMetricReader:
    # an infinite interval starts no timer thread: the metrics thread collects
    return PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)


class MetricsPipeline:
    """Provider + readers + the metrics thread for one set of settings."""

    def __init__(
        self, settings: Settings, resource: Resource, span_path: Callable[[str], Path] | None = None
    ) -> None:
        self.settings = settings
        metrics = settings.metrics
        if span_path is None:  # no span file this run: the name it would have
            span_path = lambda key: spanfiles.path_for(settings.core.span_dir, "", key)  # noqa: E731
        self.file = MetricFileExporter(span_path)
        readers: list[MetricReader] = [_reader(self.file)]
        self.otlp: Delivery | None = None
        if "otlp" in metrics.exporters:
            self.otlp = Delivery(settings)
            readers.append(_reader(self.otlp))
        if "console" in metrics.exporters:
            readers.append(_reader(ConsoleMetricExporter()))
        self.readers = readers
        # the spans' resource: its service.instance.id (the SDK's, one per process) tells apart the
        # series of several eval processes (Prometheus's ``instance``)
        self.provider = MeterProvider(
            metric_readers=readers,
            resource=resource,
            shutdown_on_exit=False,  # the session shuts it down, after the last flush
            exemplar_filter=AlwaysOffExemplarFilter(),
        )
        self.recorder = MetricsRecorder(self.provider.get_meter(c.SCOPE_NAME, __version__))
        self._reported_failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-bridge-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.settings.metrics.interval_s
        due = time.monotonic() + interval
        while not self._stop.wait(min(DRAIN_S, interval)):
            try:
                if time.monotonic() >= due:
                    due = time.monotonic() + interval
                    self.collect()
                else:
                    with self._lock:
                        self.recorder.drain()
            except Exception:  # never let the thread die: the next tick tries again
                logging.getLogger(__name__).debug("metrics collection failed", exc_info=True)

    def collect(self) -> None:
        """Record what the hook queued, then let every reader export."""
        timeout_ms = self.settings.core.otlp_timeout_s * 1000
        with self._lock:
            self.recorder.drain()
            for reader in self.readers:
                reader.collect(timeout_millis=timeout_ms)

    def run_start(self, run_id: str) -> None:
        """Lines from now on belong to this run's metric file (what came before goes to the last one)."""
        with self._lock:  # the file only: a run's start never waits for an endpoint
            self.recorder.drain()
            self.readers[0].collect(timeout_millis=self.settings.core.otlp_timeout_s * 1000)
            self.file.key = run_id

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.core.otlp_timeout_s + 1)
        self.collect()
        self.provider.shutdown(timeout_millis=self.settings.core.otlp_timeout_s * 1000)

    def undelivered_message(self) -> str | None:
        """One line when metric exports failed since the last message, naming where they are kept."""
        otlp = self.otlp
        if otlp is None or otlp.failed <= self._reported_failed:
            return None
        self._reported_failed = otlp.failed
        kept = ", ".join(str(p) for p in self.file.paths.values()) or "the metric file"
        return (
            f"metrics were not delivered to the OTLP endpoint {otlp.endpoint} ({otlp.last_error}); "
            f"they are kept in {kept} — deliver them later with `otel-bridge sync <span file> --to otlp`."
        )


def build(
    settings: Settings, resource: Resource, span_path: Callable[[str], Path] | None
) -> MetricsPipeline | None:
    """The metrics pipeline when metrics are on (``OTEL_METRICS_EXPORTER``), else None."""
    return MetricsPipeline(settings, resource, span_path) if settings.metrics.enabled else None


def say_undelivered(pipeline: MetricsPipeline | None) -> None:
    """The one line about metrics that could not be delivered (nothing when all went)."""
    message = pipeline.undelivered_message() if pipeline is not None else None
    if message and pipeline is not None and pipeline.otlp is not None:
        notify.say(message, key=f"metrics undelivered: {pipeline.otlp.endpoint}")  # once per endpoint
