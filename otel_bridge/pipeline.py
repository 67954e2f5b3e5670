"""The bridge's own TracerProvider and the processors feeding each configured destination.

The provider is never installed globally: opentelemetry-instrument, Logfire or ``weave.init``
may own the global provider, and the bridge's spans must reach the bridge's destinations
whatever they do (README, "Where spans go"). A provider the user hands to
``otel_bridge.configure(tracer_provider=...)`` gets the spans too (its processors, resource and
sampler), and stays the user's: the bridge flushes it but never shuts it down.

The end is bounded once for all destinations: from the end of the last run (or from exit, if no
run ended), exit waits at most the flush timeout plus ``EXIT_GRACE_S`` in all, every worker
finishing at the same time, not one after another. What was not delivered by then is said in one
closing line, with the ``otel-bridge sync`` command that delivers it from the span file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk import environment_variables as otel
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_bridge import __version__, notify
from otel_bridge import conventions as c
from otel_bridge.config import DEFAULT_SERVICE_NAME, Settings
from otel_bridge.exporters.process import MetricsWorker, WorkerSpanProcessor
from otel_bridge.exporters.span_file import SpanFileExporter, SpanFileProcessor
from otel_bridge.metrics import provider as metrics
from otel_bridge.spanfactory import SpanFactory

#: After the flush timeout, the most the end of a run waits for the workers to finish (all at once).
EXIT_GRACE_S = 10.0
#: The least exit waits for the workers, even when the end of the last run is long past.
MIN_EXIT_S = 1.0


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


def _metrics_worker(settings: Settings) -> MetricsWorker | None:
    """The OTLP metrics export's worker process; None (said once) when it cannot start."""
    from otel_bridge.exporters.worker_metrics import metrics_endpoint

    try:
        return MetricsWorker(metrics_endpoint(settings))
    except Exception as exc:
        notify.say(
            f"the metrics exporter could not start ({type(exc).__name__}: {exc}); metrics still go "
            "to the metric file — deliver them later with `otel-bridge sync <span file> --to otlp`."
        )
        return None


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
        # shut down by the session (bounded, at exit), not by the SDK's own atexit handler first
        self.provider = TracerProvider(
            resource=build_resource(settings, inspect_version), span_limits=limits, shutdown_on_exit=False
        )
        self.user_provider = tracer_provider
        self.destinations: list[Destination] = []
        self.file: SpanFileExporter | None = None
        self.file_feed: SpanFileProcessor | None = None
        self.workers: list[WorkerSpanProcessor] = []
        self.end_by: float | None = None  # time.monotonic() the end of the last run must be done by
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
        # the bridge's own MeterProvider (OTEL_METRICS_EXPORTER), its metric file beside the span
        # file; OTLP metrics are exported by a worker process of their own, fed the file's lines
        self.metrics_worker: MetricsWorker | None = None
        if settings.metrics.enabled and "otlp" in settings.metrics.exporters:
            self.metrics_worker = _metrics_worker(settings)
        span_path = self.file and self.file.path_for
        self.metrics = metrics.build(settings, self.provider.resource, span_path, self.metrics_worker)
        # the hook's spans: built straight into ReadableSpans for these same processors
        self.spans = SpanFactory(
            resource, InstrumentationScope(c.SCOPE_NAME, __version__), sampler, processors
        )

    def _make(self, name: str) -> Destination | None:
        core = self.settings.core
        if name == "file":
            self.file = SpanFileExporter(core.span_dir)
            self.file_feed = SpanFileProcessor(self.file)
            return Destination("file", self.file_feed, self.file)
        if name == "otlp":
            # the standard exporter runs in a worker process: its protobuf encoding is the
            # costliest per-span work there is, and would otherwise hold the eval's GIL
            otlp = WorkerSpanProcessor("otlp", None, batch=512, delay_s=1.0)
            self.workers.append(otlp)
            return Destination("otlp", otlp)
        if name == "console":
            exporter = ConsoleSpanExporter()
            return Destination("console", SimpleSpanProcessor(exporter), exporter)
        if name in ("weave", "wandb"):
            return self._translator(name)
        return None

    def _translator(self, name: str) -> Destination | None:
        """Weave / W&B: the translation runs in a worker process this processor feeds."""
        try:
            names: frozenset[str] | None = None
            if name == "wandb":
                from otel_bridge.translate.wandb import RELEVANT_SPANS

                names = RELEVANT_SPANS
            worker = WorkerSpanProcessor(name, names)
        except Exception as exc:
            notify.say(
                f"the {name} exporter could not start ({type(exc).__name__}: {exc}); "
                "spans still go to the other exporters and the span file."
            )
            return None
        self.workers.append(worker)
        return Destination(name, worker)

    def flush(self, timeout_s: float | None = None) -> bool:
        timeout_ms = int((self.settings.core.flush_timeout_s if timeout_s is None else timeout_s) * 1000)
        ok = self.provider.force_flush(timeout_ms)
        if self.metrics is not None:
            self.metrics.collect()
        if self.user_provider is not None:
            ok = self.user_provider.force_flush(timeout_ms) and ok
        return ok

    def end_of_run(self) -> None:
        """The last run ended: its delivery is flushed now and finished by one deadline."""
        self.end_by = time.monotonic() + self.settings.core.flush_timeout_s + EXIT_GRACE_S
        self.flush()

    def shutdown(self) -> None:
        """Stop every destination against one deadline (see the module docstring).

        No second flush of the workers: stopping one delivers everything queued for it first,
        and a worker still busy with the end-of-run flush would only make exit wait for it twice.
        """
        if self.metrics is not None:  # the last collection, queued for the metrics worker
            self.metrics.shutdown()
        now, flush_s = time.monotonic(), self.settings.core.flush_timeout_s
        deadline = self.end_by if self.end_by is not None else now + flush_s + EXIT_GRACE_S
        deadline = max(deadline, now + MIN_EXIT_S)
        stopping: list[WorkerSpanProcessor | MetricsWorker] = [*self.workers]
        if self.metrics_worker is not None:
            stopping.append(self.metrics_worker)
        for worker in stopping:  # every worker finishes its runs at the same time
            worker.begin_stop()
        if self.file_feed is not None:
            self.file_feed.shutdown(max(0.0, deadline - time.monotonic()))

        def left_ms() -> int:
            return int(max(0.0, min(flush_s, deadline - time.monotonic())) * 1000)

        mine = (self.file_feed, *self.workers)
        for destination in self.destinations:  # console and your own processors
            if destination.processor not in mine:
                destination.processor.force_flush(left_ms())
                destination.processor.shutdown()
        if self.user_provider is not None:  # yours: flushed, never shut down
            self.user_provider.force_flush(left_ms())
        for worker in stopping:
            worker.finish_stop(deadline)

    def undelivered_message(self) -> str | None:
        """The closing line: what was not delivered and how to deliver it, then what the workers
        had to say (None: nothing to say)."""
        parts = [(w.name, text) for w in self.workers if (text := w.undelivered()) is not None]
        notes = " ".join(text for w in self.workers if (text := w.said()) is not None)
        if not parts:
            return notes or None  # a span file that failed alone was said at its first failure
        line = "not delivered: " + "; ".join(text for _, text in parts)
        feed = self.file_feed
        if feed is not None and feed.lost:
            why = feed.exporter.last_error or "its queue was full"
            line += f"; {feed.lost} span(s) could not be written to the span file ({why})"
        to = ",".join(name for name, _ in parts)
        if self.file is not None and self.file.paths:
            kept = " ".join(str(p) for p in self.file.paths.values())
            line += f" — the span file keeps them: `otel-bridge sync {kept} --to {to}` delivers them."
        elif spilled := [p for w in self.workers for p in w.report.get("kept") or []]:
            line += f" — kept in {', '.join(spilled)}: `otel-bridge sync <file> --to {to}` sends them."
        else:
            line += " — no span file was written (INSPECT_OTEL_EXPORTERS has no `file`): they are not kept."
        return f"{line} {notes}" if notes else line
