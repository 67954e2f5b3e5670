"""The bridge's own TracerProvider and the processors feeding each configured sink.

The provider is never installed globally: opentelemetry-instrument, Logfire or ``weave.init``
may own the global provider, and the bridge's spans must reach the bridge's destinations
whatever they do (README, "Where spans go").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_bridge import __version__
from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.sinks.file import FileSpanExporter
from otel_bridge.sinks.otlp import otlp_timeout
from otel_bridge.sinks.process import ProcessSinkProcessor
from otel_bridge.spanfactory import SpanFactory


class _FixedResource(Resource):
    """The bridge's resource never changes: hash it once.

    The OTLP encoder groups spans by resource, and ``Resource.__hash__`` JSON-encodes every
    attribute each time it is asked (once per exported span).
    """

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other)


def build_resource(inspect_version: str) -> Resource:
    """service.name defaults to inspect-ai; OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win."""
    defaults = Resource(
        {
            "service.name": c.DEFAULT_SERVICE_NAME,
            "service.version": inspect_version,
            c.RESOURCE_DISTRO_NAME: "inspect-otel-bridge",
            c.RESOURCE_DISTRO_VERSION: __version__,
        }
    )
    resource = Resource.create({}).merge(defaults).merge(OTELResourceDetector().detect())
    service = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        resource = resource.merge(Resource({"service.name": service}))
    return _FixedResource(resource.attributes, resource.schema_url)


def _batch(exporter: SpanExporter, delay_ms: int, queue: int) -> BatchSpanProcessor:
    env = os.environ
    return BatchSpanProcessor(
        exporter,
        max_queue_size=None if "OTEL_BSP_MAX_QUEUE_SIZE" in env else queue,
        schedule_delay_millis=None if "OTEL_BSP_SCHEDULE_DELAY" in env else delay_ms,
        max_export_batch_size=None if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in env else 512,
    )


@dataclass
class Sink:
    name: str
    processor: SpanProcessor
    exporter: SpanExporter | None = None


class Pipeline:
    """Provider + sinks for one set of settings; flushed at run end, shut down at exit."""

    def __init__(self, settings: Settings, inspect_version: str, extra: list[Sink] | None = None) -> None:
        self.settings = settings
        limits = SpanLimits(
            max_attributes=None if "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" in os.environ else 256,
            max_span_attributes=None if "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" in os.environ else 256,
        )
        self.provider = TracerProvider(resource=build_resource(inspect_version), span_limits=limits)
        self.sinks: list[Sink] = []
        self.file: FileSpanExporter | None = None
        self.otlp: ProcessSinkProcessor | None = None
        self._reported_failed = 0
        for name in settings.exporters:
            sink = self._make(name)
            if sink is not None:
                self.sinks.append(sink)
        self.sinks.extend(extra or [])
        for sink in self.sinks:
            self.provider.add_span_processor(sink.processor)
        # the hook's spans: built straight into ReadableSpans for these same processors
        self.spans = SpanFactory(
            self.provider.resource,
            InstrumentationScope(c.SCOPE_NAME, __version__),
            self.provider.sampler,
            [sink.processor for sink in self.sinks],
        )

    def _make(self, name: str) -> Sink | None:
        if name == "file":
            self.file = FileSpanExporter(self.settings.span_dir)
            return Sink("file", _batch(self.file, 500, 16384), self.file)
        if name == "otlp":
            # the standard exporter runs in a worker process: its protobuf encoding is the
            # costliest per-span work there is, and would otherwise hold the eval's GIL
            # exit waits at most: the flush timeout, one export's timeout, the worker's start-up
            wait = self.settings.flush_timeout_s + otlp_timeout() + 5.0
            self.otlp = ProcessSinkProcessor(
                "otlp", None, max_queue=8192, batch=512, delay_s=1.0, exit_wait_s=wait
            )
            return Sink("otlp", self.otlp)
        if name == "console":
            exporter = ConsoleSpanExporter()
            return Sink("console", SimpleSpanProcessor(exporter), exporter)
        return None  # weave / wandb sinks are added by their own modules

    def flush(self) -> bool:
        return self.provider.force_flush(int(self.settings.flush_timeout_s * 1000))

    def shutdown(self) -> None:
        self.flush()
        self.provider.shutdown()

    def undelivered_message(self) -> str | None:
        """One line on what could not be delivered, and where it is kept."""
        otlp = self.otlp
        if otlp is None:
            return None
        report = otlp.report
        count = int(report.get("failed") or 0) - self._reported_failed
        if count <= 0:
            return None
        self._reported_failed += count
        if self.file is not None and self.file.paths:
            kept = ", ".join(str(p) for p in self.file.paths.values())
        else:
            kept = ", ".join(report.get("kept") or []) or str(self.settings.span_dir)
        return (
            f"{count} span(s) were not delivered to the OTLP endpoint {report.get('endpoint')} "
            f"({report.get('error') or 'export failed'}); they are kept in {kept} — "
            "deliver them later with `otel-bridge sync <file> --to otlp`."
        )
