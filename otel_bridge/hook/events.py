"""Sample events → spans: Inspect's own spans, model calls, tool calls, sandbox calls, scores.

``EventSpans.dispatch`` is the hot path (every event of every sample): it dispatches by exact
event type, and the events that make no span (state, store, step, info, logger...) leave after
one dict lookup.
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
from opentelemetry.trace import SpanKind

from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.hook import attributes as a
from otel_bridge.hook.attributes import Attrs
from otel_bridge.hook.capture import ContentCapture, mark_truncated
from otel_bridge.hook.messages import finish_reasons, output_messages
from otel_bridge.hook.traces import SampleTrace, ToolSlot, end_tool_slot, end_with_error
from otel_bridge.metrics.recorder import NO_METRICS, Metrics
from otel_bridge.redact import Redactor
from otel_bridge.spanfactory import SpanFactory

_KIND = {
    "agent": "AGENT",
    "tool": "TOOL",
    "scorers": "EVALUATOR",
    "scorer": "EVALUATOR",
}


class EventSpans:
    """Makes the spans of sample events, each under its own sample's trace."""

    metrics: Metrics = NO_METRICS  # the session's, when metrics are on

    def __init__(
        self, spans: SpanFactory, settings: Settings, redactor: Redactor, capture: ContentCapture
    ) -> None:
        self.spans = spans
        self.settings = settings
        self.redactor = redactor
        # bound once: called for every content attribute, every model call
        self._content = capture.content
        self._input_messages = capture.input_messages
        self._tool_definitions = capture.tool_definitions

    def dispatch(self, s: SampleTrace, event: Event) -> None:
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

    def span_begin(self, s: SampleTrace, e: SpanBeginEvent) -> None:
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

    def span_end(self, s: SampleTrace, e: SpanEndEvent) -> None:
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

    def model(self, s: SampleTrace, e: ModelEvent) -> None:
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
        if self.settings.content.capture:
            self._input_messages(s.encoded, e.input, attrs, truncated)
            if e.tools:
                self._tool_definitions(attrs, e.tools, truncated)
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
            end = self.spans.now()
        span = self.spans.start(f"{c.OP_CHAT} {model}", s.parent(e.span_id), attrs, start, SpanKind.CLIENT)
        error_type = a.error_type(e.error, "ModelError") if e.error else None
        self.metrics.model_call(attrs, start, max(end, start), error_type)
        if e.error:
            message = self.redactor.text(e.error)
            end_with_error(span, message, error_type, {c.MODEL_ERROR: message}, max(end, start))
        else:
            span.end(end_time=max(end, start))

    def tool(self, s: SampleTrace, e: ToolEvent) -> None:
        self.metrics.tool_call(s.base, e)
        attrs: Attrs = {c.GEN_AI_TOOL_CALL_ID: e.id}
        if e.agent:
            attrs[c.TOOL_AGENT] = e.agent
        truncated: list[str] = []
        self._content(attrs, (c.GEN_AI_TOOL_CALL_ARGUMENTS, c.INPUT_VALUE), e.arguments, truncated)
        self._content(attrs, (c.GEN_AI_TOOL_CALL_RESULT, c.OUTPUT_VALUE), e.result, truncated)
        mark_truncated(attrs, truncated)
        error = None
        if e.error is not None:  # error.type is one of the call's attributes, on either span
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
        end = a.ns(e.completed) if e.completed else max(start, self.spans.now())
        if error is not None:
            end_with_error(span, error, end_time=end)
        else:
            span.end(end_time=end)

    def sandbox(self, s: SampleTrace, e: SandboxEvent) -> None:
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

    def score(self, s: SampleTrace, e: ScoreEvent) -> None:
        found = s.spans.get(e.span_id or "")
        if found is None:
            return
        span, _, span_name = found
        for event in a.evaluation_events(
            e.scorer or span_name, e.score, self.settings.content.capture, self.redactor
        ):
            if e.intermediate:
                event[c.SCORE_INTERMEDIATE] = True
            span.add_event(c.EVENT_EVALUATION_RESULT, event, timestamp=a.ns(e.timestamp))


_Handler = Callable[[EventSpans, SampleTrace, Any], None]
_SPAN_EVENTS: dict[type, _Handler] = {
    SpanBeginEvent: EventSpans.span_begin,
    SpanEndEvent: EventSpans.span_end,
    ModelEvent: EventSpans.model,
    ToolEvent: EventSpans.tool,
    SandboxEvent: EventSpans.sandbox,
    ScoreEvent: EventSpans.score,
}
_HANDLERS: dict[type, _Handler | None] = dict(_SPAN_EVENTS)  # every event type seen, by exact type


def _resolve(kind: type) -> _Handler | None:
    """The handler for an event type not seen before (a subclass, or an event that makes no span)."""
    handler = next((h for base, h in _SPAN_EVENTS.items() if issubclass(kind, base)), None)
    if len(_HANDLERS) < 256:
        _HANDLERS[kind] = handler
    return handler
