"""The bridge's spans → Weave writes, one pure function per write (no I/O, no weave import).

One Inspect task × model (``inspect.eval_id``) becomes one ``Evaluation.evaluate`` call; each
final sample attempt becomes one ``Evaluation.predict_and_score`` row whose children are a
``Model.predict`` call (holding the solver / model / tool trace, see ``calls``) and one call
per scorer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.common import as_dict, decode_json, drop_none, run_key
from otel_bridge.translate.weave import ops
from otel_bridge.translate.weave.calls import build_call, read_attr, span_tree

EVAL_META = {"imperative": True}
"""``_weave_eval_meta`` of every eval call: Weave renders our calls like EvaluationLogger's."""


def start_evaluation(span: SpanRecord, wandb_project: str | None = None) -> ops.StartEvaluation:
    """``inspect.task.started`` (or ``inspect.task``) → the evaluation's start."""
    a = span.attributes
    eval_id = str(a.get(c.EVAL_ID, ""))
    task = str(a.get(c.TASK_NAME) or "task")
    model = str(a.get(c.MODEL) or "none/none")
    scorers = tuple(str(s) for s in (decode_json(a.get(c.TASK_SCORERS)) or ()))
    generate_config = as_dict(decode_json(a.get(c.GENERATE_CONFIG)))
    model_spec = ops.ModelSpec(
        name=ops.object_name(model),
        model=model,
        generate_config=generate_config,
        model_args=as_dict(decode_json(a.get(c.MODEL_ARGS))),
        base_url=a.get(c.MODEL_BASE_URL),
        roles=as_dict(decode_json(a.get(c.MODEL_ROLES))),
    )
    dataset = ops.DatasetSpec(
        # Weave object names are shared by all types: suffixes keep task, dataset, model apart
        name=ops.object_name(f"{a.get(c.DATASET_NAME) or task}-dataset"),
        location=a.get(c.DATASET_LOCATION),
        samples=a.get(c.DATASET_SAMPLES),
    )
    inspect_attrs: dict[str, Any] = {
        "run_id": a.get(c.RUN_ID),
        "eval_set_id": a.get(c.EVAL_SET_ID),
        "eval_id": eval_id,
        "task_id": a.get(c.TASK_ID),
        "task": task,
        "task_version": a.get(c.TASK_VERSION),
        "task_file": a.get(c.TASK_FILE),
        "task_args": decode_json(a.get(c.TASK_ARGS)),
        "model": model,
        "model_args": model_spec.model_args,
        "generate_config": generate_config,
        "eval_config": decode_json(a.get(c.EVAL_CONFIG)),
        "epochs": a.get(c.TASK_EPOCHS),
        "tags": a.get(c.TASK_TAGS),
        "git": {"origin": a.get(c.GIT_ORIGIN), "commit": a.get(c.GIT_COMMIT), "dirty": a.get(c.GIT_DIRTY)},
        "inspect_version": a.get(c.INSPECT_VERSION),
        "bridge_version": a.get(c.BRIDGE_VERSION),
        "key": eval_id,
    }
    return ops.StartEvaluation(
        eval_id=eval_id,
        key=eval_id,
        display_name=str(a.get(c.WANDB_DISPLAY_NAME) or f"{task} · {model}"),
        task=task,
        model=model_spec,
        dataset=dataset,
        scorers=scorers,
        evaluation_metadata={
            "task": task,
            "task_version": a.get(c.TASK_VERSION),
            "task_args": decode_json(a.get(c.TASK_ARGS)),
            "epochs": a.get(c.TASK_EPOCHS),
            "scorers": list(scorers),
        },
        attributes={
            "_weave_eval_meta": EVAL_META,
            "inspect": drop_none(inspect_attrs),
            **_wandb_link(span, wandb_project),
        },
        start_ns=span.start_ns,
    )


def _wandb_link(span: SpanRecord, wandb_project: str | None) -> dict[str, Any]:
    """The W&B Models run holding the same eval, when that exporter runs too."""
    if not wandb_project:
        return {}
    run_id = run_key(span)
    return {"wandb": {"run_id": run_id, "run_path": f"{wandb_project}/{run_id}"}} if run_id else {}


def start_from_sample(sample: SpanRecord) -> ops.StartEvaluation:
    """A minimal start when the task's own spans never arrived (a damaged or cut span file)."""
    return start_evaluation(sample)


def _usage(value: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for model, u in as_dict(value).items():
        if isinstance(u, Mapping):
            out[str(model)] = {k: int(v) for k, v in u.items() if isinstance(v, (int, float))}
    return out


@dataclass
class EvalStats:
    """Running totals per evaluation (bounded: numbers only)."""

    latency_partials: list[float] = field(default_factory=list)  # an exact sum: order-independent
    latency_count: int = 0
    #: per response model, as weave rolls chat calls up: requests and token counts
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    last_end_ns: int = 0

    def add_latency(self, value: float) -> None:
        """Add to the exact running sum (Shewchuk's partials, as ``math.fsum`` keeps): a few floats
        however many samples, and the same mean in any arrival order."""
        partials, i = self.latency_partials, 0
        for y in partials:
            if abs(value) < abs(y):
                value, y = y, value
            hi = value + y
            lo = y - (hi - value)
            if lo:
                partials[i] = lo
                i += 1
            value = hi
        partials[i:] = [value]
        self.latency_count += 1


def finish_evaluation(span: SpanRecord, stats: EvalStats | None = None) -> ops.FinishEvaluation:
    """``inspect.task`` (ended) → the evaluation's summary and status, Inspect's own numbers."""
    a = span.attributes
    stats = stats or EvalStats()
    metrics = as_dict(decode_json(a.get(c.TASK_METRICS)))
    status = str(a.get(c.TASK_STATUS) or ("failed" if span.status == "ERROR" else "success"))
    error = a.get(c.TASK_ERROR) or (span.status_message if span.status == "ERROR" else None)
    output: dict[str, Any] = {str(k): dict(v) if isinstance(v, Mapping) else v for k, v in metrics.items()}
    if stats.latency_count:
        output["model_latency"] = {"mean": math.fsum(stats.latency_partials) / stats.latency_count}
    inspect_summary = drop_none(
        {
            "status": status,
            "error": error,
            "samples_total": a.get(c.SAMPLES_TOTAL),
            "samples_completed": a.get(c.SAMPLES_COMPLETED),
            "samples_errored": a.get(c.SAMPLES_ERRORED),
            "duration_s": round((span.end_ns - span.start_ns) / 1e9, 3) if span.end_ns else None,
            "usage": _usage(decode_json(a.get(c.TASK_USAGE))),
            "log_location": a.get(c.LOG_LOCATION),
        }
    )
    return ops.FinishEvaluation(
        eval_id=str(a.get(c.EVAL_ID, "")),
        key=str(a.get(c.EVAL_ID, "")),
        output=output,
        usage={m: dict(u) for m, u in stats.usage.items()},
        summary={"inspect": inspect_summary},
        status="success" if status == "success" else "failed",
        error=None if status == "success" else str(error or status),
        end_ns=span.end_ns,
    )


def incomplete_finish(eval_id: str, reason: str, end_ns: int) -> ops.FinishEvaluation:
    return ops.FinishEvaluation(
        eval_id=eval_id,
        key=eval_id,
        output={},
        usage={},
        summary={"inspect": {"status": "incomplete", "error": reason}},
        status="failed",
        error=reason,
        end_ns=end_ns,
    )


def example_row(sample: SpanRecord, content: bool) -> dict[str, Any]:
    """The dataset row: identical for every model and epoch of one Inspect sample."""
    row: dict[str, Any] = {"id": str(sample.attributes.get(c.SAMPLE_ID))}
    for name, key in (
        ("input", c.SAMPLE_INPUT),
        ("target", c.SAMPLE_TARGET),
        ("metadata", c.SAMPLE_METADATA),
    ):
        value = read_attr(sample, key, content)
        if value is not None:
            row[name] = value
    return row


def score_value(item: Mapping[str, Any]) -> Any:
    """Inspect's score → Weave's: numeric where meaningful, per key for dict scores, else raw."""
    numeric = item.get("numeric")
    value = item.get("value")
    if isinstance(value, Mapping):
        nums = as_dict(numeric)
        return {k: (nums.get(k) if nums.get(k) is not None else v) for k, v in value.items()}
    return numeric if numeric is not None else value


def log_prediction(
    sample: SpanRecord, descendants: Sequence[SpanRecord], *, traces: bool = True, content: bool = True
) -> ops.LogPrediction:
    """A sample trace (root ``inspect.sample`` + its descendants) → one prediction row."""
    a = sample.attributes
    eval_id = str(a.get(c.EVAL_ID, ""))
    sample_id = str(a.get(c.SAMPLE_ID))
    epoch = int(a.get(c.SAMPLE_EPOCH) or 1)
    key = ops.prediction_key(eval_id, sample_id, epoch)
    by_parent = span_tree(sample, descendants)
    predict_children: list[ops.CallSpec] = []
    scorer_spans: dict[str, SpanRecord] = {}
    scorer_extra: list[ops.CallSpec] = []
    predict_end = sample.start_ns
    for top in by_parent.get(sample.span_id, ()):
        if top.name == f"{c.SPAN_INSPECT_PREFIX}scorers":
            for s in by_parent.get(top.span_id, ()):
                name = str(s.attributes.get(c.SPAN_NAME) or "")
                if s.name == f"{c.SPAN_INSPECT_PREFIX}scorer" and name and name not in scorer_spans:
                    scorer_spans[name] = s
                else:
                    scorer_extra.append(build_call(s, by_parent, content))
            continue
        predict_children.append(build_call(top, by_parent, content))
        predict_end = max(predict_end, top.end_ns)
    predict_children.extend(scorer_extra)
    raw_scores = as_dict(decode_json(a.get(c.SAMPLE_SCORES)))
    scores: dict[str, Any] = {}
    scorer_calls: list[ops.ScorerCall] = []
    for name, item in raw_scores.items():
        item = as_dict(item)
        value = score_value(item)
        scores[name] = value
        details: dict[str, Any] = {"raw": item.get("value")}
        if content:
            for extra in ("answer", "explanation"):
                if item.get(extra) is not None:
                    details[extra] = item[extra]
        span = scorer_spans.get(name)
        kids: tuple[ops.CallSpec, ...] = ()
        if span is not None and traces:
            kids = tuple(build_call(k, by_parent, content) for k in by_parent.get(span.span_id, ()))
        scorer_calls.append(
            ops.ScorerCall(
                name=name,
                key=f"{key}/score/{name}",
                value=value,
                details=details,
                start_ns=span.start_ns if span is not None else sample.end_ns,
                end_ns=span.end_ns if span is not None else sample.end_ns,
                children=kids,
            )
        )
    error = None
    if sample.status == "ERROR" or a.get(c.SAMPLE_ERROR):
        error = str(a.get(c.SAMPLE_ERROR) or sample.status_message or "error")
    latency = a.get(c.SAMPLE_TOTAL_TIME)
    usage = _usage(decode_json(a.get(c.USAGE_BY_MODEL)))
    attributes = {
        "_weave_eval_meta": EVAL_META,
        "inspect": drop_none(
            {
                "eval_id": eval_id,
                "sample_id": sample_id,
                "epoch": epoch,
                "sample_uuid": a.get(c.SAMPLE_UUID),
                "attempt": a.get(c.SAMPLE_ATTEMPT),
                "trace_id": sample.trace_id,
                "key": key,
            }
        ),
    }
    return ops.LogPrediction(
        eval_id=eval_id,
        key=key,
        sample_id=sample_id,
        epoch=epoch,
        example=example_row(sample, content),
        output=read_attr(sample, c.SAMPLE_OUTPUT, content),
        scores=scores,
        model_latency=float(latency) if isinstance(latency, (int, float)) else None,
        attributes=attributes
        | {
            "inspect_sample": drop_none(
                {
                    "status": a.get(c.SAMPLE_STATUS),
                    "working_time": a.get(c.SAMPLE_WORKING_TIME),
                    "limit": a.get(c.SAMPLE_LIMIT),
                    "message_count": a.get(c.SAMPLE_MESSAGE_COUNT),
                    "usage": usage or None,
                }
            )
        },
        start_ns=sample.start_ns,
        end_ns=sample.end_ns,
        predict_end_ns=predict_end if predict_children else sample.end_ns,
        predict_children=tuple(predict_children) if traces else (),
        scorer_calls=tuple(scorer_calls),
        error=error,
    )
