"""One run's logs replayed through the hook's own Recorder, at the times the log recorded.

The import has no span-building code of its own: it rebuilds the hook data Inspect would have
passed live (``RunStart``, ``TaskStart``, ``SampleInit``, ``SampleAttemptStart``,
``SampleEnd``, ``TaskEnd``, ``RunEnd``) from the log, and calls the same ``Recorder`` methods
in the same order; a sample's events reach it as the ones ``sample_end`` finds not yet seen
(the recorder's own path for events Inspect did not deliver live). Two things differ from a
live session, both held by ``ReplayFactory``: its clock reads the log's time of each hook call
instead of the wall clock, and its span ids are derived from Inspect's ids, so importing a log
twice gives the same spans.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from inspect_ai.hooks import (
    EvalSetEnd,
    EvalSetStart,
    RunEnd,
    RunStart,
    SampleAttemptStart,
    SampleEnd,
    SampleInit,
    TaskEnd,
    TaskStart,
)
from inspect_ai.log import EvalLog, EvalSample
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind

from otel_bridge import conventions as c
from otel_bridge.hook.recorder import Recorder
from otel_bridge.spanfactory import LiteSpan, SpanFactory

#: Attributes only a live run knows; left out of imported spans (docs/conventions.md, "Imported logs").
LIVE_ONLY_ATTRIBUTES = (c.COMMAND_LINE,)


def ns(value: str | datetime | None) -> int | None:
    """An Inspect timestamp (ISO string or datetime) → epoch nanoseconds; None when absent."""
    if not value:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return int(moment.timestamp() * 1_000_000_000)


def identity_seed(name: str, attributes: Mapping[str, Any], run_id: str = "") -> str:
    """The Inspect ids a root span's trace is derived from (a sample root: its uuid and attempt;
    an eval set: its id and the run it is replayed around)."""
    if c.SAMPLE_UUID in attributes:
        return f"sample/{attributes[c.SAMPLE_UUID]}/{attributes.get(c.SAMPLE_ATTEMPT)}"
    for key in (c.EVAL_ID, c.RUN_ID):
        if key in attributes:
            return f"{name}/{attributes[key]}"
    return f"{name}/{attributes.get(c.EVAL_SET_ID)}/{run_id}"


class ReplayFactory(SpanFactory):
    """The hook's SpanFactory with the log's clock and ids derived from Inspect's ids.

    Every root span (eval set, run, task, sample attempt) reseeds the id generator from the
    Inspect ids it carries; the spans under it are created in the log's order, so the same
    log always yields the same trace and span ids. ``keep`` decides, per ended span, whether
    it is handed on (a span file that already holds it gets nothing twice).
    """

    def __init__(
        self,
        resource: Resource,
        scope: InstrumentationScope,
        sampler: Sampler,
        processors: Sequence[SpanProcessor],
        keep: Callable[[LiteSpan], bool] | None = None,
    ) -> None:
        super().__init__(resource, scope, sampler, processors)
        self.clock_ns = 0
        self.run_id = ""  # the run being replayed (an eval set's span is replayed around each)
        self.keep = keep
        self.emitted = 0
        self.skipped = 0

    def now(self) -> int:  # type: ignore[override]  # an instance's clock, not the wall clock
        return self.clock_ns

    def start(
        self,
        name: str,
        parent: LiteSpan | None,
        attributes: dict[str, Any],
        start_ns: int,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] = (),
        sampled: bool = False,
    ) -> LiteSpan:
        if parent is None:
            self._random = random.Random(identity_seed(name, attributes, self.run_id))
        for key in LIVE_ONLY_ATTRIBUTES:
            attributes.pop(key, None)
        return super().start(name, parent, attributes, start_ns, kind, links, sampled)

    def emit(self, span: LiteSpan) -> None:
        if self.keep is not None and not self.keep(span):
            self.skipped += 1
            return
        self.emitted += 1
        super().emit(span)


@dataclass
class TaskLog:
    """One task × model log: its header (no samples) and a way to stream its samples."""

    location: str
    header: EvalLog
    samples: Callable[[], Iterator[EvalSample]]

    @property
    def created(self) -> str:
        return self.header.eval.created


@dataclass
class RunLogs:
    """The logs of one Inspect run (one ``eval()`` call), in the order their tasks were created."""

    run_id: str
    eval_set_id: str | None
    tasks: list[TaskLog] = field(default_factory=list)


def _first_event_ns(sample: EvalSample | None) -> int | None:
    """When the sample began: its first event (the init span opens as Inspect starts the sample;
    live, the sample's root starts within a few microseconds of it)."""
    if sample is None:
        return None
    if sample.events:
        return ns(sample.events[0].timestamp)
    return ns(sample.started_at)


def _peek(samples: Iterator[EvalSample]) -> tuple[EvalSample | None, Iterator[EvalSample]]:
    first = next(samples, None)
    return first, samples if first is None else itertools.chain([first], samples)


def replay_run(
    recorder: Recorder,
    factory: ReplayFactory,
    run: RunLogs,
    on_sample: Callable[[TaskLog, EvalSample], None] | None = None,
    on_task: Callable[[TaskLog], None] | None = None,
) -> None:
    """Call the recorder as Inspect's hooks would have for this run, at the log's times."""
    eval_set_id, run_id = run.eval_set_id, run.run_id
    # a log's task times are whole seconds: its first sample's init is the nearest time it knows;
    # tasks go in the order they started (the log keeps no other record of the run's task order)
    order = []
    for task in run.tasks:
        first, samples = _peek(task.samples())
        order.append((_task_start_ns(task.header, first), task.created, task, samples))
    order.sort(key=lambda item: item[:2])
    factory.clock_ns = min((item[0] for item in order), default=0)
    factory.run_id = run_id
    log_dir = _log_dir(run.tasks[0].location) if run.tasks else ""
    if eval_set_id:  # live, each eval-set invocation is one eval set span around its run(s)
        recorder.eval_set_start(EvalSetStart(eval_set_id, log_dir))
    recorder.run_start(RunStart(eval_set_id, run_id, [item[2].header.eval.task for item in order]))
    run_end = factory.clock_ns
    for start, _, task, samples in order:
        header = task.header
        eval_id = header.eval.eval_id
        factory.clock_ns = last = start
        recorder.task_start(TaskStart(eval_set_id, run_id, eval_id, header.eval, header.plan))
        if on_task is not None:
            on_task(task)
        for sample in samples:
            retries = header.eval.config.retry_on_error
            ended = _replay_sample(recorder, factory, eval_set_id, run_id, eval_id, sample, retries)
            last = max(last, ended)
            if on_sample is not None:
                on_sample(task, sample)
        factory.clock_ns = last = max(last, ns(header.stats.completed_at) or last)
        run_end = max(run_end, last)
        if header.status == "success":  # Inspect calls on_task_end only for a task that finished
            recorder.task_end(TaskEnd(eval_set_id, run_id, eval_id, header))
    factory.clock_ns = run_end
    logs = [t.header for t in run.tasks]
    recorder.run_end(RunEnd(eval_set_id, run_id, None, cast(Any, logs)))
    if eval_set_id:
        recorder.eval_set_end(EvalSetEnd(eval_set_id, log_dir))


def _log_dir(location: str) -> str:
    """The directory a log is in (an eval set's log dir), for a path or a URL."""
    return location.rsplit("/", 1)[0] if "/" in location else "."


def _task_start_ns(header: EvalLog, first: EvalSample | None) -> int:
    logged = ns(header.stats.started_at) or ns(header.eval.created) or 0
    return max(logged, _first_event_ns(first) or logged)


def sample_attempt(sample: EvalSample, retry_on_error: int | None) -> int:
    """The attempt number the hook saw for the sample's last attempt.

    ``error_retries`` also holds the errors of the sample in earlier logs of an eval-set task
    that was retried (a new run, whose attempts count from 1 again): only as many as
    ``retry_on_error`` allowed can be this run's own.
    """
    return min(len(sample.error_retries or []), retry_on_error or 0) + 1


def _replay_sample(
    recorder: Recorder,
    factory: ReplayFactory,
    eval_set_id: str | None,
    run_id: str,
    eval_id: str,
    sample: EvalSample,
    retry_on_error: int | None,
) -> int:
    """One sample's hook calls; returns the time it ended."""
    uuid = sample.uuid or f"{eval_id}/{sample.id}/{sample.epoch}"
    summary = sample.summary()
    started = _first_event_ns(sample) or factory.clock_ns
    factory.clock_ns = started
    recorder.sample_init(SampleInit(eval_set_id, run_id, eval_id, uuid, summary))
    attempt = sample_attempt(sample, retry_on_error)  # only the last attempt's events are in the log
    recorder.sample_attempt_start(SampleAttemptStart(eval_set_id, run_id, eval_id, uuid, summary, attempt))
    # the events go in through sample_end, which dispatches every event not seen live, in
    # order: an event without its own end time (a failed model call) ends at the sample's end,
    # as it does live, where Inspect delivers such events only with the finished sample
    factory.clock_ns = ended = max(started, ns(sample.completed_at) or _last_event_ns(sample) or started)
    recorder.sample_end(SampleEnd(eval_set_id, run_id, eval_id, uuid, sample))
    return ended


def _last_event_ns(sample: EvalSample) -> int | None:
    times = [ns(getattr(e, "completed", None)) or ns(e.timestamp) for e in sample.events]
    return max((t for t in times if t is not None), default=None)
