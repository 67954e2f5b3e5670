"""The bridge's own MeterProvider (never the global one), its readers, and the metrics thread.

Readers: the metric file (always, delta) and the console (``console``). Neither runs its own
timer: one daemon thread drains the hook's queue every ``DRAIN_S`` and collects every export
interval, so a collection never misses what the hook queued before it. OTLP export (``otlp``)
does not happen in this process: each metric-file line is also handed to ``forward``, which sends
it as a metrics frame to a worker process (``otel_bridge.exporters.worker_metrics``) that adds the
lines up and exports them with the standard OTLP exporter. The eval's process pays for the SDK's
aggregation and one OTLP/JSON line per collection (which the file needs anyway), never for a
slow endpoint or the exporter's protobuf encoding; what the worker could not deliver is said in
one line, naming the metric file that keeps it for ``sync --to otlp``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from otel_bridge import __version__, notify, spanfiles
from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.metrics.files import MetricFileExporter
from otel_bridge.metrics.recorder import MetricsRecorder

DRAIN_S = 0.5


class Forward(Protocol):
    """Where OTLP metrics go: the pipeline's metrics worker (``exporters.process.MetricsWorker``)."""

    endpoint: str

    def send(self, line: str) -> None:
        """Queue one metric-file line (OTLP/JSON, delta points) for export; never blocks."""

    def undelivered(self) -> str | None:
        """What the endpoint has not confirmed so far (None: everything it was sent)."""


def _reader(exporter: MetricExporter) -> PeriodicExportingMetricReader:
    # an infinite interval starts no timer thread: the metrics thread collects
    return PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)


class MetricsPipeline:
    """Provider + readers + the metrics thread for one set of settings."""

    def __init__(
        self,
        settings: Settings,
        resource: Resource,
        span_path: Callable[[str], Path] | None = None,
        forward: Forward | None = None,
    ) -> None:
        self.settings = settings
        metrics = settings.metrics
        if span_path is None:  # no span file this run: the name it would have
            span_path = lambda key: spanfiles.path_for(settings.core.span_dir, "", key)  # noqa: E731
        self.otlp = forward
        self.file = MetricFileExporter(span_path, forward.send if forward is not None else None)
        readers: list[MetricReader] = [_reader(self.file)]
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
        """One line when the OTLP export did not deliver everything, naming where it is kept."""
        why = self.otlp.undelivered() if self.otlp is not None else None
        if self.otlp is None or why is None:
            return None
        kept = ", ".join(str(p) for p in self.file.paths.values()) or "the metric file"
        return (
            f"metrics were not delivered to the OTLP endpoint {self.otlp.endpoint} ({why}); "
            f"they are kept in {kept} — deliver them later with `otel-bridge sync <span file> --to otlp`."
        )


def build(
    settings: Settings,
    resource: Resource,
    span_path: Callable[[str], Path] | None,
    forward: Forward | None = None,
) -> MetricsPipeline | None:
    """The metrics pipeline when metrics are on (``OTEL_METRICS_EXPORTER``), else None."""
    return MetricsPipeline(settings, resource, span_path, forward) if settings.metrics.enabled else None


def say_undelivered(pipeline: MetricsPipeline | None) -> None:
    """The one line about metrics that could not be delivered (nothing when all went)."""
    message = pipeline.undelivered_message() if pipeline is not None else None
    if message and pipeline is not None and pipeline.otlp is not None:
        notify.say(message, key=f"metrics undelivered: {pipeline.otlp.endpoint}")  # once per endpoint
