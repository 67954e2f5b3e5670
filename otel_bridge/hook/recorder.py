"""Inspect hook data → OpenTelemetry spans: the recorder the hooks call.

One instance per pipeline, shared by every run, task and sample in the process, so all state
is keyed by Inspect's ids and dropped as soon as the span it belongs to has ended. Spans are
started and ended with the timestamps Inspect recorded, not the time a hook happened to run.

The recorder keeps what is open and hands the work on: ``traces`` starts and ends spans (and
holds each task's and sample's trace), ``capture`` encodes content attributes, ``attributes``
builds the other attribute dictionaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspect_ai.event import (
    Event,
    ModelEvent,
    SandboxEvent,
    ScoreEvent,
    SpanBeginEvent,
    SpanEndEvent,
    ToolEvent,
)
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
from opentelemetry.trace import SpanKind

from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.hook import attributes as a
from otel_bridge.hook.capture import ContentCapture, mark_truncated
from otel_bridge.hook.messages import finish_reasons, output_messages
from otel_bridge.hook.traces import (
    SampleTrace,
    TaskTrace,
    ToolSlot,
    abandon_sample,
    end_retried_task,
    end_run,
    end_sample,
    end_task,
    end_tool_slot,
    end_with_error,
    now,
    start_sample,
    start_task,
)
from otel_bridge.redact import Redactor
from otel_bridge.spanfactory import LiteSpan, SpanFactory

Attrs = a.Attrs

_KIND = {
    "agent": "AGENT",
    "tool": "TOOL",
    "scorers": "EVALUATOR",
    "scorer": "EVALUATOR",
}


class Recorder:
    """Turns hook calls into spans; every public method is safe to call in any order."""

    def __init__(self, spans: SpanFactory, settings: Settings, redactor: Redactor, versions: Attrs) -> None:
        self.spans = spans
        self.settings = settings
        self.redactor = redactor
        self.versions = versions
        self.eval_sets: dict[str, LiteSpan] = {}
        self.runs: dict[str, LiteSpan] = {}
        self.tasks: dict[str, TaskTrace] = {}
        self.samples: dict[str, SampleTrace] = {}
        self._init_ns: dict[str, int] = {}
        self._outcomes: dict[str, set[str]] = {}  # run_id -> task statuses seen
        self.capture = ContentCapture(settings, redactor)
        self._content = self.capture.content  # bound once: called for every content attribute

    # ----------------------------------------------------------------- eval set / run
    def eval_set_start(self, data: EvalSetStart) -> None:
        attrs = a.eval_set_attrs(data, self.versions)
        self.eval_sets[data.eval_set_id] = self.spans.start(c.SPAN_EVAL_SET, None, attrs, now())

    def eval_set_end(self, data: EvalSetEnd) -> None:
        span = self.eval_sets.pop(data.eval_set_id, None)
        if span is not None:
            span.end()

    def run_start(self, data: RunStart) -> None:
        parent = self.eval_sets.get(data.eval_set_id or "")
        attrs = a.run_attrs(data, self.redactor, self.versions)
        self.runs[data.run_id] = self.spans.start(c.SPAN_RUN, parent, attrs, now())

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
        outcomes: set[str] = set()  # a run that raised fails by its exception, whatever its tasks did
        if data.exception is None:
            outcomes = self._outcomes.pop(data.run_id, set()) | {str(log.status) for log in data.logs or []}
        end_run(span, data.exception, outcomes, self.redactor)
        if not self.samples:
            self._init_ns.clear()

    # ----------------------------------------------------------------- task
    def task_start(self, data: TaskStart) -> None:
        spec = data.spec
        base = a.task_base(data)
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

    def task_end(self, data: TaskEnd) -> None:
        self._end_task(data.eval_id, data.log, None)

    def _end_task(self, eval_id: str, log: EvalLog | None, exception: BaseException | None) -> None:
        task = self.tasks.pop(eval_id, None)
        if task is not None:
            end_task(task, log, exception, self._outcomes.setdefault(task.run_id, set()), self.redactor)

    # ----------------------------------------------------------------- sample
    def sample_init(self, data: SampleInit) -> None:
        self._init_ns[data.sample_id] = now()

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
        s.task.traced += 1
        # events Inspect never delivered live (init, anything after a missed emit) are still
        # in the sample: replay the ones not seen, in order
        for event in sample.events:
            self._dispatch(s, event)
        attrs = a.sample_end_attrs(sample, self.settings.capture_content, self.redactor)
        truncated: list[str] = list(s.span.attrs.get(c.TRUNCATED, ()))
        # the summary seen at start may be thinned by Inspect: record the full input now
        self.capture.content(attrs, (c.SAMPLE_INPUT, c.INPUT_VALUE), sample.input, truncated)
        completion = sample.output.completion if sample.output else None
        self.capture.content(attrs, (c.SAMPLE_OUTPUT, c.OUTPUT_VALUE), completion, truncated)
        mark_truncated(attrs, truncated)
        for name, score in (sample.scores or {}).items():
            for result in a.evaluation_events(name, score, self.settings.capture_content, self.redactor):
                s.span.add_event(c.EVENT_EVALUATION_RESULT, result)
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

    def _dispatch(self, s: SampleTrace, event: Event) -> None:
        # most events (state, store, step, info, logger...) make no span: leave at once
        kind = type(event)
        handler = _HANDLERS[kind] if kind in _HANDLERS else _resolve(kind)
        if handler is None or event.pending:
            return
        uid = event.uuid
        if uid is not None:
            if uid in s.seen:
                return  # Inspect delivers every completed model event twice
            s.seen.add(uid)
        handler(self, s, event)

    def _span_begin(self, s: SampleTrace, e: SpanBeginEvent) -> None:
        kind = e.type
        attrs: Attrs = {
            **s.base,
            c.SPAN_ID: e.id,
            c.SPAN_NAME: e.name,
            c.OPENINFERENCE_SPAN_KIND: _KIND.get(kind or "", "CHAIN"),
        }
        if kind:
            attrs[c.SPAN_TYPE] = kind
        if kind == "tool":
            name = f"{c.OP_EXECUTE_TOOL} {e.name}"
            attrs.update(
                {
                    c.GEN_AI_OPERATION_NAME: c.OP_EXECUTE_TOOL,
                    c.GEN_AI_TOOL_NAME: e.name,
                    c.GEN_AI_TOOL_TYPE: "function",
                    c.WANDB_DISPLAY_NAME: f"tool: {e.name}",
                }
            )
        elif kind == "agent":
            name = f"{c.OP_INVOKE_AGENT} {e.name}"
            attrs.update(
                {
                    c.GEN_AI_OPERATION_NAME: c.OP_INVOKE_AGENT,
                    c.GEN_AI_AGENT_NAME: e.name,
                    c.WANDB_DISPLAY_NAME: f"agent: {e.name}",
                }
            )
        else:
            name = f"{c.SPAN_INSPECT_PREFIX}{kind}" if kind else c.SPAN_GENERIC
            attrs[c.WANDB_DISPLAY_NAME] = f"{kind}: {e.name}" if kind and kind != e.name else e.name
        span = self.spans.start(name, s.parent(e.parent_id), attrs, a.ns(e.timestamp))
        s.spans[e.id] = (span, kind, e.name)
        s.open[e.id] = span
        if kind == "tool":
            s.tool_slots.setdefault((e.parent_id, e.name), []).append(ToolSlot(span))

    def _span_end(self, s: SampleTrace, e: SpanEndEvent) -> None:
        span = s.open.pop(e.id, None)
        if span is None:
            return
        end = a.ns(e.timestamp)
        kind = s.spans[e.id][1]
        if kind == "tool":
            for slots in s.tool_slots.values():
                for slot in slots:
                    if slot.span is span:
                        if slot.filled:
                            end_tool_slot(slot, end)
                            slots.remove(slot)
                        else:
                            slot.end_ns = end  # its ToolEvent arrives next
                        return
        span.end(end_time=end)

    def _model(self, s: SampleTrace, e: ModelEvent) -> None:
        provider, model = a.split_model(e.model)
        attrs: Attrs = {
            **s.base,
            c.GEN_AI_OPERATION_NAME: c.OP_CHAT,
            c.GEN_AI_PROVIDER_NAME: provider,
            c.GEN_AI_REQUEST_MODEL: model,
            c.GEN_AI_CONVERSATION_ID: s.base[c.SAMPLE_UUID],
            c.OPENINFERENCE_SPAN_KIND: "LLM",
            c.WANDB_DISPLAY_NAME: f"chat {model}",
            c.WANDB_IS_TURN: False,
            **a.request_attrs(e.config),
        }
        if e.role:
            attrs[c.MODEL_ROLE] = e.role
        if e.cache:
            attrs[c.MODEL_CACHE] = e.cache
        if e.retries is not None:
            attrs[c.MODEL_RETRIES] = e.retries
        if e.working_time is not None:
            attrs[c.MODEL_WORKING_TIME] = e.working_time
        output = e.output
        if output is not None and not e.error:
            if output.model:
                attrs[c.GEN_AI_RESPONSE_MODEL] = output.model
            if output.response_id:
                attrs[c.GEN_AI_RESPONSE_ID] = output.response_id
            if output.choices:
                attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = finish_reasons(output)
            attrs.update(a.usage_attrs(output.usage))
        truncated: list[str] = []
        if self.settings.capture_content:
            self.capture.input_messages(s.encoded, e.input, attrs, truncated)
            if e.tools:
                self.capture.tool_definitions(attrs, e.tools, truncated)
            if output is not None and output.choices and not e.error:
                self._content(attrs, c.GEN_AI_OUTPUT_MESSAGES, output_messages(output), truncated)
                self._content(attrs, c.OUTPUT_VALUE, output.completion, truncated)
            mark_truncated(attrs, truncated)
        start = a.ns(e.timestamp)
        if e.completed is not None:
            end = a.ns(e.completed)
        elif e.working_time is not None:
            end = start + int(e.working_time * 1e9)
        else:
            end = now()
        span = self.spans.start(f"{c.OP_CHAT} {model}", s.parent(e.span_id), attrs, start, SpanKind.CLIENT)
        if e.error:
            message = self.redactor.text(e.error)
            error_type = a.error_type(e.error, "ModelError")
            end_with_error(span, message, error_type, {c.MODEL_ERROR: message}, max(end, start))
        else:
            span.end(end_time=max(end, start))

    def _tool(self, s: SampleTrace, e: ToolEvent) -> None:
        attrs: Attrs = {c.GEN_AI_TOOL_CALL_ID: e.id}
        if e.agent:
            attrs[c.TOOL_AGENT] = e.agent
        truncated: list[str] = []
        self._content(attrs, (c.GEN_AI_TOOL_CALL_ARGUMENTS, c.INPUT_VALUE), e.arguments, truncated)
        self._content(attrs, (c.GEN_AI_TOOL_CALL_RESULT, c.OUTPUT_VALUE), e.result, truncated)
        mark_truncated(attrs, truncated)
        error = None
        if e.error is not None:
            error = self.redactor.text(e.error.message)
            attrs.update({c.ERROR_TYPE: str(e.error.type), c.TOOL_ERROR: error})
        slots = s.tool_slots.get((e.span_id, e.function), [])
        slot = next((x for x in slots if not x.filled), None)
        if slot is not None:
            slot.span.set_attributes(attrs)
            slot.error = error
            slot.filled = True
            if slot.end_ns is not None:
                end_tool_slot(slot, slot.end_ns)
                slots.remove(slot)
            return
        # no Inspect tool span (e.g. the call failed before running): span the event itself
        attrs.update(
            {
                **s.base,
                c.GEN_AI_OPERATION_NAME: c.OP_EXECUTE_TOOL,
                c.GEN_AI_TOOL_NAME: e.function,
                c.GEN_AI_TOOL_TYPE: "function",
                c.OPENINFERENCE_SPAN_KIND: "TOOL",
                c.WANDB_DISPLAY_NAME: f"tool: {e.function}",
            }
        )
        start = a.ns(e.timestamp)
        span = self.spans.start(f"{c.OP_EXECUTE_TOOL} {e.function}", s.parent(e.span_id), attrs, start)
        end = a.ns(e.completed) if e.completed else max(start, now())
        if error is not None:
            end_with_error(span, error, end_time=end)
        else:
            span.end(end_time=end)

    def _sandbox(self, s: SampleTrace, e: SandboxEvent) -> None:
        attrs: Attrs = {
            **s.base,
            c.SANDBOX_ACTION: e.action,
            c.WANDB_DISPLAY_NAME: f"sandbox: {e.action}",
            c.OPENINFERENCE_SPAN_KIND: "TOOL",
        }
        if e.result is not None:
            attrs[c.SANDBOX_RESULT] = e.result
        if e.file:
            attrs[c.SANDBOX_FILE] = e.file
        truncated: list[str] = []
        self._content(attrs, c.SANDBOX_CMD, e.cmd, truncated)
        mark_truncated(attrs, truncated)
        start = a.ns(e.timestamp)
        span = self.spans.start(c.SPAN_SANDBOX, s.parent(e.span_id), attrs, start)
        end = a.ns(e.completed) if e.completed else start
        if e.result not in (None, 0):
            end_with_error(span, f"exit status {e.result}", end_time=end)
        else:
            span.end(end_time=end)

    def _score(self, s: SampleTrace, e: ScoreEvent) -> None:
        found = s.spans.get(e.span_id or "")
        if found is None:
            return
        span, _, span_name = found
        for event in a.evaluation_events(
            e.scorer or span_name, e.score, self.settings.capture_content, self.redactor
        ):
            if e.intermediate:
                event[c.SCORE_INTERMEDIATE] = True
            span.add_event(c.EVENT_EVALUATION_RESULT, event, timestamp=a.ns(e.timestamp))

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


_Handler = Callable[[Recorder, SampleTrace, Any], None]
_SPAN_EVENTS: dict[type, _Handler] = {
    SpanBeginEvent: Recorder._span_begin,
    SpanEndEvent: Recorder._span_end,
    ModelEvent: Recorder._model,
    ToolEvent: Recorder._tool,
    SandboxEvent: Recorder._sandbox,
    ScoreEvent: Recorder._score,
}
_HANDLERS: dict[type, _Handler | None] = dict(_SPAN_EVENTS)  # every event type seen, by exact type


def _resolve(kind: type) -> _Handler | None:
    """The handler for an event type not seen before (a subclass, or an event that makes no span)."""
    handler = next((h for base, h in _SPAN_EVENTS.items() if issubclass(kind, base)), None)
    if len(_HANDLERS) < 256:
        _HANDLERS[kind] = handler
    return handler
