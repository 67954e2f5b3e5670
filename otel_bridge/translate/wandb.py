"""Span records → W&B Models writes (pure: no I/O, no wandb import).

One W&B run per Inspect run (``inspect.run_id``) or per eval set (``inspect.eval_set_id``, so
retries and later invocations resume the same run). The translator keeps every number keyed by
run and by task × model, so concurrent pairs and several ``eval()`` calls never share a counter.
The sink (``otel_bridge.sinks.wandb``) applies the writes with the public wandb API; the same
writes come out whether spans arrive live, through the receiver or from ``otel-bridge sync``.

Idempotent: a span seen twice (same trace and span id) is ignored, and a sample seen again for
the same task × model, id and epoch replaces its earlier values instead of adding to them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "JOB_TYPE",
    "SCORER_METRICS_HINT",
    "TABLE_KEY",
    "DefineMetric",
    "FinishRun",
    "LogFiles",
    "LogRow",
    "LogTable",
    "Options",
    "SetName",
    "SetTags",
    "StartRun",
    "UpdateConfig",
    "UpdateSummary",
    "WandbTranslator",
    "Write",
    "run_key",
]

EXIT_OK = 0
EXIT_ERROR = 1  # a task errored
EXIT_INCOMPLETE = 2  # the process stopped before the run's end was recorded
EXIT_CANCELLED = 130  # cancelled / Ctrl-C (the shell's code for SIGINT)
JOB_TYPE = "eval"
TABLE_KEY = "samples"
#: Proposed hook attribute on ``inspect.task`` / ``inspect.task.started``: JSON
#: ``{scorer: [metric name, ...]}``. When present, the running history follows exactly the
#: metrics Inspect will report; without it accuracy (categorical scores) or mean is used.
SCORER_METRICS_HINT = "inspect.task.scorer_metrics"

#: The only spans a W&B run is built from (the in-process sink ignores the rest on the hot path).
RELEVANT_SPANS = frozenset({c.SPAN_EVAL_SET, c.SPAN_RUN, c.SPAN_TASK, c.SPAN_TASK_STARTED, c.SPAN_SAMPLE})
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_TAG_MAX = 64
_FIXED_COLUMNS = ("task", "model", "sample_id", "epoch", "status", "input", "target", "output")
_TAIL_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "total_time",
    "working_time",
    "error",
    "limit",
    "eval_id",
)


# --------------------------------------------------------------------------------------------
# Writes: what the sink must do, in order. ``run`` is the W&B run id.


@dataclass(frozen=True)
class StartRun:
    run: str
    name: str
    group: str | None
    job_type: str
    tags: tuple[str, ...]
    config: dict[str, Any]
    resume: bool  # eval sets: later invocations continue the same run


@dataclass(frozen=True)
class SetName:
    run: str
    name: str


@dataclass(frozen=True)
class SetTags:
    run: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class UpdateConfig:
    run: str
    values: dict[str, Any]


@dataclass(frozen=True)
class DefineMetric:
    run: str
    name: str
    step_metric: str


@dataclass(frozen=True)
class LogRow:
    run: str
    values: dict[str, Any]
    step: int  # microseconds of the span's end (kept increasing): a replay logs the same steps


@dataclass(frozen=True)
class UpdateSummary:
    run: str
    values: dict[str, Any]


@dataclass(frozen=True)
class LogTable:
    run: str
    key: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    step: int


@dataclass(frozen=True)
class LogFiles:
    run: str
    eval_logs: tuple[str, ...]  # Inspect log locations → one artifact (empty: no artifact)
    extra: tuple[str, ...]  # INSPECT_OTEL_WANDB_FILES paths / globs → run files


@dataclass(frozen=True)
class FinishRun:
    run: str
    exit_code: int
    status: str


Write = (
    StartRun
    | SetName
    | SetTags
    | UpdateConfig
    | DefineMetric
    | LogRow
    | UpdateSummary
    | LogTable
    | LogFiles
    | FinishRun
)


@dataclass(frozen=True)
class Options:
    """What the translation depends on; the sink builds it from the settings (``wandb_options``)."""

    run_name: str | None = None
    tags: tuple[str, ...] = ()
    table_max_rows: int = 10_000
    log_artifact: bool = True
    files: tuple[str, ...] = ()
    capture_content: bool = True
    weave_project: str | None = None  # set when the Weave exporter runs too: cross-reference it
    wandb_base_url: str | None = None  # the W&B server of that cross-reference (None: the public one)


def weave_evaluations_url(project: str, base_url: str | None) -> str:
    """The Weave Evals page of ``entity/project`` on the W&B app whose API is ``base_url``."""
    base = (base_url or "https://api.wandb.ai").rstrip("/")
    app = base.replace("://api.", "://", 1)
    return f"{app}/{project}/weave/evaluations"


def run_key(record: SpanRecord) -> str | None:
    """The W&B run id a span belongs to: its eval set if any, else its Inspect run."""
    raw = record.attr(c.EVAL_SET_ID) or record.attr(c.RUN_ID)
    if not raw:
        return None
    return _BAD_ID_CHARS.sub("-", str(raw))[:128]


# --------------------------------------------------------------------------------------------
# State


@dataclass
class _Pair:
    """One task × model (keyed by Inspect's task_id, stable across eval-set retries)."""

    label: str
    task: str
    model: str
    scores: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    categorical: set[str] = field(default_factory=set)
    metric_names: dict[str, list[str]] = field(default_factory=dict)
    errors: set[tuple[str, int]] = field(default_factory=set)
    tokens: int = 0
    open_evals: set[str] = field(default_factory=set)
    ended_evals: set[str] = field(default_factory=set)
    attempts: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # eval_id → start, status
    status: str | None = None  # of the latest attempt (by start time), not the last to end
    final: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Run:
    key: str
    eval_set_id: str | None
    started: bool = False
    finished: bool = False
    pairs: dict[str, _Pair] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # label → pair id
    tasks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    run_status: dict[str, str] = field(default_factory=dict)  # inspect run id → status
    run_order: list[str] = field(default_factory=list)
    group: str | None = None
    name: str = ""
    tags: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    config_sent: dict[str, Any] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)
    last_step: int = -1
    rows: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    dropped_rows: int = 0
    logs: list[str] = field(default_factory=list)
    start_ns: int | None = None
    end_ns: int | None = None
    end_status: str | None = None  # set when the run / eval-set span has ended
    end_message: str = ""


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _running(metric: str, values: Sequence[float]) -> float | None:
    """The value Inspect's built-in metric would report over ``values`` (None when undefined)."""
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if metric in {"accuracy", "mean"}:
        return mean
    if metric in {"std", "var", "stderr"}:
        if n < 2:
            return 0.0
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
        if metric == "var":
            return var
        std = math.sqrt(var)
        return std if metric == "std" else std / math.sqrt(n)
    return None  # a metric we cannot compute incrementally: only Inspect's final value


class _SafeFormat(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class WandbTranslator:
    """Stateful, pure translation; one instance per sink (shared by every run it sees)."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._runs: dict[str, _Run] = {}
        self._seen: set[tuple[str, str]] = set()
        self.late_spans = 0
        self.problems: list[str] = []

    # ---------------------------------------------------------------- public
    def translate(self, records: Iterable[SpanRecord]) -> list[Write]:
        """Writes for these ended spans (applied in order); spans already seen add nothing."""
        out: list[Write] = []
        for record in records:
            out.extend(self._one(record))
        return out

    def finish_pending(self) -> list[Write]:
        """Finish runs whose end was seen but which still wait for a task span (flush / close)."""
        out: list[Write] = []
        for run in self._runs.values():
            if run.started and not run.finished and run.end_status is not None:
                out.extend(self._finish(run, force=True))
        return out

    def finalize_incomplete(self, reason: str) -> list[Write]:
        """Nothing more will arrive: finish every open run, failed when its end was never seen."""
        out = self.finish_pending()
        for run in self._runs.values():
            if run.started and not run.finished:
                ended = set(run.run_order) >= set(run.run_ids) and run.run_order
                if run.eval_set_id and ended and not any(p.open_evals for p in run.pairs.values()):
                    # every Inspect run of this eval-set invocation ended; only the eval-set
                    # span is missing (sync read it earlier, with another invocation's)
                    run.end_status = "success"
                else:
                    run.end_status = "incomplete"
                    run.end_message = reason
                out.extend(self._finish(run, force=True))
        return out

    @property
    def open_runs(self) -> list[str]:
        return [r.key for r in self._runs.values() if r.started and not r.finished]

    # ---------------------------------------------------------------- dispatch
    def _one(self, r: SpanRecord) -> list[Write]:
        if r.name not in RELEVANT_SPANS:
            return []
        ident = (r.trace_id, r.span_id)
        if ident in self._seen:
            return []
        key = run_key(r)
        if key is None:
            return []
        self._seen.add(ident)
        run = self._runs.get(key)
        if run is not None and run.finished and run.eval_set_id and r.name != c.SPAN_EVAL_SET:
            run = None  # the eval set was invoked again (a retry): continue the same W&B run
        if run is None:
            eval_set = r.attr(c.EVAL_SET_ID)
            run = self._runs[key] = _Run(key, str(eval_set) if eval_set else None, group=eval_set)
        if run.finished:
            if r.name != c.SPAN_EVAL_SET:  # another invocation's eval-set end: harmless
                self.late_spans += 1
            return []
        if run.start_ns is None or (r.start_ns and r.start_ns < run.start_ns):
            run.start_ns = r.start_ns or run.start_ns
        body: list[Write]
        if r.name == c.SPAN_SAMPLE:
            body = self._sample(run, r)
        elif r.name == c.SPAN_TASK_STARTED:
            self._task_seen(run, r)
            body = []
        elif r.name == c.SPAN_TASK:
            body = self._task_end(run, r)
        elif r.name == c.SPAN_RUN:
            body = self._run_end(run, r)
        else:
            body = self._eval_set_end(run, r)
        head = self._identity(run)
        tail = self._finish(run) if run.end_status is not None and not run.finished else []
        return head + body + tail

    # ---------------------------------------------------------------- identity and config
    def _identity(self, run: _Run) -> list[Write]:
        name = self._name(run)
        tags = self._tags(run)
        out: list[Write] = []
        if not run.started:
            run.started = True
            run.name, run.tags = name, tags
            run.config_sent = json.loads(json.dumps(run.config, default=str))
            out.append(
                StartRun(
                    run.key,
                    name,
                    run.group,
                    JOB_TYPE,
                    tags,
                    dict(run.config_sent),
                    resume=run.eval_set_id is not None,
                )
            )
            return out
        if name != run.name:
            run.name = name
            out.append(SetName(run.key, name))
        if tags != run.tags:
            run.tags = tags
            out.append(SetTags(run.key, tags))
        current = json.loads(json.dumps(run.config, default=str))
        changed = {k: v for k, v in current.items() if run.config_sent.get(k) != v}
        if changed:
            run.config_sent.update(changed)
            out.append(UpdateConfig(run.key, changed))
        return out

    def _name(self, run: _Run) -> str:
        # sorted: concurrent tasks start in any order, the name should not
        tasks = ", ".join(sorted(run.tasks)) or "inspect"
        models = ", ".join(sorted(run.models))
        default = f"{tasks} · {models}" if models else tasks
        template = self.options.run_name
        if not template:
            return default
        date = datetime.fromtimestamp((run.start_ns or 0) / 1e9, UTC)
        values = _SafeFormat(
            tasks=tasks,
            models=models,
            run_id=run.run_ids[0] if run.run_ids else run.key,
            eval_set_id=run.eval_set_id or "",
            id=run.key,
            date=date.strftime("%Y-%m-%d"),
            time=date.strftime("%H:%M:%S"),
        )
        try:
            return template.format_map(values) or default
        except (ValueError, IndexError, AttributeError) as exc:
            problem = f"INSPECT_OTEL_WANDB_RUN_NAME={template!r} is not a valid template ({exc})"
            if problem not in self.problems:
                self.problems.append(problem)
            return default

    def _tags(self, run: _Run) -> tuple[str, ...]:
        wanted = [
            *(f"task:{t}" for t in sorted(run.tasks)),
            *(f"model:{m}" for m in sorted(run.models)),
            *(f"dataset:{d}" for d in sorted(run.datasets)),
            *self.options.tags,
        ]
        return tuple(dict.fromkeys(t[:_TAG_MAX] for t in wanted if t))

    def _note_run(self, run: _Run, r: SpanRecord) -> None:
        inspect_run = r.attr(c.RUN_ID)
        if inspect_run and inspect_run not in run.run_ids:
            run.run_ids.append(str(inspect_run))
        info = run.config.setdefault("inspect", {})
        for key, attr in (
            ("version", c.INSPECT_VERSION),
            ("bridge_version", c.BRIDGE_VERSION),
            ("command_line", c.COMMAND_LINE),
        ):
            if r.attr(attr) is not None:
                info[key] = r.attr(attr)
        info["run_ids"] = list(run.run_ids)
        if run.eval_set_id:
            info["eval_set_id"] = run.eval_set_id
            if r.attr(c.EVAL_SET_LOG_DIR):
                info["eval_set_log_dir"] = r.attr(c.EVAL_SET_LOG_DIR)

    def _pair(self, run: _Run, r: SpanRecord) -> _Pair:
        task = str(r.attr(c.TASK_NAME) or "task")
        model = str(r.attr(c.MODEL) or "model")
        pair_id = str(r.attr(c.TASK_ID) or r.attr(c.EVAL_ID) or f"{task}/{model}")
        pair = run.pairs.get(pair_id)
        if pair is not None:
            return pair
        label, n = f"{task}/{model}", 1
        while label in run.labels:  # the same task twice with other arguments: keep them apart
            n += 1
            label = f"{task}-{n}/{model}"
        run.labels[label] = pair_id
        pair = run.pairs[pair_id] = _Pair(label, task, model)
        if task not in run.tasks:
            run.tasks.append(task)
        if model not in run.models:
            run.models.append(model)
        if run.group is None and not run.started:
            run.group = run.eval_set_id or task
        return pair

    def _task_seen(self, run: _Run, r: SpanRecord) -> _Pair:
        """A task × model started (or ended without its start marker): identity and config."""
        self._note_run(run, r)
        pair = self._pair(run, r)
        eval_id = str(r.attr(c.EVAL_ID) or "")
        if eval_id and eval_id not in pair.ended_evals and eval_id not in pair.open_evals:
            pair.open_evals.add(eval_id)
            pair.final = False
        if eval_id and eval_id not in pair.attempts:
            pair.attempts[eval_id] = (r.start_ns, None)
        dataset = r.attr(c.DATASET_NAME)
        if dataset and dataset not in run.datasets:
            run.datasets.append(str(dataset))
        hint = r.json_attr(SCORER_METRICS_HINT)
        if isinstance(hint, dict):
            for scorer, names in hint.items():
                if isinstance(names, list):
                    pair.metric_names[str(scorer)] = [str(n) for n in names]
        cfg: dict[str, Any] = {"task": pair.task, "model": pair.model}
        for key, attr in (
            ("task_id", c.TASK_ID),
            ("task_version", c.TASK_VERSION),
            ("task_file", c.TASK_FILE),
            ("solver", c.TASK_SOLVER),
            ("scorers", c.TASK_SCORERS),
            ("epochs", c.TASK_EPOCHS),
            ("tags", c.TASK_TAGS),
            ("model_base_url", c.MODEL_BASE_URL),
        ):
            if r.attr(attr) is not None:
                cfg[key] = r.attr(attr)
        for key, attr in (
            ("task_args", c.TASK_ARGS),
            ("model_args", c.MODEL_ARGS),
            ("generate_config", c.GENERATE_CONFIG),
            ("eval_config", c.EVAL_CONFIG),
            ("model_roles", c.MODEL_ROLES),
            ("metadata", c.TASK_METADATA),
        ):
            if r.attr(attr) is not None:
                cfg[key] = r.json_attr(attr)
        dataset_cfg = {
            k: r.attr(a)
            for k, a in (
                ("name", c.DATASET_NAME),
                ("location", c.DATASET_LOCATION),
                ("samples", c.DATASET_SAMPLES),
            )
            if r.attr(a) is not None
        }
        if dataset_cfg:
            cfg["dataset"] = dataset_cfg
        if len(cfg) > 2 or pair.label not in run.config:
            run.config[pair.label] = cfg
        if r.attr(c.GIT_COMMIT) is not None:
            run.config["git"] = {
                "origin": r.attr(c.GIT_ORIGIN),
                "commit": r.attr(c.GIT_COMMIT),
                "dirty": r.attr(c.GIT_DIRTY),
            }
        packages = r.json_attr(c.PACKAGES)
        if isinstance(packages, dict):
            run.config["packages"] = packages
        return pair

    # ---------------------------------------------------------------- history
    def _step(self, run: _Run, end_ns: int) -> int:
        run.last_step = max(run.last_step + 1, end_ns // 1000)
        return run.last_step

    def _define(self, run: _Run, pair: _Pair, keys: Iterable[str]) -> list[Write]:
        axis = f"{pair.label}/samples"
        out: list[Write] = []
        for key in keys:
            if key != axis and key not in run.defined:
                run.defined.add(key)
                out.append(DefineMetric(run.key, key, axis))
        return out

    def _sample(self, run: _Run, r: SpanRecord) -> list[Write]:
        status = str(r.attr(c.SAMPLE_STATUS) or "")
        if r.attr(c.SAMPLE_WILL_RETRY) or status in {"retried", "cancelled", ""}:
            return []  # not a final result (a retry follows, or the run was cancelled)
        self._note_run(run, r)
        pair = self._pair(run, r)
        sample = (str(r.attr(c.SAMPLE_ID)), int(r.attr(c.SAMPLE_EPOCH) or 0))
        raw_scores = r.json_attr(c.SAMPLE_SCORES) or {}
        numeric: dict[str, float] = {}
        values: dict[str, Any] = {}
        if isinstance(raw_scores, dict):
            for scorer, item in raw_scores.items():
                if not isinstance(item, dict):
                    continue
                value, number = item.get("value"), item.get("numeric")
                values[scorer] = value
                if isinstance(number, dict):
                    for sub, sub_number in number.items():
                        if (as_float := _num(sub_number)) is not None:
                            numeric[f"{scorer}/{sub}"] = as_float
                elif (as_float := _num(number)) is not None:
                    numeric[scorer] = as_float
                    if isinstance(value, str | bool):
                        pair.categorical.add(scorer)
        pair.scores[sample] = numeric
        if status == "error":
            pair.errors.add(sample)
        else:
            pair.errors.discard(sample)
        pair.tokens += int(r.attr(c.USAGE_TOTAL_TOKENS) or 0)
        self._table_row(run, pair, r, sample, status, values)
        row: dict[str, Any] = {
            f"{pair.label}/samples": len(pair.scores),
            f"{pair.label}/errors": len(pair.errors),
            f"{pair.label}/tokens": pair.tokens,
        }
        if not pair.final:
            for scorer in sorted({s for v in pair.scores.values() for s in v}):
                series = [v[scorer] for v in pair.scores.values() if scorer in v]
                names = pair.metric_names.get(scorer) or (
                    ["accuracy"] if scorer in pair.categorical else ["mean"]
                )
                for metric in names:
                    value = _running(metric, series)
                    if value is not None:
                        row[f"{pair.label}/{scorer}/{metric}"] = value
        return [*self._define(run, pair, row), LogRow(run.key, row, self._step(run, r.end_ns))]

    def _table_row(
        self,
        run: _Run,
        pair: _Pair,
        r: SpanRecord,
        sample: tuple[str, int],
        status: str,
        values: dict[str, Any],
    ) -> None:
        key = (pair.label, *sample)
        if key not in run.rows and len(run.rows) >= self.options.table_max_rows:
            run.dropped_rows += 1
            return
        content = self.options.capture_content
        row: dict[str, Any] = {
            "task": pair.task,
            "model": pair.model,
            "sample_id": sample[0],
            "epoch": sample[1],
            "status": status,
            "input": r.attr(c.SAMPLE_INPUT) if content else None,
            "target": r.attr(c.SAMPLE_TARGET) if content else None,
            "output": r.attr(c.SAMPLE_OUTPUT) if content else None,
            "input_tokens": r.attr(c.USAGE_INPUT_TOKENS),
            "output_tokens": r.attr(c.USAGE_OUTPUT_TOKENS),
            "total_tokens": r.attr(c.USAGE_TOTAL_TOKENS),
            "total_time": r.attr(c.SAMPLE_TOTAL_TIME),
            "working_time": r.attr(c.SAMPLE_WORKING_TIME),
            "error": r.attr(c.SAMPLE_ERROR),
            "limit": r.attr(c.SAMPLE_LIMIT),
            "eval_id": r.attr(c.EVAL_ID),
        }
        for scorer, value in values.items():
            row[f"score/{scorer}"] = (
                json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
            )
        run.rows[key] = row

    # ---------------------------------------------------------------- task / run / eval-set ends
    def _task_end(self, run: _Run, r: SpanRecord) -> list[Write]:
        pair = self._task_seen(run, r)
        eval_id = str(r.attr(c.EVAL_ID) or "")
        pair.open_evals.discard(eval_id)
        pair.ended_evals.add(eval_id)
        status = str(r.attr(c.TASK_STATUS) or ("error" if r.status == "ERROR" else "success"))
        started = min(pair.attempts.get(eval_id, (r.start_ns, None))[0], r.start_ns)
        pair.attempts[eval_id] = (started, status)
        latest = max(pair.attempts, key=lambda e: pair.attempts[e][0])
        pair.status = pair.attempts[latest][1] or pair.status
        pair.final = not pair.open_evals
        if latest != eval_id:
            return []  # an earlier attempt ending late (eval-set retry): the latest one counts
        usage = r.json_attr(c.TASK_USAGE)
        pair.usage = usage if isinstance(usage, dict) else {}
        label = pair.label
        completed = r.attr(c.SAMPLES_COMPLETED)
        errored = r.attr(c.SAMPLES_ERRORED)
        row: dict[str, Any] = {
            f"{label}/samples": int(completed) if completed is not None else len(pair.scores),
            f"{label}/errors": int(errored) if errored is not None else len(pair.errors),
            f"{label}/tokens": int(r.attr(c.USAGE_TOTAL_TOKENS) or pair.tokens),
        }
        summary: dict[str, Any] = {
            f"{label}/status": pair.status,
            f"{label}/eval_id": eval_id,
            f"{label}/samples_errored": row[f"{label}/errors"],
            f"{label}/tokens": row[f"{label}/tokens"],
            f"{label}/duration_s": round(max(0, r.end_ns - r.start_ns) / 1e9, 3),
        }
        for key, attr in (("samples_total", c.SAMPLES_TOTAL), ("samples_completed", c.SAMPLES_COMPLETED)):
            if r.attr(attr) is not None:
                summary[f"{label}/{key}"] = r.attr(attr)
        if r.attr(c.TASK_ERROR) is not None:
            summary[f"{label}/error"] = r.attr(c.TASK_ERROR)
        location = r.attr(c.LOG_LOCATION)
        if location:
            summary[f"{label}/log_location"] = location
            if location not in run.logs:
                run.logs.append(str(location))
        metrics = r.json_attr(c.TASK_METRICS)
        if isinstance(metrics, dict):
            for scorer, by_name in metrics.items():
                if not isinstance(by_name, dict):
                    continue
                for metric, value in by_name.items():
                    number = _num(value)
                    if number is not None:
                        row[f"{label}/{scorer}/{metric}"] = number
                        summary[f"{label}/{scorer}/{metric}"] = number
        if self.options.weave_project:
            # the Weave evaluation of this task × model carries attributes.inspect.eval_id = this id
            summary[f"{label}/weave_eval_id"] = str(r.attr(c.EVAL_ID))
        pair.summary = summary
        out: list[Write] = [*self._define(run, pair, row), LogRow(run.key, row, self._step(run, r.end_ns))]
        out.append(UpdateSummary(run.key, {**summary, **self._run_summary(run)}))
        return out

    def _run_summary(self, run: _Run) -> dict[str, Any]:
        tokens: dict[str, int] = {}
        for pair in run.pairs.values():
            for model, usage in pair.usage.items():
                if not isinstance(usage, dict):
                    continue
                for kind, value in usage.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        k = f"tokens/{model}/{kind}"
                        tokens[k] = tokens.get(k, 0) + value
        weave = {}
        if self.options.weave_project:
            weave = {
                "weave/project": self.options.weave_project,
                "weave/evaluations_url": weave_evaluations_url(
                    self.options.weave_project, self.options.wandb_base_url
                ),
            }
        return {**tokens, "logs": list(run.logs), **weave}

    def _run_end(self, run: _Run, r: SpanRecord) -> list[Write]:
        self._note_run(run, r)
        inspect_run = str(r.attr(c.RUN_ID))
        status = r.attr(c.RUN_STATUS)
        if status is None:
            status = "incomplete" if r.status == "ERROR" else "success"
        run.run_status[inspect_run] = str(status)
        run.run_order.append(inspect_run)
        if run.eval_set_id is None:
            run.end_ns = r.end_ns
            run.end_status = str(status)
            run.end_message = r.status_message
        return []

    def _eval_set_end(self, run: _Run, r: SpanRecord) -> list[Write]:
        self._note_run(run, r)
        run.end_ns = r.end_ns
        # an eval set's outcome is that of each task's latest attempt (see _finish), not of the
        # Inspect runs: a retried task leaves an earlier run marked failed
        run.end_status = "incomplete" if r.status == "ERROR" else "success"
        run.end_message = r.status_message
        return []

    def _finish(self, run: _Run, force: bool = False) -> list[Write]:
        if not force and any(p.open_evals for p in run.pairs.values()):
            return []  # a task span of this run has not arrived yet: wait (flush finishes it)
        run.finished = True
        status = run.end_status or "incomplete"
        latest = {p.status for p in run.pairs.values()}
        if status == "success" and "cancelled" in latest:
            status = "cancelled"
        elif status == "success" and latest - {None, "success"}:
            status = "error"
        exit_code = {
            "success": EXIT_OK,
            "cancelled": EXIT_CANCELLED,
            "incomplete": EXIT_INCOMPLETE,
        }.get(status, EXIT_ERROR)
        summary: dict[str, Any] = {}
        for pair in run.pairs.values():
            summary.update(pair.summary)
            if pair.open_evals:
                summary[f"{pair.label}/status"] = "incomplete"
        summary.update(self._run_summary(run))
        summary["status"] = status
        if run.end_message and status != "success":
            summary["status_reason"] = run.end_message
        end = run.end_ns or max([run.start_ns or 0, run.last_step * 1000])
        if run.start_ns:
            summary["duration_s"] = round(max(0, end - run.start_ns) / 1e9, 3)
        summary["table/rows_logged"] = len(run.rows)
        summary["table/rows_dropped"] = run.dropped_rows
        out: list[Write] = [*self._identity(run)]
        if run.rows and self.options.table_max_rows > 0:
            scorers = sorted({k for row in run.rows.values() for k in row if k.startswith("score/")})
            columns = (*_FIXED_COLUMNS, *scorers, *_TAIL_COLUMNS)
            # sorted by task × model, sample, epoch: the same table whatever order spans arrived in
            rows = tuple(tuple(row.get(col) for col in columns) for _, row in sorted(run.rows.items()))
            out.append(LogTable(run.key, TABLE_KEY, columns, rows, self._step(run, end)))
        out.append(UpdateSummary(run.key, summary))
        logs = tuple(run.logs) if self.options.log_artifact else ()
        if logs or self.options.files:
            out.append(LogFiles(run.key, logs, self.options.files))
        out.append(FinishRun(run.key, exit_code, status))
        return out
