"""``otel-bridge show``: a run's span file as a trace tree and a results table."""

from __future__ import annotations

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


@dataclass
class RunView:
    """A span file organised the way Inspect organised the eval."""

    spans: list[SpanRecord]
    report: FileReadReport
    children: dict[str | None, list[SpanRecord]] = field(default_factory=dict)
    tasks: dict[str, SpanRecord] = field(default_factory=dict)  # eval_id -> task span
    started: dict[str, SpanRecord] = field(default_factory=dict)  # eval_id -> start marker
    samples: dict[str, list[SpanRecord]] = field(default_factory=dict)  # eval_id -> sample roots

    @classmethod
    def load(cls, path: Path) -> RunView:
        report = FileReadReport(path)
        spans = list(read_span_file(path, report))
        view = cls(spans, report)
        ids = {s.span_id for s in spans}
        children: dict[str | None, list[SpanRecord]] = defaultdict(list)
        for span in spans:
            children[span.parent_id if span.parent_id in ids else None].append(span)
        for items in children.values():
            items.sort(key=lambda s: s.start_ns)
        view.children = dict(children)
        for span in spans:
            eval_id = span.attr(c.EVAL_ID)
            if span.name == c.SPAN_TASK:
                view.tasks[eval_id] = span
            elif span.name == c.SPAN_TASK_STARTED:
                view.started[eval_id] = span
            elif span.name == c.SPAN_SAMPLE:
                view.samples.setdefault(eval_id, []).append(span)
        for items in view.samples.values():
            items.sort(
                key=lambda s: (
                    str(s.attr(c.SAMPLE_ID)),
                    s.attr(c.SAMPLE_EPOCH, 0),
                    s.attr(c.SAMPLE_ATTEMPT, 0),
                )
            )
        return view

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
        samples = self.samples.get(eval_id) or []
        return samples[0].attributes if samples else {}

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
        if self.spans and not any(s.name == c.SPAN_RUN for s in self.spans):
            notes.append("the run span is missing (the run had not ended when the file was last written)")
        if self.report.truncated_tail:
            notes.append("the last line of the file is cut short (the process was killed while writing)")
        if self.report.bad_lines:
            lines = ", ".join(str(n) for n, _ in self.report.bad_lines[:5])
            notes.append(f"{len(self.report.bad_lines)} damaged line(s) were skipped (line {lines})")
        return notes


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
    runs = [s for s in view.spans if s.name == c.SPAN_RUN]
    title = f"run {runs[0].attr(c.RUN_ID)}" if runs else f"span file {view.report.path.name}"
    root = Tree(f"[bold magenta]{title}[/bold magenta]")
    for eval_id in view.task_ids():
        attrs = view._task_attrs(eval_id)
        task = view.tasks.get(eval_id)
        name = f"{attrs.get(c.TASK_NAME)} · {attrs.get(c.MODEL)}"
        pending = f"[bold]{name}[/bold] [yellow]no end recorded[/yellow]"
        header = _label(task) if task else pending
        node = root.add(header)
        samples = view.samples.get(eval_id, [])
        for sample in samples[:max_samples]:
            _add(node, view, sample, 1, max_depth)
        if len(samples) > max_samples:
            node.add(f"[dim]… {len(samples) - max_samples} more sample trace(s) (use --samples)[/dim]")
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
        samples = view.samples.get(eval_id, [])
        finished = [s for s in samples if not s.attr(c.SAMPLE_WILL_RETRY)]
        if task is not None:
            metrics: dict[str, Any] = task.json_attr(c.TASK_METRICS) or {}
            total = task.attr(c.SAMPLES_TOTAL, len(finished))
            done = task.attr(c.SAMPLES_COMPLETED, len(finished))
            errors = task.attr(c.SAMPLES_ERRORED, 0)
            tokens = task.attr(c.USAGE_TOTAL_TOKENS, 0)
            duration = f"{(task.end_ns - task.start_ns) / 1e9:.1f}s"
            status = str(task.attr(c.TASK_STATUS, task.status))
        else:
            metrics = {}
            total, done = "?", len(finished)
            errors = sum(1 for s in finished if s.status == "ERROR")
            tokens = sum(int(s.attr(c.USAGE_TOTAL_TOKENS, 0)) for s in finished)
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
    view = RunView.load(path)
    console.print(f"[dim]{path} — {len(view.spans)} spans in {view.report.requests} batches[/dim]")
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
                "samples": len(view.samples.get(eval_id, [])),
            }
        )
    return json.dumps({"tasks": out, "missing": view.missing()}, indent=2)
