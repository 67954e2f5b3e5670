"""What the hook records: one queued tuple per call on the eval loop, instruments off it.

The SDK's ``record``/``add`` costs several µs per measurement and reader; a model call makes up to
six measurements. So the hook only appends its own objects (already built for the span) to a
queue — well under a µs — and ``drain`` turns them into measurements on the metrics thread, right
before every collection (``MetricsPipeline``). ``Metrics`` is the no-op the hook holds while
metrics are off: the same methods, doing nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from inspect_ai.event import ToolEvent
from inspect_ai.hooks import ModelRetry, TaskStart
from inspect_ai.log import EvalSample
from opentelemetry.metrics import Meter

from otel_bridge import conventions as c
from otel_bridge.metrics import instruments as i

Attrs = Mapping[str, Any]

_MODEL_KEYS: tuple[str, ...] = (c.GEN_AI_OPERATION_NAME, c.GEN_AI_PROVIDER_NAME, c.GEN_AI_REQUEST_MODEL)
_MODEL_KEYS += (c.GEN_AI_RESPONSE_MODEL, c.TASK_NAME)
_TASK_KEYS = (c.TASK_NAME, c.MODEL)


def _pick(attrs: Attrs, keys: tuple[str, ...], extra: Attrs | None = None) -> dict[str, Any]:
    """The low-cardinality attributes of a measurement (absent and empty values left out)."""
    out = {k: attrs[k] for k in keys if attrs.get(k) not in (None, "")}
    out.update((k, v) for k, v in (extra or {}).items() if v not in (None, ""))
    return out


class Metrics:
    """The hook's recording calls; this base records nothing (metrics off)."""

    def model_call(self, attrs: Attrs, start_ns: int, end_ns: int, error_type: str | None) -> None:
        """A finished model call, from its span's attributes (usage, models, cache)."""

    def tool_call(self, base: Attrs, event: ToolEvent) -> None:
        """A finished tool call."""

    def sample_end(self, base: Attrs, sample: EvalSample) -> None:
        """A sample's final end (not a retried attempt's)."""

    def score(self, base: Attrs, result: Attrs) -> None:
        """One ``gen_ai.evaluation.result`` of a sample's final scores."""

    def model_retry(self, data: ModelRetry) -> None:
        """Inspect is about to retry a model call."""

    def task_start(self, data: TaskStart) -> None:
        """A task starts: how many samples it will run."""


NO_METRICS = Metrics()


class MetricsRecorder(Metrics):
    """Queues every call; ``drain`` (on the metrics thread) records the measurements."""

    def __init__(self, meter: Meter) -> None:
        self.pending: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._put = self.pending.append
        self.errors = 0  # measurements that could not be made (a bug, never the eval's problem)
        made: dict[str, Any] = {}
        for spec in i.ALL:
            if spec.kind == "histogram":
                made[spec.name] = meter.create_histogram(
                    spec.name, spec.unit, spec.description, explicit_bucket_boundaries_advisory=spec.buckets
                )
            elif spec.kind == "counter":
                made[spec.name] = meter.create_counter(spec.name, spec.unit, spec.description)
            else:
                made[spec.name] = meter.create_gauge(spec.name, spec.unit, spec.description)
        self.instruments = made

    # ---------------------------------------------------------------- eval loop: queue only
    def model_call(self, attrs: Attrs, start_ns: int, end_ns: int, error_type: str | None) -> None:
        self._put((self._model_call, (attrs, start_ns, end_ns, error_type)))

    def tool_call(self, base: Attrs, event: ToolEvent) -> None:
        self._put((self._tool_call, (base, event)))

    def sample_end(self, base: Attrs, sample: EvalSample) -> None:
        self._put((self._sample_end, (base, sample)))

    def score(self, base: Attrs, result: Attrs) -> None:
        self._put((self._score, (base, result)))

    def model_retry(self, data: ModelRetry) -> None:
        self._put((self._model_retry, (data,)))

    def task_start(self, data: TaskStart) -> None:
        self._put((self._task_start, (data,)))

    # ---------------------------------------------------------------- metrics thread
    def drain(self) -> None:
        """Record everything queued so far (called before each collection, and at the end)."""
        pending = self.pending
        while pending:
            record, args = pending.popleft()
            try:
                record(*args)
            except Exception:  # a malformed object must not stop the others
                self.errors += 1

    def _add(self, spec: i.Instrument, value: float, attrs: Attrs) -> None:
        instrument = self.instruments[spec.name]
        if spec.kind == "counter":
            instrument.add(value, attrs)
        elif spec.kind == "histogram":
            instrument.record(value, attrs)
        else:
            instrument.set(value, attrs)

    def _model_call(self, attrs: Attrs, start_ns: int, end_ns: int, error_type: str | None) -> None:
        common = _pick(attrs, _MODEL_KEYS)
        if attrs.get(c.MODEL_CACHE) == "read":
            # answered by Inspect's local cache: no provider call, no tokens used (as in Inspect's log)
            self._add(i.CACHE_HITS, 1, common)
            return
        timed = _pick(common, _MODEL_KEYS, {c.ERROR_TYPE: error_type})
        self._add(i.OPERATION_DURATION, max(0, end_ns - start_ns) / 1e9, timed)
        for key, token_type in (
            (c.GEN_AI_USAGE_INPUT_TOKENS, "input"),
            (c.GEN_AI_USAGE_OUTPUT_TOKENS, "output"),
        ):
            tokens = attrs.get(key)
            if tokens is not None:
                self._add(i.TOKEN_USAGE, tokens, {**common, i.TOKEN_TYPE: token_type})
        for key, spec in (
            (c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, i.CACHE_READ_TOKENS),
            (c.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, i.CACHE_WRITE_TOKENS),
            (c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, i.REASONING_TOKENS),
        ):
            tokens = attrs.get(key)
            if tokens:
                self._add(spec, tokens, common)

    def _tool_call(self, base: Attrs, event: ToolEvent) -> None:
        error = str(event.error.type) if event.error is not None else None
        attrs = _pick(base, _TASK_KEYS, {c.GEN_AI_TOOL_NAME: event.function, c.ERROR_TYPE: error})
        self._add(i.TOOL_CALLS, 1, attrs)
        if event.completed is not None:
            seconds = (event.completed - event.timestamp).total_seconds()
        else:
            seconds = event.working_time or 0.0
        self._add(i.TOOL_DURATION, max(0.0, seconds), attrs)

    def _sample_end(self, base: Attrs, sample: EvalSample) -> None:
        limit = None
        if sample.error is not None:
            status = "error"
        elif sample.limit is not None:
            status, limit = "limit", sample.limit.type
        else:
            status = "success"
        attrs = _pick(base, _TASK_KEYS)
        self._add(
            i.SAMPLES_COMPLETED, 1, _pick(attrs, _TASK_KEYS, {c.SAMPLE_STATUS: status, i.LIMIT_TYPE: limit})
        )
        if sample.total_time is not None:
            self._add(i.SAMPLE_DURATION, sample.total_time, attrs)
        if sample.working_time is not None:
            self._add(i.SAMPLE_WORKING_TIME, sample.working_time, attrs)

    def _score(self, base: Attrs, result: Attrs) -> None:
        value = result.get(c.GEN_AI_EVALUATION_SCORE_VALUE)
        if isinstance(value, int | float):
            name = result.get(c.GEN_AI_EVALUATION_NAME)
            self._add(i.SCORE, value, _pick(base, _TASK_KEYS, {c.GEN_AI_EVALUATION_NAME: name}))

    def _model_retry(self, data: ModelRetry) -> None:
        # Inspect names the model here without its provider: gen_ai.request.model, as on model calls
        attrs = {c.GEN_AI_REQUEST_MODEL: data.model_name, c.TASK_NAME: data.task_name}
        attrs[c.ERROR_TYPE] = data.exception_type
        self._add(i.MODEL_RETRIES, 1, _pick(attrs, tuple(attrs)))

    def _task_start(self, data: TaskStart) -> None:
        dataset, config = data.spec.dataset, data.spec.config
        samples = len(dataset.sample_ids) if dataset.sample_ids else (dataset.samples or 0)
        total = samples * (config.epochs or 1)
        self._add(i.SAMPLES_EXPECTED, total, {c.TASK_NAME: data.spec.task, c.MODEL: data.spec.model})
