"""Pure pieces of the W&B Models translation: span attributes → config, rows, summaries, names.

No state here: ``assembler`` keeps the numbers of each run and task × model and passes them in,
so every function gives the same answer for the same spans, whatever order they arrived in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.common import present_attrs
from otel_bridge.translate.wandb.ops import EXIT_CANCELLED, EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK

#: Proposed hook attribute on ``inspect.task`` / ``inspect.task.started``: JSON
#: ``{scorer: [metric name, ...]}``. When present, the running history follows exactly the
#: metrics Inspect will report; without it accuracy (categorical scores) or mean is used.
SCORER_METRICS_HINT = "inspect.task.scorer_metrics"

#: The only spans a W&B run is built from (the in-process sink ignores the rest on the hot path).
RELEVANT_SPANS = frozenset({c.SPAN_EVAL_SET, c.SPAN_RUN, c.SPAN_TASK, c.SPAN_TASK_STARTED, c.SPAN_SAMPLE})
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
_EXIT_CODES = {"success": EXIT_OK, "cancelled": EXIT_CANCELLED, "incomplete": EXIT_INCOMPLETE}

# (config key, span attribute) of a task × model's config: plain values, then JSON documents
_TASK_CONFIG = (
    ("task_id", c.TASK_ID),
    ("task_version", c.TASK_VERSION),
    ("task_file", c.TASK_FILE),
    ("solver", c.TASK_SOLVER),
    ("scorers", c.TASK_SCORERS),
    ("epochs", c.TASK_EPOCHS),
    ("tags", c.TASK_TAGS),
    ("model_base_url", c.MODEL_BASE_URL),
)
_TASK_CONFIG_JSON = (
    ("task_args", c.TASK_ARGS),
    ("model_args", c.MODEL_ARGS),
    ("generate_config", c.GENERATE_CONFIG),
    ("eval_config", c.EVAL_CONFIG),
    ("model_roles", c.MODEL_ROLES),
    ("metadata", c.TASK_METADATA),
)
_DATASET = (("name", c.DATASET_NAME), ("location", c.DATASET_LOCATION), ("samples", c.DATASET_SAMPLES))
_INSPECT_INFO = (
    ("version", c.INSPECT_VERSION),
    ("bridge_version", c.BRIDGE_VERSION),
    ("command_line", c.COMMAND_LINE),
)
_SAMPLE_COUNTS = (("samples_total", c.SAMPLES_TOTAL), ("samples_completed", c.SAMPLES_COMPLETED))


def weave_evaluations_url(project: str, base_url: str | None) -> str:
    """The Weave Evals page of ``entity/project`` on the W&B app whose API is ``base_url``."""
    base = (base_url or "https://api.wandb.ai").rstrip("/")
    app = base.replace("://api.", "://", 1)
    return f"{app}/{project}/weave/evaluations"


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


class _SafeFormat(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# --------------------------------------------------------------------------------------------
# Identity and config


def run_name(
    template: str | None,
    tasks: Iterable[str],
    models: Iterable[str],
    ids: Mapping[str, str],
    start_ns: int | None,
) -> tuple[str, str | None]:
    """The run's name from ``template`` (``ids``: run_id, eval_set_id, id), and what is wrong with it."""
    # sorted: concurrent tasks start in any order, the name should not
    task_list = ", ".join(sorted(tasks)) or "inspect"
    model_list = ", ".join(sorted(models))
    default = f"{task_list} · {model_list}" if model_list else task_list
    if not template:
        return default, None
    date = datetime.fromtimestamp((start_ns or 0) / 1e9, UTC)
    values = _SafeFormat(
        tasks=task_list,
        models=model_list,
        **ids,
        date=date.strftime("%Y-%m-%d"),
        time=date.strftime("%H:%M:%S"),
    )
    try:
        return template.format_map(values) or default, None
    except (ValueError, IndexError, AttributeError) as exc:
        return default, f"INSPECT_OTEL_WANDB_RUN_NAME={template!r} is not a valid template ({exc})"


def run_tags(
    tasks: Iterable[str], models: Iterable[str], datasets: Iterable[str], extra: Iterable[str]
) -> tuple[str, ...]:
    wanted = [
        *(f"task:{t}" for t in sorted(tasks)),
        *(f"model:{m}" for m in sorted(models)),
        *(f"dataset:{d}" for d in sorted(datasets)),
        *extra,
    ]
    return tuple(dict.fromkeys(t[:_TAG_MAX] for t in wanted if t))


def inspect_info(r: SpanRecord, run_ids: Sequence[str], eval_set_id: str | None) -> dict[str, Any]:
    """What the run config says under ``inspect``: versions, command line, Inspect run ids."""
    info = present_attrs(r, _INSPECT_INFO)
    info["run_ids"] = list(run_ids)
    if eval_set_id:
        info["eval_set_id"] = eval_set_id
        if r.attr(c.EVAL_SET_LOG_DIR):
            info["eval_set_log_dir"] = r.attr(c.EVAL_SET_LOG_DIR)
    return info


def task_config(r: SpanRecord, task: str, model: str) -> dict[str, Any]:
    """The run config of one task × model: what Inspect says about the task, model and dataset."""
    cfg: dict[str, Any] = {"task": task, "model": model}
    cfg.update(present_attrs(r, _TASK_CONFIG))
    cfg.update(present_attrs(r, _TASK_CONFIG_JSON, r.json_attr))
    dataset_cfg = present_attrs(r, _DATASET)
    if dataset_cfg:
        cfg["dataset"] = dataset_cfg
    return cfg


def shared_config(r: SpanRecord) -> dict[str, Any]:
    """The run config every task shares: the git state and the installed packages."""
    out: dict[str, Any] = {}
    if r.attr(c.GIT_COMMIT) is not None:
        out["git"] = {
            "origin": r.attr(c.GIT_ORIGIN),
            "commit": r.attr(c.GIT_COMMIT),
            "dirty": r.attr(c.GIT_DIRTY),
        }
    packages = r.json_attr(c.PACKAGES)
    if isinstance(packages, dict):
        out["packages"] = packages
    return out


def metric_hint(r: SpanRecord) -> dict[str, list[str]]:
    """``SCORER_METRICS_HINT``: the metrics Inspect will report, by scorer (empty when absent)."""
    out: dict[str, list[str]] = {}
    hint = r.json_attr(SCORER_METRICS_HINT)
    if isinstance(hint, dict):
        for scorer, names in hint.items():
            if isinstance(names, list):
                out[str(scorer)] = [str(n) for n in names]
    return out


# --------------------------------------------------------------------------------------------
# Samples


def sample_scores(raw_scores: Any) -> tuple[dict[str, float], dict[str, Any], set[str]]:
    """A sample's scores → numbers (``scorer/key`` for dict scores), raw values, categorical scorers."""
    numeric: dict[str, float] = {}
    values: dict[str, Any] = {}
    categorical: set[str] = set()
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
                    categorical.add(scorer)
    return numeric, values, categorical


def table_row(
    r: SpanRecord,
    task: str,
    model: str,
    sample: tuple[str, int],
    status: str,
    values: Mapping[str, Any],
    content: bool,
    cell_chars: int = 0,
) -> dict[str, Any]:
    """A sample's row of the samples table (no input, target or output when capture is off).

    Input, target and output are cut to ``cell_chars`` characters (0: whole), so the table,
    which holds up to ``table_max_rows`` rows until the run ends, stays small.
    """
    row: dict[str, Any] = {
        "task": task,
        "model": model,
        "sample_id": sample[0],
        "epoch": sample[1],
        "status": status,
        "input": _cell(r.attr(c.SAMPLE_INPUT), cell_chars) if content else None,
        "target": _cell(r.attr(c.SAMPLE_TARGET), cell_chars) if content else None,
        "output": _cell(r.attr(c.SAMPLE_OUTPUT), cell_chars) if content else None,
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
    return row


def _cell(value: Any, limit: int) -> Any:
    if limit and isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… [{len(value) - limit} more characters]"
    return value


def row_size(row: Mapping[str, Any]) -> int:
    """About how many bytes a table row holds (its strings' lengths; 16 for anything else)."""
    return sum(len(k) + (len(v) if isinstance(v, str) else 16) for k, v in row.items())


def samples_table(
    rows: Mapping[tuple[str, str, int], Mapping[str, Any]],
) -> tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]:
    """The samples table's columns and rows (one column per scorer between the fixed ones)."""
    scorers = sorted({k for row in rows.values() for k in row if k.startswith("score/")})
    columns = (*_FIXED_COLUMNS, *scorers, *_TAIL_COLUMNS)
    # sorted by task × model, sample, epoch: the same table whatever order spans arrived in
    return columns, tuple(tuple(row.get(col) for col in columns) for _, row in sorted(rows.items()))


# --------------------------------------------------------------------------------------------
# Task and run ends


def task_numbers(
    r: SpanRecord, label: str, status: str | None, samples: int, errors: int, tokens: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ended task's history row and summary: Inspect's own counts where it has them, else ours."""
    completed = r.attr(c.SAMPLES_COMPLETED)
    errored = r.attr(c.SAMPLES_ERRORED)
    row: dict[str, Any] = {
        f"{label}/samples": int(completed) if completed is not None else samples,
        f"{label}/errors": int(errored) if errored is not None else errors,
        f"{label}/tokens": int(r.attr(c.USAGE_TOTAL_TOKENS) or tokens),
    }
    summary: dict[str, Any] = {
        f"{label}/status": status,
        f"{label}/eval_id": str(r.attr(c.EVAL_ID) or ""),
        f"{label}/samples_errored": row[f"{label}/errors"],
        f"{label}/tokens": row[f"{label}/tokens"],
        f"{label}/duration_s": round(max(0, r.end_ns - r.start_ns) / 1e9, 3),
    }
    for key, value in present_attrs(r, _SAMPLE_COUNTS).items():
        summary[f"{label}/{key}"] = value
    if r.attr(c.TASK_ERROR) is not None:
        summary[f"{label}/error"] = r.attr(c.TASK_ERROR)
    if r.attr(c.LOG_LOCATION):
        summary[f"{label}/log_location"] = r.attr(c.LOG_LOCATION)
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
    return row, summary


def token_totals(usages: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Inspect's token usage by model, summed over task × model pairs: ``tokens/<model>/<kind>``."""
    tokens: dict[str, int] = {}
    for by_model in usages:
        for model, usage in by_model.items():
            if not isinstance(usage, dict):
                continue
            for kind, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    k = f"tokens/{model}/{kind}"
                    tokens[k] = tokens.get(k, 0) + value
    return tokens


def weave_links(project: str | None, base_url: str | None) -> dict[str, str]:
    """The run summary's pointers at the Weave evaluations (none without the Weave exporter)."""
    if not project:
        return {}
    return {"weave/project": project, "weave/evaluations_url": weave_evaluations_url(project, base_url)}


def run_outcome(end_status: str | None, latest: set[str | None]) -> tuple[str, int]:
    """A run's status and exit code: its end's, unless a task's latest attempt did not succeed."""
    status = end_status or "incomplete"
    if status == "success" and "cancelled" in latest:
        status = "cancelled"
    elif status == "success" and latest - {None, "success"}:
        status = "error"
    return status, _EXIT_CODES.get(status, EXIT_ERROR)
