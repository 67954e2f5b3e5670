"""``otel-bridge import``: Inspect logs → the spans the hook would have recorded, then delivered.

Each run found in the logs is replayed through the hook's Recorder (``replay``) into span files
named as live (one per run, in ``INSPECT_OTEL_DIR`` or ``--dir``). The other targets get those
files through ``sync`` — the same sinks, the same idempotency. A span file that already holds a
run's spans (traced live, or imported before) gets only what it lacks: spans are matched by the
Inspect ids and times they carry (``span_key``), not by their OpenTelemetry ids.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inspect_ai.log import EvalSample
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_bridge import __version__, spanfiles
from otel_bridge import conventions as c
from otel_bridge.backfill.replay import ReplayFactory, RunLogs, TaskLog, replay_run
from otel_bridge.backfill.sources import find_logs, group_runs, read_header
from otel_bridge.config import Settings, environment
from otel_bridge.exporters.span_file import SpanFileExporter
from otel_bridge.hook.recorder import Recorder
from otel_bridge.pipeline import build_resource
from otel_bridge.records import read_span_file
from otel_bridge.redact import Redactor
from otel_bridge.spanfactory import LiteSpan
from otel_bridge.sync import TARGETS as SYNC_TARGETS
from otel_bridge.sync import sync_paths

TARGETS = ("file", *SYNC_TARGETS)
BATCH = 512  # spans per span-file line, as live


class Progress(Protocol):
    """What the command's progress bar is told: the logs found, each log begun, each sample done."""

    def logs(self, total: int) -> None: ...
    def log(self, location: str, samples: int) -> None: ...
    def sample(self) -> None: ...


@dataclass
class TaskSummary:
    """One log's line in the report (and in ``--dry-run``)."""

    location: str
    task: str
    model: str
    status: str
    samples: int = 0
    spans: int = 0


@dataclass
class RunSummary:
    """One run: its tasks, the spans written, and those its span files already held."""

    run_id: str
    eval_set_id: str | None
    tasks: list[TaskSummary] = field(default_factory=list)
    spans: int = 0
    already: int = 0  # spans the run's span files already held
    paths: list[Path] = field(default_factory=list)  # its span files (the run's, its eval set's)
    rescored: int = 0  # samples its span files hold with other scores (a re-scored log)
    left_out: int = 0  # spans of a re-scored log's samples the span file holds whole


@dataclass
class ImportReport:
    """Everything the command prints: runs, counts, and one line per problem (exit status 1)."""

    logs: int = 0
    runs: list[RunSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_logs: list[str] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said to the user, not failures

    @property
    def samples(self) -> int:
        return sum(t.samples for r in self.runs for t in r.tasks)

    @property
    def spans(self) -> int:
        return sum(r.spans for r in self.runs)


def span_key(name: str, attributes: Mapping[str, Any], start_ns: int, span_id: str) -> tuple[Any, ...]:
    """What makes a span the same span live and imported, whatever its OpenTelemetry ids.

    Roots (run, task, sample attempt) are one per Inspect id; a span inside a sample is one per
    name, Inspect span id and start time (Inspect's own event time, the same both ways). An eval
    set span names no run, so only its (derived) id tells an imported one again.
    """
    if name == c.SPAN_EVAL_SET:
        return (name, span_id)
    uuid = attributes.get(c.SAMPLE_UUID)
    if uuid is None:
        scope = attributes.get(c.EVAL_ID) or attributes.get(c.RUN_ID) or attributes.get(c.EVAL_SET_ID)
        return (name, scope)
    attempt = attributes.get(c.SAMPLE_ATTEMPT)
    if name == c.SPAN_SAMPLE:
        return (name, uuid, attempt)
    return (name, uuid, attempt, attributes.get(c.SPAN_ID), start_ns)


class _Collect(SpanProcessor):
    """Counts spans per task, and writes them to a span file in live-sized batches."""

    def __init__(self, exporter: SpanFileExporter | None) -> None:
        self.exporter = exporter
        self.pending: list[ReadableSpan] = []
        self.per_task: dict[str, int] = {}

    def on_end(self, span: ReadableSpan) -> None:
        eval_id = str((span.attributes or {}).get(c.EVAL_ID, ""))
        self.per_task[eval_id] = self.per_task.get(eval_id, 0) + 1
        if self.exporter is not None:
            self.pending.append(span)
            if len(self.pending) >= BATCH:
                self.force_flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self.exporter is not None and self.pending:
            self.exporter.export(self.pending)
            self.pending = []
        return True


def _existing_keys(directory: Path, run: RunLogs) -> tuple[list[Path], dict[tuple[Any, ...], Any]]:
    """The span files the run's spans go to that exist already, and the spans they hold (each
    sample span with its scores, to tell a re-scored log)."""
    groups = [run.run_id] + ([f"eval-set-{run.eval_set_id}"] if run.eval_set_id else [])
    paths = [p for p in (spanfiles.path_for(directory, "", g) for g in groups) if p.exists()]
    keys = {
        span_key(r.name, r.attributes, r.start_ns, r.span_id): r.attributes.get(c.SAMPLE_SCORES)
        for p in paths
        for r in read_span_file(p)
    }
    return paths, keys


def _guarded(task: TaskLog, problems: list[str]) -> Callable[[], Iterator[EvalSample]]:
    """The task's samples until one cannot be read: that is reported, the rest of the run goes on."""

    stream = task.samples

    def samples() -> Iterator[EvalSample]:
        try:
            yield from stream()
        except Exception as exc:
            problems.append(f"{task.location}: a sample could not be read ({type(exc).__name__}: {exc})")

    return samples


def import_run(
    run: RunLogs,
    settings: Settings,
    directory: Path,
    write: bool,
    problems: list[str],
    progress: Progress | None = None,
) -> RunSummary:
    """Replay one run into ``directory``'s span file for it (or only count, when not ``write``)."""
    summary = RunSummary(run.run_id, run.eval_set_id)
    existing_paths, existing = _existing_keys(directory, run)
    exporter = SpanFileExporter(directory) if write else None
    collect = _Collect(exporter)
    inspect_version = str(run.tasks[0].header.eval.packages.get("inspect_ai", "unknown"))
    resource = build_resource(settings, inspect_version)
    sampler = TracerProvider(resource=resource).sampler  # OTEL_TRACES_SAMPLER, as live

    traced = (c.SPAN_RUN, run.run_id) in existing  # a run traced live has its eval set's span too

    def keep(span: LiteSpan) -> bool:
        if span.name == c.SPAN_EVAL_SET and traced:
            return False
        span_id = f"{span.span_context.span_id:016x}"
        key = span_key(span.name, span.attrs, span.start_time or 0, span_id)
        if key in existing:
            if span.name == c.SPAN_SAMPLE and existing[key] != span.attrs.get(c.SAMPLE_SCORES):
                summary.rescored += 1
            return False
        # a sample the file holds whole: a re-scored log's new scorer spans would hang off nothing
        uuid, attempt = span.attrs.get(c.SAMPLE_UUID), span.attrs.get(c.SAMPLE_ATTEMPT)
        whole = uuid is not None and (c.SPAN_SAMPLE, uuid, attempt) in existing
        summary.left_out += whole
        return not whole

    factory = ReplayFactory(
        resource, InstrumentationScope(c.SCOPE_NAME, __version__), sampler, [collect], keep=keep
    )
    versions: dict[str, Any] = {c.INSPECT_VERSION: inspect_version, c.BRIDGE_VERSION: __version__}
    recorder = Recorder(factory, settings, Redactor(environment()), versions)
    tasks = {}
    for task in run.tasks:
        header = task.header
        tasks[header.eval.eval_id] = TaskSummary(
            task.location, header.eval.task, header.eval.model, str(header.status)
        )
        task.samples = _guarded(task, problems)
    summary.tasks = list(tasks.values())

    def on_sample(task: TaskLog, sample: EvalSample) -> None:
        tasks[task.header.eval.eval_id].samples += 1
        if progress is not None:
            progress.sample()

    def on_task(task: TaskLog) -> None:
        if progress is not None:
            total = task.header.results.total_samples if task.header.results else 0
            progress.log(task.location, total)

    try:
        replay_run(recorder, factory, run, on_sample, on_task)
    finally:
        recorder.abandon_all("the import stopped before this span ended")
        collect.force_flush()
        if exporter is not None:
            exporter.shutdown()
    for eval_id, count in collect.per_task.items():
        if eval_id in tasks:
            tasks[eval_id].spans = count
    summary.spans = factory.emitted
    summary.already = factory.skipped - summary.left_out
    written = list(exporter.paths.values()) if exporter is not None else []
    summary.paths = sorted(set(written) | set(existing_paths))
    return summary


def _rescored(
    run: RunLogs, summary: RunSummary, settings: Settings, scratch: Path, deliver: bool, report: ImportReport
) -> None:
    """A re-scored log over a span file that holds the run's samples with the old scores.

    A span file is appended to, never rewritten, so it keeps what it has (told once); the other
    targets get the re-scored run from a fresh span file, so they show the new scores.
    """
    where = ", ".join(str(p) for p in summary.paths)
    report.notes.append(
        f"run {run.run_id}: {summary.rescored} sample(s) in {where} hold other scores than the log "
        "(a re-scored log?); the span file keeps them as they are — import with --dir NEW_DIR for "
        "a span file of the re-scored log"
    )
    if deliver:
        fresh = import_run(run, settings, scratch / run.run_id, True, report.problems)
        summary.paths = fresh.paths


def import_paths(
    paths: Sequence[str],
    targets: Sequence[str],
    settings: Settings,
    directory: Path | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every log under ``paths`` into ``targets``; one problem line per thing that failed."""
    report = ImportReport()
    found = find_logs(list(paths))
    report.problems.extend(found.problems)
    report.not_logs = found.skipped
    headers = []
    for location in found.files:
        try:
            headers.append((location, read_header(location)))
        except ValueError as exc:
            report.problems.append(str(exc))
    report.logs = len(headers)
    if progress is not None:
        progress.logs(len(headers))
    runs = group_runs(headers)
    to_file = "file" in targets
    others = [t for t in targets if t != "file"]
    with tempfile.TemporaryDirectory(prefix="otel-bridge-import-") as scratch:
        out = (directory or settings.core.span_dir) if to_file else Path(scratch)
        for run in runs:
            try:
                summary = import_run(run, settings, out, not dry_run, report.problems, progress)
                if summary.rescored and to_file:
                    _rescored(run, summary, settings, Path(scratch), bool(others) and not dry_run, report)
            except Exception as exc:  # one run's failure never stops the others
                where = ", ".join(t.location for t in run.tasks)
                report.problems.append(f"{where}: import failed ({type(exc).__name__}: {exc})")
                continue
            report.runs.append(summary)
        files = sorted({p for r in report.runs for p in r.paths})
        if others and files and not dry_run:
            synced = sync_paths(files, others, settings)
            report.delivered = synced.delivered
            report.problems.extend(synced.problems + synced.damaged)
    if to_file and not dry_run:
        report.delivered["file"] = report.spans
    return report
