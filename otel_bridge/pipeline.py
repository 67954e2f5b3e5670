"""The bridge's own TracerProvider and the processors feeding each configured destination.

The provider is never installed globally: opentelemetry-instrument, Logfire or ``weave.init``
may own the global provider, and the bridge's spans must reach the bridge's destinations
whatever they do (README, "Where spans go"). A provider the user hands to
``otel_bridge.configure(tracer_provider=...)`` gets the spans too (its processors, resource and
sampler), and stays the user's: the bridge flushes it but never shuts it down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk import environment_variables as otel
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_bridge import __version__, notify
from otel_bridge import conventions as c
from otel_bridge.config import DEFAULT_SERVICE_NAME, Settings
from otel_bridge.exporters.process import WorkerSpanProcessor
from otel_bridge.exporters.span_file import SpanFileExporter
from otel_bridge.metrics import provider as metrics
from otel_bridge.spanfactory import SpanFactory

#: Finishing W&B / Weave runs may take the flush timeout plus the SDKs' own bounded waits.
TRANSLATOR_EXIT_WAIT_S = 30.0
#: The OTLP worker's start-up, on top of the flush timeout and one export's timeout.
OTLP_EXIT_SLACK_S = 5.0


def build_resource(settings: Settings, inspect_version: str) -> Resource:
    """service.name defaults to inspect-ai; OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win."""
    defaults = Resource(
        {
            "service.name": DEFAULT_SERVICE_NAME,
            "service.version": inspect_version,
            c.RESOURCE_DISTRO_NAME: "inspect-otel-bridge",
            c.RESOURCE_DISTRO_VERSION: __version__,
        }
    )
    resource = Resource.create({}).merge(defaults).merge(OTELResourceDetector().detect())
    if settings.core.service_name:
        resource = resource.merge(Resource({"service.name": settings.core.service_name}))
    return resource


@dataclass
class Destination:
    """One configured destination: the processor the spans go to (and its exporter, if in-process)."""

    name: str
    processor: SpanProcessor
    exporter: SpanExporter | None = None


class Pipeline:
    """Provider + destinations for one set of settings; flushed at run end, shut down at exit."""

    def __init__(
        self,
        settings: Settings,
        inspect_version: str,
        span_processors: Sequence[SpanProcessor] = (),
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        core = settings.core
        default_limit = None if core.otel_set(otel.OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT) else 256
        limits = SpanLimits(max_attributes=default_limit, max_span_attributes=default_limit)
        self.provider = TracerProvider(resource=build_resource(settings, inspect_version), span_limits=limits)
        self.user_provider = tracer_provider
        self.destinations: list[Destination] = []
        self.file: SpanFileExporter | None = None
        self.otlp: WorkerSpanProcessor | None = None
        self._reported_failed = 0
        for name in core.exporters:
            destination = self._make(name)
            if destination is not None:
                self.destinations.append(destination)
        self.destinations.extend(Destination("custom", p) for p in span_processors)
        for destination in self.destinations:
            self.provider.add_span_processor(destination.processor)
        processors = [d.processor for d in self.destinations]
        resource, sampler = self.provider.resource, self.provider.sampler
        if tracer_provider is not None:
            from otel_bridge._upstream import provider_processor

            processors.append(provider_processor(tracer_provider))
            resource, sampler = tracer_provider.resource, tracer_provider.sampler
        # the bridge's own MeterProvider (OTEL_METRICS_EXPORTER), its metric file beside the span file
        self.metrics = metrics.build(settings, self.provider.resource, self.file and self.file.path_for)
        # the hook's spans: built straight into ReadableSpans for these same processors
        self.spans = SpanFactory(
            resource, InstrumentationScope(c.SCOPE_NAME, __version__), sampler, processors
        )

    def _batch(self, exporter: SpanExporter, delay_ms: int, queue: int) -> BatchSpanProcessor:
        core = self.settings.core
        return BatchSpanProcessor(
            exporter,
            max_queue_size=None if core.otel_set(otel.OTEL_BSP_MAX_QUEUE_SIZE) else queue,
            schedule_delay_millis=None if core.otel_set(otel.OTEL_BSP_SCHEDULE_DELAY) else delay_ms,
            max_export_batch_size=None if core.otel_set(otel.OTEL_BSP_MAX_EXPORT_BATCH_SIZE) else 512,
        )

    def _make(self, name: str) -> Destination | None:
        core = self.settings.core
        if name == "file":
            self.file = SpanFileExporter(core.span_dir)
            return Destination("file", self._batch(self.file, 500, 16384), self.file)
        if name == "otlp":
            # the standard exporter runs in a worker process: its protobuf encoding is the
            # costliest per-span work there is, and would otherwise hold the eval's GIL
            # exit waits at most: the flush timeout, one export's timeout, the worker's start-up
            wait = core.flush_timeout_s + core.otlp_timeout_s + OTLP_EXIT_SLACK_S
            self.otlp = WorkerSpanProcessor(
                "otlp", None, max_queue=8192, batch=512, delay_s=1.0, exit_wait_s=wait
            )
            return Destination("otlp", self.otlp)
        if name == "console":
            exporter = ConsoleSpanExporter()
            return Destination("console", SimpleSpanProcessor(exporter), exporter)
        if name in ("weave", "wandb"):
            return self._translator(name)
        return None

    def _translator(self, name: str) -> Destination | None:
        """Weave / W&B: the translation runs in a worker process this processor feeds."""
        exit_wait = self.settings.core.flush_timeout_s + TRANSLATOR_EXIT_WAIT_S
        try:
            if name == "wandb":
                from otel_bridge.translate.wandb import RELEVANT_SPANS

                return Destination(name, WorkerSpanProcessor(name, RELEVANT_SPANS, exit_wait_s=exit_wait))
            return Destination(name, WorkerSpanProcessor(name, None, exit_wait_s=exit_wait))
        except Exception as exc:
            notify.say(
                f"the {name} exporter could not start ({type(exc).__name__}: {exc}); "
                "spans still go to the other exporters and the span file."
            )
            return None

    def flush(self) -> bool:
        timeout_ms = int(self.settings.core.flush_timeout_s * 1000)
        ok = self.provider.force_flush(timeout_ms)
        if self.metrics is not None:
            self.metrics.collect()
        if self.user_provider is not None:
            ok = self.user_provider.force_flush(timeout_ms) and ok
        return ok

    def shutdown(self) -> None:
        self.flush()
        self.provider.shutdown()
        if self.metrics is not None:
            self.metrics.shutdown()

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
            kept = ", ".join(report.get("kept") or []) or str(self.settings.core.span_dir)
        return (
            f"{count} span(s) were not delivered to the OTLP endpoint {report.get('endpoint')} "
            f"({report.get('error') or 'export failed'}); they are kept in {kept} — "
            "deliver them later with `otel-bridge sync <file> --to otlp`."
        )
