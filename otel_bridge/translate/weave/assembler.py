"""The stateful side of the Weave translation: spans in any order → writes, each exactly once.

Spans arrive in any order and batch boundary, while a prediction needs its whole sample trace:
``WeaveTranslator`` only adds that buffering (still no I/O) around the pure ``mapping``. A
replay of the same spans writes nothing twice.

Bounded: the ids of written traces and predictions are remembered in FIFO memories
(``RECENT_IDS``), finished evaluations up to ``FINISHED_EVALS`` (then only their ids), and
spans waiting for their sample's root up to ``MAX_BUFFERED_TRACES`` traces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.common import RecentKeys
from otel_bridge.translate.weave.calls import chat_model, chat_usage
from otel_bridge.translate.weave.mapping import (
    EvalStats,
    finish_evaluation,
    incomplete_finish,
    log_prediction,
    start_evaluation,
    start_from_sample,
)
from otel_bridge.translate.weave.ops import LogPrediction, StartEvaluation, Write

_SKIPPED_SAMPLE_STATUSES = frozenset({"retried", "cancelled"})  # not rows of Inspect's log
RECENT_IDS = 100_000  # written sample traces and predictions remembered, to ignore replays
FINISHED_EVALS = 1_000  # finished evaluations kept whole (a late sample still joins its eval)
MAX_BUFFERED_TRACES = 50_000  # sample traces waiting for their root (a killed run leaves some)


@dataclass
class _Eval:
    start: StartEvaluation | None = None
    started: bool = False
    finished: bool = False
    pending: list[LogPrediction] = field(default_factory=list)
    stats: EvalStats = field(default_factory=EvalStats)
    sample_fallback: SpanRecord | None = None
    traces_seen: int = 0  # final sample traces translated (the task span says how many to expect)


def _order(span: SpanRecord) -> int:
    if span.name == c.SPAN_TASK_STARTED:
        return 0
    if span.name == c.SPAN_TASK:
        return 2
    return 1


class WeaveTranslator:
    """Feeds ended spans in any order and batch size; returns the writes they complete.

    Memory: spans are held only for sample traces whose root span has not ended yet, plus
    bounded memories of written traces, predictions and finished evaluations.
    """

    def __init__(
        self, *, traces: bool = True, content: bool = True, wandb_project: str | None = None
    ) -> None:
        self.traces = traces
        self.content = content
        self.wandb_project = wandb_project
        self._evals: dict[str, _Eval] = {}
        self._finished: dict[str, None] = {}  # finished evaluations still in _evals, oldest first
        self._ended = RecentKeys(RECENT_IDS)  # evaluations finished and dropped from _evals
        self._buffers: dict[str, dict[str, SpanRecord]] = {}
        self._done_traces = RecentKeys(RECENT_IDS)
        self._predicted = RecentKeys(RECENT_IDS)
        # sample roots that arrived before all their spans (collector retries reorder requests)
        self._waiting: dict[str, tuple[SpanRecord, str]] = {}
        self._finish_waiting: dict[str, SpanRecord] = {}  # task spans waiting for those samples

    def _eval(self, eval_id: str) -> _Eval:
        return self._evals.setdefault(eval_id, _Eval())

    def open_evaluations(self) -> list[str]:
        return [k for k, v in self._evals.items() if not v.finished]

    def feed(self, records: Iterable[SpanRecord]) -> list[Write]:
        out: list[Write] = []
        for span in sorted(records, key=_order):
            self._feed_one(span, out)
        return out

    def _feed_one(self, span: SpanRecord, out: list[Write]) -> None:
        eval_id = span.attributes.get(c.EVAL_ID)
        if eval_id and eval_id in self._ended:
            self._buffers.pop(span.trace_id, None)
            return  # a replay of an evaluation finished long ago
        if span.name in (c.SPAN_TASK_STARTED, c.SPAN_TASK) and eval_id:
            self._task(span, str(eval_id), out)
        elif span.name == c.SPAN_SAMPLE and eval_id:
            self._sample(span, str(eval_id), out)
        elif span.attributes.get(c.SAMPLE_UUID) is not None and span.trace_id not in self._done_traces:
            self._buffers.setdefault(span.trace_id, {})[span.span_id] = span  # a replay overwrites
            if len(self._buffers) > MAX_BUFFERED_TRACES:
                del self._buffers[next(iter(self._buffers))]
            waiting = self._waiting.get(span.trace_id)
            if waiting is not None and self._complete(waiting[0]):
                del self._waiting[span.trace_id]
                self._sample(*waiting, out)

    def _rows_missing(self, ev: _Eval, task: SpanRecord, eval_id: str) -> bool:
        expected = task.attributes.get(c.SAMPLES_TRACED)
        if any(e == eval_id for _, e in self._waiting.values()):
            return True
        return isinstance(expected, int) and ev.traces_seen < expected

    def _complete(self, root: SpanRecord) -> bool:
        """All the trace's spans are here (older span files carry no count: take what is here)."""
        expected = root.attributes.get(c.SAMPLE_SPAN_COUNT)
        return not isinstance(expected, int) or len(self._buffers.get(root.trace_id, {})) >= expected

    @property
    def held(self) -> bool:
        """Sample traces (or task ends) still waiting for spans that have not arrived."""
        return bool(self._waiting or self._finish_waiting)

    def drain(self) -> list[Write]:
        """Write what is held with whatever has arrived (end of input: nothing more will come)."""
        out: list[Write] = []
        for root, eval_id in list(self._waiting.values()):
            self._waiting.pop(root.trace_id, None)
            self._sample(root, eval_id, out, force=True)
        for eval_id, task in list(self._finish_waiting.items()):
            self._finish_waiting.pop(eval_id, None)
            self._task(task, eval_id, out, force=True)
        return out

    def _begin(self, ev: _Eval, start: StartEvaluation, out: list[Write]) -> None:
        if ev.started:
            return
        ev.start, ev.started = start, True
        out.append(start)
        out.extend(ev.pending)
        ev.pending.clear()

    def _task(self, span: SpanRecord, eval_id: str, out: list[Write], force: bool = False) -> None:
        ev = self._eval(eval_id)
        self._begin(ev, start_evaluation(span, self.wandb_project), out)
        if (
            span.name == c.SPAN_TASK
            and not ev.finished
            and not force
            and self._rows_missing(ev, span, eval_id)
        ):
            self._finish_waiting[eval_id] = span  # finish after the rows still in flight
            return
        if span.name == c.SPAN_TASK and not ev.finished:
            ev.finished = True
            out.append(finish_evaluation(span, ev.stats))
            ev.start = ev.sample_fallback = None  # what a finished evaluation no longer needs
            self._retire(eval_id)

    def _retire(self, eval_id: str) -> None:
        """A finished evaluation: keep the newest ``FINISHED_EVALS`` whole, only the ids of older ones."""
        self._finished[eval_id] = None
        while len(self._finished) > FINISHED_EVALS:
            oldest = next(iter(self._finished))
            del self._finished[oldest]
            self._evals.pop(oldest, None)
            self._ended.add(oldest)

    def _sample(self, span: SpanRecord, eval_id: str, out: list[Write], force: bool = False) -> None:
        if span.trace_id in self._done_traces:
            return
        if not force and span.trace_id not in self._waiting and not self._complete(span):
            self._waiting[span.trace_id] = (span, eval_id)
            return
        descendants = list(self._buffers.pop(span.trace_id, {}).values())
        self._done_traces.add(span.trace_id)
        ev = self._eval(eval_id)
        if not span.attributes.get(c.SAMPLE_WILL_RETRY) and span.attributes.get(c.SAMPLE_STATUS) != "retried":
            ev.traces_seen += 1
        self._after_sample(span, eval_id, descendants, out)
        task = self._finish_waiting.get(eval_id)
        if task is not None and not self._rows_missing(ev, task, eval_id):
            del self._finish_waiting[eval_id]
            self._task(task, eval_id, out)

    def _after_sample(
        self, span: SpanRecord, eval_id: str, descendants: list[SpanRecord], out: list[Write]
    ) -> None:
        status = span.attributes.get(c.SAMPLE_STATUS)
        if status in _SKIPPED_SAMPLE_STATUSES or span.attributes.get(c.SAMPLE_WILL_RETRY):
            return
        pred = log_prediction(span, descendants, traces=self.traces, content=self.content)
        if pred.key in self._predicted:
            return
        self._predicted.add(pred.key)
        ev = self._eval(eval_id)
        for chat in (d for d in descendants if d.name.startswith(c.OP_CHAT)):
            total = ev.stats.usage.setdefault(chat_model(chat), {})
            for key, n in {"requests": 1, **chat_usage(chat)}.items():
                total[key] = total.get(key, 0) + n
        if pred.model_latency is not None:
            ev.stats.add_latency(pred.model_latency)
        ev.stats.last_end_ns = max(ev.stats.last_end_ns, span.end_ns)
        if ev.started:
            out.append(pred)
        else:
            ev.sample_fallback = ev.sample_fallback or span
            ev.pending.append(pred)

    def finalize(self, reason: str) -> list[Write]:
        """Nothing more will arrive: end every open evaluation as failed with ``reason``."""
        out: list[Write] = self.drain()
        for eval_id, ev in self._evals.items():
            if ev.finished:
                continue
            if not ev.started:
                if ev.sample_fallback is None:
                    continue
                self._begin(ev, start_from_sample(ev.sample_fallback), out)
            ev.finished = True
            self._finished[eval_id] = None
            start_ns = ev.start.start_ns if ev.start else 0
            out.append(incomplete_finish(eval_id, reason, max(ev.stats.last_end_ns, start_ns)))
        self._buffers.clear()
        return out
