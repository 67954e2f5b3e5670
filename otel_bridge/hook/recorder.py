"""Inspect hook data → OpenTelemetry spans: the recorder the hooks call.

One instance per pipeline, shared by every run, task and sample in the process, so all state
is keyed by Inspect's ids and dropped as soon as the span it belongs to has ended. Spans are
started and ended with the timestamps Inspect recorded, not the time a hook happened to run.

The recorder keeps what is open and hands the work on: ``traces`` starts and ends spans (and
holds each task's and sample's trace), ``events`` turns sample events into spans, ``capture``
encodes content attributes, ``attributes`` builds the other attribute dictionaries.
"""

from __future__ import annotations

from inspect_ai.event import Event
from inspect_ai.hooks import (
    EvalSetEnd,
    EvalSetStart,
    RunEnd,
    RunStart,
    SampleAttemptEnd,
    SampleAttemptStart,
    SampleEnd,
    SampleInit,
    TaskEnd,
    TaskStart,
)
from inspect_ai.log import EvalLog

from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.hook import attributes as a
from otel_bridge.hook.capture import ContentCapture, mark_truncated
from otel_bridge.hook.events import EventSpans
from otel_bridge.hook.traces import (
    SampleTrace,
    TaskTrace,
    abandon_sample,
    end_retried_task,
    end_run,
    end_sample,
    end_task,
    end_with_error,
    start_sample,
    start_task,
)
from otel_bridge.logcopies import LogCopier
from otel_bridge.metrics.recorder import NO_METRICS, Metrics
from otel_bridge.redact import Redactor
from otel_bridge.spanfactory import LiteSpan, SpanFactory
from otel_bridge.wandb_env import models_run_expected

Attrs = a.Attrs


class Recorder:
    """Turns hook calls into spans; every public method is safe to call in any order."""

    metrics: Metrics = NO_METRICS  # the session's, when metrics are on
    log_copies: LogCopier | None = None  # the session's, when the W&B log artifact has content

    def __init__(self, spans: SpanFactory, settings: Settings, redactor: Redactor, versions: Attrs) -> None:
        self.spans = spans
        self.settings = settings
        self.redactor = redactor
        self.versions = versions
        self.link_wandb_run = models_run_expected(settings)  # wandb.wb_run_id on task spans
        self.eval_sets: dict[str, LiteSpan] = {}
        self.runs: dict[str, LiteSpan] = {}
        self.tasks: dict[str, TaskTrace] = {}
        self.samples: dict[str, SampleTrace] = {}
        self._init_ns: dict[str, int] = {}
        self._outcomes: dict[str, set[str]] = {}  # run_id -> task statuses seen
        self.capture = ContentCapture(settings, redactor)
        self.events = EventSpans(spans, settings, redactor, self.capture)
        self._dispatch = self.events.dispatch  # bound once: an event is one call from the hook

    # ----------------------------------------------------------------- eval set / run
    def eval_set_start(self, data: EvalSetStart) -> None:
        attrs = a.eval_set_attrs(data, self.versions)
        self.eval_sets[data.eval_set_id] = self.spans.start(c.SPAN_EVAL_SET, None, attrs, self.spans.now())

    def eval_set_end(self, data: EvalSetEnd) -> None:
        span = self.eval_sets.pop(data.eval_set_id, None)
        if span is not None:
            span.end()

    def run_start(self, data: RunStart) -> None:
        parent = self.eval_sets.get(data.eval_set_id or "")
        attrs = a.run_attrs(data, self.redactor, self.versions)
        self.runs[data.run_id] = self.spans.start(c.SPAN_RUN, parent, attrs, self.spans.now())

    def run_end(self, data: RunEnd) -> None:
        logs = {log.eval.eval_id: log for log in data.logs or []}
        for eval_id, task in list(self.tasks.items()):
            if task.run_id == data.run_id:
                self._end_task(eval_id, logs.get(eval_id), data.exception)
        for uuid, sample in list(self.samples.items()):
            if sample.run_id == data.run_id:
                self._abandon_sample(uuid, "run ended before the sample finished (cancelled)")
        span = self.runs.pop(data.run_id, None)
        if span is None:
            return
        if data.logs:  # what a consumer receiving spans in any order waits for before the run's end
            span.set_attribute(c.RUN_EVAL_IDS, sorted(log.eval.eval_id for log in data.logs))
        outcomes: set[str] = set()  # a run that raised fails by its exception, whatever its tasks did
        if data.exception is None:
            outcomes = self._outcomes.pop(data.run_id, set()) | {str(log.status) for log in data.logs or []}
        end_run(span, data.exception, outcomes, self.redactor)
        if not self.samples:
            self._init_ns.clear()

    # ----------------------------------------------------------------- task
    def task_start(self, data: TaskStart) -> None:
        spec = data.spec
        base = a.task_base(data, self.link_wandb_run)
        attrs: Attrs = {
            **base,
            **a.task_start_attrs(spec, self.redactor),
            **self.versions,
            c.WANDB_DISPLAY_NAME: f"{spec.task} · {spec.model}",
        }
        for eval_id, open_task in list(self.tasks.items()):
            if open_task.run_id == data.run_id and open_task.base[c.TASK_ID] == spec.task_id:
                end_retried_task(self.tasks.pop(eval_id))  # an eval-set retry supersedes the failed attempt
        self.tasks[data.eval_id] = start_task(self.spans, self.runs.get(data.run_id), attrs, base, data)
        self.metrics.task_start(data)

    def task_end(self, data: TaskEnd) -> None:
        self._end_task(data.eval_id, data.log, None)

    def _end_task(self, eval_id: str, log: EvalLog | None, exception: BaseException | None) -> None:
        task = self.tasks.pop(eval_id, None)
        if task is not None:
            if log is not None and log.location and self.log_copies is not None:
                copy = self.log_copies.start(log.location)  # Inspect wrote the log before this
                if copy is not None:
                    task.span.set_attribute(c.LOG_REDACTED_COPY, str(copy))
            end_task(task, log, exception, self._outcomes.setdefault(task.run_id, set()), self.redactor)

    # ----------------------------------------------------------------- sample
    def sample_init(self, data: SampleInit) -> None:
        self._init_ns[data.sample_id] = self.spans.now()

    def sample_attempt_start(self, data: SampleAttemptStart) -> None:
        task = self.tasks.get(data.eval_id)
        if task is None:
            return
        summary = data.summary
        base = a.sample_base(task.base, data)
        attrs: Attrs = {
            **base,
            c.OPENINFERENCE_SPAN_KIND: "CHAIN",
            c.WANDB_DISPLAY_NAME: f"{task.task_name} sample {summary.id} epoch {summary.epoch}",
        }
        truncated: list[str] = []
        self.capture.content(attrs, (c.SAMPLE_INPUT, c.INPUT_VALUE), summary.input, truncated)
        self.capture.content(attrs, c.SAMPLE_TARGET, summary.target, truncated)
        self.capture.content(attrs, c.SAMPLE_METADATA, summary.metadata or None, truncated)
        mark_truncated(attrs, truncated)
        init_ns = self._init_ns.pop(data.sample_id, None)
        self.samples[data.sample_id] = start_sample(self.spans, task, attrs, base, data, init_ns)

    def sample_attempt_end(self, data: SampleAttemptEnd) -> None:
        if not data.will_retry:
            return  # the final attempt is completed by sample_end, which has the scores
        s = self.samples.pop(data.sample_id, None)
        if s is None:
            return
        message = data.error.message if data.error else "attempt failed"
        error = self.redactor.text(message)
        s.span.set_attributes({c.SAMPLE_WILL_RETRY: True, c.SAMPLE_STATUS: "retried", c.SAMPLE_ERROR: error})
        end_sample(s, "attempt failed", error, a.error_type(message, "SampleError"))

    def sample_end(self, data: SampleEnd) -> None:
        s = self.samples.pop(data.sample_id, None)
        if s is None:
            return
        sample = data.sample
        if s.span.span_context.trace_flags.sampled:  # a trace the sampler dropped is no row to wait for
            s.task.traced += 1
        # events Inspect never delivered live (init, anything after a missed emit) are still
        # in the sample: replay the ones not seen, in order
        for event in sample.events:
            self._dispatch(s, event)
        attrs = a.sample_end_attrs(sample, self.settings.content.capture, self.redactor)
        truncated: list[str] = list(s.span.attrs.get(c.TRUNCATED, ()))
        # the summary seen at start may be thinned by Inspect: record the full input now
        self.capture.content(attrs, (c.SAMPLE_INPUT, c.INPUT_VALUE), sample.input, truncated)
        completion = sample.output.completion if sample.output else None
        self.capture.content(attrs, (c.SAMPLE_OUTPUT, c.OUTPUT_VALUE), completion, truncated)
        mark_truncated(attrs, truncated)
        for name, score in (sample.scores or {}).items():
            for result in a.evaluation_events(name, score, self.settings.content.capture, self.redactor):
                s.span.add_event(c.EVENT_EVALUATION_RESULT, result)
                self.metrics.score(s.base, result)
        error = error_type = None
        if sample.error is not None:
            attrs[c.SAMPLE_STATUS] = "error"
            error = self.redactor.text(sample.error.message)
            error_type = a.error_type(sample.error.message, "SampleError")
            s.task.errored += 1
        elif sample.limit is not None:
            attrs[c.SAMPLE_STATUS] = "limit"
            error = f"{sample.limit.type} limit reached ({sample.limit.limit:g})"
            error_type = f"{sample.limit.type}_limit"
        else:
            attrs[c.SAMPLE_STATUS] = "success"
        s.span.set_attributes(attrs)
        self.metrics.sample_end(s.base, sample)
        end_sample(s, "sample ended before this span", error, error_type)

    def _abandon_sample(self, uuid: str, reason: str) -> None:
        s = self.samples.pop(uuid, None)
        if s is not None:
            abandon_sample(s, reason)

    # ----------------------------------------------------------------- events
    def sample_event(self, sample_uuid: str, event: Event) -> None:
        s = self.samples.get(sample_uuid)
        if s is not None:
            self._dispatch(s, event)

    # ----------------------------------------------------------------- shutdown
    def abandon_all(self, reason: str) -> None:
        """End everything still open (process exit): nothing is left half-recorded."""
        for uuid in list(self.samples):
            self._abandon_sample(uuid, reason)
        for eval_id in list(self.tasks):
            self._end_task(eval_id, None, None)
        for span in [*self.runs.values(), *self.eval_sets.values()]:
            end_with_error(span, reason)
        self.runs.clear()
        self.eval_sets.clear()

    @property
    def idle(self) -> bool:
        return not (self.runs or self.eval_sets or self.tasks or self.samples)
