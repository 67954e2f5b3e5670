"""Span trees, and the tree Inspect's own log says a sample should have."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from inspect_ai.event import ModelEvent, SandboxEvent, SpanBeginEvent, ToolEvent
from inspect_ai.log import EvalSample

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord

Shape = tuple[str, tuple[Any, ...]]


@dataclass
class SpanTree:
    spans: list[SpanRecord]
    by_id: dict[str, SpanRecord] = field(default_factory=dict)
    children: dict[str, list[SpanRecord]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self.by_id = {s.span_id: s for s in self.spans}
        for span in self.spans:
            if span.parent_id:
                self.children[span.parent_id].append(span)

    def named(self, name: str) -> list[SpanRecord]:
        return [s for s in self.spans if s.name == name]

    def kids(self, span: SpanRecord) -> list[SpanRecord]:
        return sorted(self.children.get(span.span_id, []), key=lambda s: s.start_ns)

    def descendants(self, span: SpanRecord) -> list[SpanRecord]:
        out: list[SpanRecord] = []
        for kid in self.kids(span):
            out.append(kid)
            out.extend(self.descendants(kid))
        return out

    def shape(self, span: SpanRecord) -> Shape:
        """(name, sorted child shapes): the tree without timing, comparable across runs."""
        return (_label(span), tuple(sorted(self.shape(k) for k in self.kids(span))))

    def sample(
        self, eval_id: str, sample_id: Any, epoch: int, attempt: int | None = None
    ) -> list[SpanRecord]:
        return [
            s
            for s in self.named(c.SPAN_SAMPLE)
            if s.attr(c.EVAL_ID) == eval_id
            and s.attr(c.SAMPLE_ID) == str(sample_id)
            and s.attr(c.SAMPLE_EPOCH) == epoch
            and (attempt is None or s.attr(c.SAMPLE_ATTEMPT) == attempt)
        ]


def _label(span: SpanRecord) -> str:
    name = span.attr(c.SPAN_NAME)
    if span.name.startswith("inspect.") and name and span.name not in (c.SPAN_SAMPLE,):
        return f"{span.name}:{name}"
    return span.name


def expected_shape(sample: EvalSample) -> Shape:
    """The sample's span tree as Inspect's own events nest it (model calls, tools, sandbox)."""
    nodes: dict[str | None, list[Any]] = {None: []}
    labels: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    tool_spans: dict[tuple[str | None, str], int] = defaultdict(int)
    for event in sample.events:
        if isinstance(event, SpanBeginEvent):
            if event.type == "tool":
                labels[event.id] = f"{c.OP_EXECUTE_TOOL} {event.name}"
                tool_spans[(event.parent_id, event.name)] += 1
            elif event.type == "agent":
                labels[event.id] = f"{c.OP_INVOKE_AGENT} {event.name}"
            else:
                prefix = f"inspect.{event.type}" if event.type else c.SPAN_GENERIC
                labels[event.id] = f"{prefix}:{event.name}"
            parents[event.id] = event.parent_id if event.parent_id in labels else None
            nodes[event.id] = []
            nodes.setdefault(parents[event.id], []).append(event.id)
        elif isinstance(event, ModelEvent):
            model = event.model.partition("/")[2] or event.model
            nodes.setdefault(event.span_id if event.span_id in labels else None, []).append(f"chat {model}")
        elif isinstance(event, ToolEvent):
            key = (event.span_id, event.function)
            if tool_spans[key] > 0:
                tool_spans[key] -= 1  # merged into its Inspect tool span
            else:
                nodes.setdefault(event.span_id if event.span_id in labels else None, []).append(
                    f"{c.OP_EXECUTE_TOOL} {event.function}"
                )
        elif isinstance(event, SandboxEvent):
            nodes.setdefault(event.span_id if event.span_id in labels else None, []).append(c.SPAN_SANDBOX)

    def build(item: Any) -> Shape:
        if item in labels:
            return (labels[item], tuple(sorted(build(k) for k in nodes.get(item, []))))
        return (str(item), ())

    return (c.SPAN_SAMPLE, tuple(sorted(build(k) for k in nodes[None])))
