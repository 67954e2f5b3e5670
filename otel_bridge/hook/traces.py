"""Span lifecycle: what is open for each task and sample, and how spans start and end.

Every span that ends as failed ends through ``end_with_error``. Spans end in the order a
consumer reads them: a sample's open children before its root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inspect_ai.hooks import SampleAttemptStart, TaskStart
from inspect_ai.log import EvalLog
from opentelemetry.trace import Link, Status, StatusCode

from otel_bridge import conventions as c
from otel_bridge.hook import attributes as a
from otel_bridge.hook.attributes import Attrs, AttrValue
from otel_bridge.hook.capture import MessageCache
from otel_bridge.redact import Redactor
from otel_bridge.spanfactory import LiteSpan, SpanFactory


@dataclass
class ToolSlot:
    """An Inspect ``tool`` span waiting for its ToolEvent (which Inspect delivers after it ends)."""

    span: LiteSpan
    end_ns: int | None = None
    filled: bool = False
    error: str | None = None  # the ToolEvent's (redacted) error: the span ends with it


@dataclass
class TaskTrace:
    span: LiteSpan
    base: Attrs
    run_id: str
    task_name: str
    model: str
    errored: int = 0
    traced: int = 0  # kept (sampled) sample traces ended by sample_end: the rows a consumer should expect


@dataclass
class SampleTrace:
    span: LiteSpan
    base: Attrs
    task: TaskTrace
    run_id: str
    seen: set[str] = field(default_factory=set)
    spans: dict[str, tuple[LiteSpan, str | None, str]] = field(default_factory=dict)
    open: dict[str, LiteSpan] = field(default_factory=dict)
    tool_slots: dict[tuple[str | None, str], list[ToolSlot]] = field(default_factory=dict)
    children: int = 0  # spans started under the root (inspect.sample.span_count)
    encoded: MessageCache = field(default_factory=dict)  # each message encoded once per sample
    clock: Callable[[], int] = time.time_ns  # the span factory's clock (a log import replays its times)

    def parent(self, span_id: str | None) -> LiteSpan:
        """The parent for a new span of this sample (every caller starts exactly one span)."""
        self.children += 1
        if span_id is not None:
            found = self.spans.get(span_id)
            if found is not None:
                return found[0]
        return self.span


def end_with_error(
    span: LiteSpan,
    description: str,
    error_type: str | None = None,
    attrs: Mapping[str, AttrValue] | None = None,
    end_time: int | None = None,
) -> None:
    """End ``span`` as failed: ``error.type`` (when given), then ``attrs``, status ERROR with
    ``description``; at ``end_time``, or now."""
    if error_type is not None:
        span.set_attribute(c.ERROR_TYPE, error_type)
    if attrs:
        span.set_attributes(attrs)
    span.set_status(Status(StatusCode.ERROR, description))
    span.end(end_time=end_time)


# ----------------------------------------------------------------- run / task
def end_run(span: LiteSpan, exception: BaseException | None, outcomes: set[str], redactor: Redactor) -> None:
    """A run fails when it raised, or when any of its tasks (``outcomes``) did not succeed."""
    if exception is not None:
        status = "cancelled" if is_cancellation(exception) else "error"
    else:
        status = "cancelled" if "cancelled" in outcomes else "error" if outcomes - {"success"} else "success"
    span.set_attribute(c.RUN_STATUS, status)
    if exception is not None:
        end_with_error(span, redactor.text(str(exception) or status), type(exception).__name__)
    elif status != "success":
        end_with_error(span, f"a task of this run ended with status {status}")
    else:
        span.end()


def start_task(
    spans: SpanFactory, parent: LiteSpan | None, attrs: Attrs, base: Attrs, data: TaskStart
) -> TaskTrace:
    start = spans.now()
    span = spans.start(c.SPAN_TASK, parent, attrs, start)
    # Announce the task at once: consumers that only see ended spans (an OTLP receiver, a
    # collector) learn here that it is running, long before the task span itself ends.
    marker = spans.start(c.SPAN_TASK_STARTED, span, dict(attrs), start)
    marker.end(end_time=start)
    return TaskTrace(span, base, data.run_id, data.spec.task, data.spec.model)


def end_task(
    task: TaskTrace,
    log: EvalLog | None,
    exception: BaseException | None,
    outcomes: set[str],
    redactor: Redactor,
) -> None:
    """End a task's span from its log; without one, as cancelled, or failed by ``exception``."""
    if log is None:
        status = "cancelled" if exception is None or is_cancellation(exception) else "error"
        outcomes.add(status)
        reason = str(exception) if exception is not None else "task did not finish (cancelled or retried)"
        _end_unlogged_task(task, status, redactor.text(reason))
        return
    span = task.span
    span.set_attribute(c.SAMPLES_TRACED, task.traced)
    span.set_attributes(a.task_end_attrs(log, task.errored))
    outcomes.add(str(log.status))
    if log.status == "success":
        span.end()
    else:
        message = log.error.message if log.error else f"task {log.status}"
        end_with_error(span, redactor.text(message), a.error_type(message, f"task_{log.status}"))


def end_retried_task(task: TaskTrace) -> None:
    """An eval-set retry supersedes the failed attempt."""
    _end_unlogged_task(task, "retried", "this attempt failed and the task is being retried")


def _end_unlogged_task(task: TaskTrace, status: str, reason: str) -> None:
    task.span.set_attributes(
        {
            c.SAMPLES_TRACED: task.traced,
            c.TASK_STATUS: status,
            c.SAMPLES_ERRORED: task.errored,
            c.TASK_ERROR: reason,
        }
    )
    end_with_error(task.span, reason, f"task_{status}")


# ----------------------------------------------------------------- sample
def start_sample(
    spans: SpanFactory,
    task: TaskTrace,
    attrs: Attrs,
    base: Attrs,
    data: SampleAttemptStart,
    init_ns: int | None,
) -> SampleTrace:
    # the sample began when Inspect says it did (its init span opens before the hooks run)
    candidates = [spans.now()]
    if data.attempt == 1 and init_ns is not None:
        candidates.append(init_ns)
    if data.summary.started_at:
        candidates.append(a.ns(_parse_time(data.summary.started_at)))
    start = min(candidates)
    span = spans.start(
        c.SPAN_SAMPLE, None, attrs, start, links=[Link(task.span.get_span_context())], sampled=True
    )
    # child spans carry the ids but not the sample-root-only attributes
    child_base = {k: v for k, v in base.items() if k != c.GEN_AI_CONVERSATION_ID}
    return SampleTrace(span, child_base, task, task.run_id, clock=spans.now)


def end_sample(s: SampleTrace, reason: str, error: str | None = None, error_type: str | None = None) -> None:
    """End a sample's root span (failed with ``error`` when given), after everything still open
    under it, which ends for ``reason``."""
    close_children(s, reason)
    if error is None:
        s.span.set_attribute(c.SAMPLE_SPAN_COUNT, s.children)
        s.span.end()
    else:
        end_with_error(s.span, error, error_type, {c.SAMPLE_SPAN_COUNT: s.children})


def abandon_sample(s: SampleTrace, reason: str) -> None:
    s.span.set_attribute(c.SAMPLE_STATUS, "cancelled")
    end_sample(s, reason, reason, "cancelled")


def close_children(s: SampleTrace, reason: str) -> None:
    end = s.clock()
    for slots in s.tool_slots.values():
        for slot in slots:
            if slot.end_ns is not None:
                slot.span.end(end_time=slot.end_ns)
    s.tool_slots.clear()
    for span in reversed(list(s.open.values())):
        end_with_error(span, reason, attrs={c.SPAN_UNFINISHED: True}, end_time=end)
    s.open.clear()


def end_tool_slot(slot: ToolSlot, end_ns: int) -> None:
    """End an Inspect tool span once both its end and its ToolEvent have arrived."""
    if slot.error is None:
        slot.span.end(end_time=end_ns)
    else:
        end_with_error(slot.span, slot.error, end_time=end_ns)


def is_cancellation(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) or type(exc).__name__ in {
        "Cancelled",
        "CancelledError",
        "KeyboardInterrupt",
    }


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        from datetime import datetime

        return datetime.fromisoformat(value)
    return value
