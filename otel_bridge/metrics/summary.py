"""What ``otel-bridge show`` prints from a metric file, and what ``sync --to otlp`` sends of it.

The file's lines are deltas (``files``): sums and histograms add up across lines, a gauge keeps
its last value. Cumulative points (from another writer) keep their last value too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from otel_bridge import conventions as c
from otel_bridge import spanfiles
from otel_bridge.metrics import instruments as i
from otel_bridge.metrics.files import read_lines, to_request

_DELTA = 1


@dataclass
class Point:
    value: float = 0.0  # sums and gauges
    count: int = 0  # histograms
    total: float = 0.0


@dataclass
class Totals:
    """Every series of a metric file: (metric name, attributes) → its total."""

    series: dict[tuple[str, tuple[tuple[str, Any], ...]], Point] = field(default_factory=dict)

    def add(self, name: str, kind: str, point: dict[str, Any], temporality: int) -> None:
        attrs = tuple(
            sorted((a["key"], next(iter(a["value"].values()), None)) for a in point.get("attributes", []))
        )
        slot = self.series.setdefault((name, attrs), Point())
        replace = kind == "gauge" or temporality != _DELTA
        if kind == "histogram":
            count, total = int(point.get("count", 0)), float(point.get("sum", 0.0))
            slot.count, slot.total = (count, total) if replace else (slot.count + count, slot.total + total)
        else:
            value = float(point.get("asDouble", point.get("asInt", 0)))
            slot.value = value if replace else slot.value + value

    def by(self, name: str, key: str) -> dict[Any, Point]:
        """One metric's series summed per value of one attribute."""
        out: dict[Any, Point] = {}
        for (metric, attrs), point in self.series.items():
            if metric == name:
                slot = out.setdefault(dict(attrs).get(key), Point())
                slot.value += point.value
                slot.count += point.count
                slot.total += point.total
        return out


def load(path: Path) -> Totals:
    totals = Totals()
    for _, doc in read_lines(path):
        for rm in doc.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for metric in sm.get("metrics", []):
                    for kind in ("sum", "histogram", "gauge"):
                        data = metric.get(kind)
                        if data is not None:
                            temporality = int(data.get("aggregationTemporality", 0))
                            for point in data.get("dataPoints", []):
                                totals.add(metric["name"], kind, point, temporality)
    return totals


def _mean(point: Point) -> str:
    return f"{point.total / point.count:.3g}" if point.count else "-"


def summary_lines(totals: Totals) -> list[str]:
    """A few lines: tokens, model calls, samples, scores, tools."""
    lines = []
    tokens = totals.by(i.TOKEN_USAGE.name, i.TOKEN_TYPE)
    calls = totals.by(i.OPERATION_DURATION.name, c.ERROR_TYPE)
    if tokens or calls:
        count = sum(p.count for p in calls.values())
        errors = sum(p.count for k, p in calls.items() if k is not None)
        retries = sum(p.value for p in totals.by(i.MODEL_RETRIES.name, c.TASK_NAME).values())
        mean = sum(p.total for p in calls.values()) / max(count, 1)
        used = {k: tokens.get(k, Point()).total for k in ("input", "output")}
        lines.append(
            f"model calls {count} (errors {errors}, retries {retries:g}), mean {mean:.3g} s; "
            f"tokens input {used['input']:g}, output {used['output']:g}"
        )
    expected = totals.by(i.SAMPLES_EXPECTED.name, c.TASK_NAME)
    for task, done in totals.by(i.SAMPLES_COMPLETED.name, c.TASK_NAME).items():
        states = {
            (dict(attrs).get(c.SAMPLE_STATUS)): p.value
            for (name, attrs), p in totals.series.items()
            if name == i.SAMPLES_COMPLETED.name and dict(attrs).get(c.TASK_NAME) == task
        }
        shown = ", ".join(f"{k} {v:g}" for k, v in sorted(states.items(), key=lambda kv: str(kv[0])))
        total = expected.get(task)
        lines.append(
            f"samples {task}: {done.value:g}/{total.value:g} ({shown})" if total else f"samples {task}"
        )
    scores = totals.by(i.SCORE.name, c.GEN_AI_EVALUATION_NAME)
    if scores:
        lines.append(
            "scores " + ", ".join(f"{k} mean {_mean(p)} (n={p.count})" for k, p in sorted(scores.items()))
        )
    tools = totals.by(i.TOOL_DURATION.name, c.GEN_AI_TOOL_NAME)
    if tools:
        lines.append(
            "tools " + ", ".join(f"{k} {p.count} calls, mean {_mean(p)} s" for k, p in sorted(tools.items()))
        )
    return lines


def print_summary(span_file: Path, console: Console) -> None:
    """``show``'s metrics section: a few lines when the run recorded metrics, nothing otherwise."""
    path = spanfiles.metrics_path(span_file)
    if not path.exists():
        return
    console.print(f"[bold]metrics[/bold] [dim]{path.name}[/dim]")
    for line in summary_lines(load(path)):
        console.print(f"  {line}")


def deliver(span_file: Path, url: str, post: Callable[[bytes, str], None]) -> tuple[int, str | None]:
    """Send the metric file beside ``span_file``, line by line: (points sent, the first problem)."""
    path = spanfiles.metrics_path(span_file)
    if not path.exists():
        return 0, None
    sent = 0
    for number, doc in read_lines(path):
        request = to_request(doc)
        try:
            post(request.SerializeToString(), url)
        except Exception as exc:
            return sent, f"otlp metrics: {path} line {number}: {type(exc).__name__}: {exc}"
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    sent += len(getattr(metric, kind).data_points) if kind else 0
    return sent, None
