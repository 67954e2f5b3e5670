"""``otel-bridge show``: a run's span file as a trace tree and a results table."""

from __future__ import annotations

import bisect
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from otel_bridge import conventions as c
from otel_bridge.config import columns_forced
from otel_bridge.metrics.summary import print_summary
from otel_bridge.records import FileReadReport, SpanRecord, read_span_file

#: Spans held for sample traces whose root has not been read yet (a killed run leaves some
#: roots unwritten): past this, the oldest such trace is dropped (it would not be shown).
MAX_PENDING_SPANS = 200_000


def _sample_key(span: SpanRecord) -> tuple[str, int, int]:
    return (str(span.attr(c.SAMPLE_ID)), span.attr(c.SAMPLE_EPOCH, 0), span.attr(c.SAMPLE_ATTEMPT, 0))


@dataclass
class TaskSamples:
    """One eval's samples, summarised: counts, and the first ``keep`` sample traces (by id, epoch)."""

    keep: int
    count: int = 0  # sample spans (retried attempts included: each is a trace)
    finished: int = 0
    errors: int = 0  # of the finished ones (for a task whose end was not recorded)
    tokens: int = 0
    first: tuple[tuple[str, int, int], int, dict[str, Any]] | None = None
    shown: list[tuple[tuple[str, int, int], int, SpanRecord]] = field(default_factory=list)

    def add(self, span: SpanRecord, seq: int) -> SpanRecord | None:
        """Count a sample root; returns the root no longer among the shown ones (or this one)."""
        self.count += 1
        if not span.attr(c.SAMPLE_WILL_RETRY):
            self.finished += 1
            self.errors += span.status == "ERROR"
            self.tokens += int(span.attr(c.USAGE_TOTAL_TOKENS, 0))
        key = _sample_key(span)
        if self.first is None or (key, seq) < self.first[:2]:
            self.first = (key, seq, span.attributes)
        if len(self.shown) < self.keep or (self.shown and (key, seq) < self.shown[-1][:2]):
            bisect.insort(self.shown, (key, seq, span), key=lambda item: item[:2])
            if len(self.shown) > self.keep:
                return self.shown.pop()[2]
            return None
        return span


@dataclass
class RunView:
    """A span file organised the way Inspect organised the eval, read in one bounded pass.

    Kept: the run, task and task-start spans, per-eval sample counts and the spans of the first
    ``max_samples`` sample traces of each eval; every other span is counted and dropped.
    """

    report: FileReadReport
    span_count: int = 0
    run: SpanRecord | None = None
    children: dict[str | None, list[SpanRecord]] = field(default_factory=dict)
    tasks: dict[str, SpanRecord] = field(default_factory=dict)  # eval_id -> task span
    started: dict[str, SpanRecord] = field(default_factory=dict)  # eval_id -> start marker
    samples: dict[str, TaskSamples] = field(default_factory=dict)  # eval_id -> its samples

    @classmethod
    def load(cls, path: Path, max_samples: int = 3) -> RunView:
        view = cls(FileReadReport(path))
        pending: dict[str, list[SpanRecord]] = {}  # trace id -> spans read before their root
        pending_spans = 0
        kept: dict[str, list[SpanRecord]] = {}  # trace id -> spans of a shown sample trace
        for seq, span in enumerate(read_span_file(path, view.report)):
            view.span_count += 1
            eval_id = span.attr(c.EVAL_ID)
            if span.name == c.SPAN_TASK:
                view.tasks[eval_id] = span
            elif span.name == c.SPAN_TASK_STARTED:
                view.started[eval_id] = span
            elif span.name == c.SPAN_RUN:
                view.run = view.run or span
            elif span.name == c.SPAN_SAMPLE:
                trace = [span, *pending.pop(span.trace_id, ())]
                pending_spans -= len(trace) - 1
                samples = view.samples.setdefault(eval_id, TaskSamples(max_samples))
                dropped = samples.add(span, seq)
                if dropped is not span:
                    kept[span.trace_id] = trace
                if dropped is not None:
                    kept.pop(dropped.trace_id, None)
            elif span.trace_id in kept:
                kept[span.trace_id].append(span)  # arrived after its root (reordered)
            else:
                pending.setdefault(span.trace_id, []).append(span)
                pending_spans += 1
                while pending_spans > MAX_PENDING_SPANS:
                    pending_spans -= len(pending.pop(next(iter(pending))))
        view.children = _children([s for trace in kept.values() for s in trace])
        return view

    def sample_roots(self, eval_id: str) -> list[SpanRecord]:
        """The shown sample traces' roots, in order of sample id, epoch and attempt."""
        samples = self.samples.get(eval_id)
        return [item[2] for item in samples.shown] if samples else []

    def task_ids(self) -> list[str]:
        ids = list(dict.fromkeys([*self.started, *self.tasks, *self.samples]))
        return sorted(
            ids,
            key=lambda i: (self._task_attrs(i).get(c.TASK_NAME, ""), self._task_attrs(i).get(c.MODEL, "")),
        )

    def _task_attrs(self, eval_id: str) -> dict[str, Any]:
        span = self.tasks.get(eval_id) or self.started.get(eval_id)
        if span is not None:
            return span.attributes
        samples = self.samples.get(eval_id)
        return samples.first[2] if samples and samples.first else {}

    def missing(self) -> list[str]:
        """What a complete recording would have and this one lacks."""
        notes = []
        for eval_id in self.task_ids():
            if eval_id not in self.tasks:
                attrs = self._task_attrs(eval_id)
                notes.append(
                    f"task {attrs.get(c.TASK_NAME, '?')} · {attrs.get(c.MODEL, '?')} has no end recorded "
                    "(still running, or the process was killed): its metrics are missing"
                )
        if self.span_count and self.run is None:
            notes.append("the run span is missing (the run had not ended when the file was last written)")
        if self.report.truncated_tail:
            notes.append("the last line of the file is cut short (the process was killed while writing)")
        if self.report.bad_lines:
            lines = ", ".join(str(n) for n, _ in self.report.bad_lines[:5])
            notes.append(f"{len(self.report.bad_lines)} damaged line(s) were skipped (line {lines})")
        return notes


def _children(spans: list[SpanRecord]) -> dict[str | None, list[SpanRecord]]:
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    for items in children.values():
        items.sort(key=lambda s: s.start_ns)
    return dict(children)


def _label(span: SpanRecord) -> str:
    name = span.attr(c.WANDB_DISPLAY_NAME) or span.name
    ms = max(0, span.end_ns - span.start_ns) / 1e6
    extra = []
    tokens = span.attr(c.GEN_AI_USAGE_INPUT_TOKENS)
    if tokens is not None:
        extra.append(f"{tokens}→{span.attr(c.GEN_AI_USAGE_OUTPUT_TOKENS, 0)} tok")
    if span.name == c.SPAN_SAMPLE:
        scores = span.json_attr(c.SAMPLE_SCORES) or {}
        if isinstance(scores, dict):
            extra.extend(f"{k}={v.get('value') if isinstance(v, dict) else v}" for k, v in scores.items())
    status = " [red]ERROR[/red] " + span.status_message[:80] if span.status == "ERROR" else ""
    detail = f" [dim]({', '.join(extra)})[/dim]" if extra else ""
    return f"[bold]{name}[/bold] [cyan]{ms:.1f} ms[/cyan]{detail}{status}"


def _add(tree: Tree, view: RunView, span: SpanRecord, depth: int, max_depth: int) -> None:
    node = tree.add(_label(span))
    kids = view.children.get(span.span_id, [])
    if depth >= max_depth:
        if kids:
            node.add(f"[dim]… {len(kids)} more (use --depth)[/dim]")
        return
    for kid in kids:
        _add(node, view, kid, depth + 1, max_depth)


def render_tree(view: RunView, max_depth: int, max_samples: int) -> Tree:
    title = f"run {view.run.attr(c.RUN_ID)}" if view.run else f"span file {view.report.path.name}"
    root = Tree(f"[bold magenta]{title}[/bold magenta]")
    for eval_id in view.task_ids():
        attrs = view._task_attrs(eval_id)
        task = view.tasks.get(eval_id)
        name = f"{attrs.get(c.TASK_NAME)} · {attrs.get(c.MODEL)}"
        pending = f"[bold]{name}[/bold] [yellow]no end recorded[/yellow]"
        header = _label(task) if task else pending
        node = root.add(header)
        count = view.samples[eval_id].count if eval_id in view.samples else 0
        for sample in view.sample_roots(eval_id)[:max_samples]:
            _add(node, view, sample, 1, max_depth)
        if count > max_samples:
            node.add(f"[dim]… {count - max_samples} more sample trace(s) (use --samples)[/dim]")
    return root


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_summary(view: RunView) -> Table:
    table = Table(title="results", show_lines=False)
    for column in ("task", "model", "scorer", "metrics", "samples", "errors", "tokens", "duration", "status"):
        table.add_column(column)
    for eval_id in view.task_ids():
        attrs = view._task_attrs(eval_id)
        task = view.tasks.get(eval_id)
        samples = view.samples.get(eval_id) or TaskSamples(0)
        if task is not None:
            metrics: dict[str, Any] = task.json_attr(c.TASK_METRICS) or {}
            total = task.attr(c.SAMPLES_TOTAL, samples.finished)
            done = task.attr(c.SAMPLES_COMPLETED, samples.finished)
            errors = task.attr(c.SAMPLES_ERRORED, 0)
            tokens = task.attr(c.USAGE_TOTAL_TOKENS, 0)
            duration = f"{(task.end_ns - task.start_ns) / 1e9:.1f}s"
            status = str(task.attr(c.TASK_STATUS, task.status))
        else:
            metrics = {}
            total, done = "?", samples.finished
            errors, tokens = samples.errors, samples.tokens
            duration, status = "?", "no end recorded"
        scorers = list(metrics.items()) or [("-", {})]
        for i, (scorer, values) in enumerate(scorers):
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()) if isinstance(values, dict) else ""
            first = i == 0
            table.add_row(
                str(attrs.get(c.TASK_NAME, "?")) if first else "",
                str(attrs.get(c.MODEL, "?")) if first else "",
                scorer,
                shown,
                f"{done}/{total}" if first else "",
                str(errors) if first else "",
                str(tokens) if first else "",
                duration if first else "",
                status if first else "",
            )
    return table


def show(path: Path, max_depth: int = 6, max_samples: int = 3, console: Console | None = None) -> RunView:
    if console is None:
        # piped or in CI: rich would assume 80 columns and squeeze the results table
        wide = not sys.stdout.isatty() and not columns_forced()
        console = Console(width=140 if wide else None)
    view = RunView.load(path, max_samples)
    console.print(f"[dim]{path} — {view.span_count} spans in {view.report.requests} batches[/dim]")
    console.print(render_tree(view, max_depth, max_samples))
    console.print(render_summary(view))
    for note in view.missing():
        console.print(f"[yellow]missing:[/yellow] {note}")
    print_summary(path, console)
    return view


def summary_json(view: RunView) -> str:
    """The summary as JSON (``otel-bridge show --json``), for scripts."""
    out = []
    for eval_id in view.task_ids():
        attrs = view._task_attrs(eval_id)
        task = view.tasks.get(eval_id)
        out.append(
            {
                "eval_id": eval_id,
                "task": attrs.get(c.TASK_NAME),
                "model": attrs.get(c.MODEL),
                "status": task.attr(c.TASK_STATUS) if task else None,
                "metrics": task.json_attr(c.TASK_METRICS) if task else None,
                "samples": view.samples[eval_id].count if eval_id in view.samples else 0,
            }
        )
    return json.dumps({"tasks": out, "missing": view.missing()}, indent=2)
