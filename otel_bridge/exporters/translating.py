"""Public span exporters that translate the bridge's spans into W&B Weave and W&B Models.

For people who run their own OpenTelemetry setup: put these behind a ``BatchSpanProcessor`` on
any ``TracerProvider`` (the one given to ``otel_bridge.configure(tracer_provider=...)``, or the
bridge's own via ``configure(span_processors=...)``). They run the same RecordSinks as the
embedded pipeline's worker processes, the receiver and ``otel-bridge sync``, so the evaluations
and runs are the same whichever path the spans took. Spans that are not the bridge's are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import notify
from otel_bridge.config import Settings, load_settings
from otel_bridge.records import from_readable
from otel_bridge.sinks.base import RecordSink

#: What ``shutdown`` tells an evaluation or run that never saw its end (as the hook's exit does).
EXIT_REASON = "the process exited before the task finished"


class RecordSinkExporter(SpanExporter):
    """A ``SpanExporter`` around a RecordSink: export = consume, flush = flush, shutdown = finish."""

    def __init__(self, sink: RecordSink, span_names: frozenset[str] | None = None) -> None:
        self.sink = sink
        self._names = span_names
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut:
            return SpanExportResult.FAILURE
        names = self._names
        records = [from_readable(s) for s in spans if names is None or s.name in names]
        try:
            if records:
                self.sink.consume(records)
        except Exception as exc:  # an exporter must not raise into the SDK's export thread
            notify.say(f"the {self.sink.name} exporter failed ({type(exc).__name__}: {exc}).")
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.sink.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """End what is still open as failed (as the hook's exit does), then finish the sink."""
        if self._shut:
            return
        self._shut = True
        self.sink.finalize_incomplete(EXIT_REASON)
        self.sink.close()
        problem = self.sink.problem()
        if problem:
            notify.say(f"{self.sink.name}: {problem}")


def _base(exporters: tuple[str, ...], capture_content: bool, flush_timeout_s: float | None) -> Settings:
    """The environment's W&B settings (credentials, server), with these destinations and options."""
    settings = load_settings().with_exporters(exporters)
    core = (
        settings.core if flush_timeout_s is None else replace(settings.core, flush_timeout_s=flush_timeout_s)
    )
    return replace(settings, core=core, content=replace(settings.content, capture=capture_content))


class WeaveSpanExporter(RecordSinkExporter):
    """Every task × model becomes a W&B Weave Evaluation, each sample a prediction row with its trace.

    Args:
        project: the Weave project, ``entity/project``.
        traces: ``False`` uploads evaluations and scores without per-sample trace trees.
        capture_content: ``False`` leaves every prompt, completion and sample text out.
        wandb_project: the W&B Models project that holds the same evals (for links between them).
        flush_timeout_s: how long a flush may wait for Weave to confirm writes (default: the
            environment's ``INSPECT_OTEL_FLUSH_TIMEOUT``).

    W&B credentials come from where the W&B SDKs look (``WANDB_API_KEY``, ``wandb login``).
    """

    def __init__(
        self,
        project: str,
        *,
        traces: bool = True,
        capture_content: bool = True,
        wandb_project: str | None = None,
        flush_timeout_s: float | None = None,
    ) -> None:
        from otel_bridge.sinks.weave import WeaveSink

        base = _base(("weave", "wandb") if wandb_project else ("weave",), capture_content, flush_timeout_s)
        settings = replace(
            base,
            weave=replace(base.weave, project=project, traces=traces),
            wandb=replace(base.wandb, project=wandb_project or base.wandb.project),
        )
        super().__init__(WeaveSink(settings))


class WandbSpanExporter(RecordSinkExporter):
    """One W&B Models run per Inspect run or eval set: config, live metrics, summary, samples table.

    Args:
        project: the Models project (``entity/project`` allowed; default ``WANDB_PROJECT``,
            then ``inspect-evals``).
        entity: the W&B entity (default ``WANDB_ENTITY``).
        run_name: run name template (default: tasks and models).
        tags: extra run tags.
        log_artifact: upload the ``.eval`` logs as an artifact.
        files: extra files (glob patterns) saved with the run.
        table_max_rows: cap on the samples table.
        capture_content: ``False`` leaves sample text out of the table.
        weave_project: the Weave project holding the same evals (for links between them).

    Without credentials or network, runs are written offline (``WANDB_MODE``; upload with
    ``wandb sync``), as on the environment-variable path.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        entity: str | None = None,
        run_name: str | None = None,
        tags: Sequence[str] = (),
        log_artifact: bool = True,
        files: Sequence[str] = (),
        table_max_rows: int = 10_000,
        capture_content: bool = True,
        weave_project: str | None = None,
    ) -> None:
        from otel_bridge.sinks.wandb import WandbSink
        from otel_bridge.translate.wandb import RELEVANT_SPANS

        base = _base(("wandb", "weave") if weave_project else ("wandb",), capture_content, None)
        w = base.wandb
        settings = replace(
            base,
            weave=replace(base.weave, project=weave_project or base.weave.project),
            wandb=replace(
                w,
                project=project or w.project,
                entity=entity or w.entity,
                run_name=run_name,
                tags=tuple(tags),
                log_artifact=log_artifact,
                files=tuple(files),
                table_max_rows=table_max_rows,
            ),
        )
        super().__init__(WandbSink(settings), RELEVANT_SPANS)
