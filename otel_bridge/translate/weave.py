"""The bridge's spans → the writes that make a Weave Evaluation (pure: no I/O, no weave import).

One Inspect task × model (``inspect.eval_id``) becomes one ``Evaluation.evaluate`` call; each
final sample attempt becomes one ``Evaluation.predict_and_score`` row whose children are a
``Model.predict`` call (holding the solver / model / tool trace) and one call per scorer.

Every write carries a deterministic ``key`` derived from Inspect's ids (eval id, sample id +
epoch, span id), so a sink can tell what it already wrote, in this process or on the server,
and a replay of the same spans writes nothing twice. ``WeaveTranslator`` only adds buffering:
spans arrive in any order and batch boundary, while a prediction needs its whole sample trace.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.wandb import run_key

EVAL_META = {"imperative": True}
"""``_weave_eval_meta`` of every eval call: Weave renders our calls like EvaluationLogger's."""

_SKIPPED_SAMPLE_STATUSES = frozenset({"retried", "cancelled"})  # not rows of Inspect's log


# --- write operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CallSpec:
    """One traced call under a prediction (a span of the sample's trace)."""

    key: str
    op: str
    display_name: str
    inputs: Mapping[str, Any]
    output: Any
    attributes: Mapping[str, Any]
    start_ns: int
    end_ns: int
    error: str | None = None
    children: tuple[CallSpec, ...] = ()

    def walk(self) -> Iterable[CallSpec]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class ModelSpec:
    """What becomes the Weave Model object (one per Inspect model + generate config)."""

    name: str  # object name (sanitised model name)
    model: str  # Inspect model name, e.g. openai/gpt-4o
    generate_config: Mapping[str, Any]
    model_args: Mapping[str, Any]
    base_url: str | None
    roles: Mapping[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    """The Weave Dataset: the same for every model of a task, so Compare pairs the rows."""

    name: str
    location: str | None
    samples: int | None


@dataclass(frozen=True)
class StartEvaluation:
    eval_id: str
    key: str
    display_name: str
    task: str
    model: ModelSpec
    dataset: DatasetSpec
    scorers: tuple[str, ...]
    evaluation_metadata: Mapping[str, Any]
    attributes: Mapping[str, Any]
    start_ns: int


@dataclass(frozen=True)
class ScorerCall:
    name: str
    key: str
    value: Any  # the score in predict_and_score.output.scores
    output: Mapping[str, Any]  # the scorer call's output: value plus Inspect's raw value, answer, ...
    start_ns: int
    end_ns: int
    children: tuple[CallSpec, ...] = ()


@dataclass(frozen=True)
class LogPrediction:
    eval_id: str
    key: str
    sample_id: str
    epoch: int
    example: Mapping[str, Any]
    output: Any
    scores: Mapping[str, Any]
    model_latency: float | None
    attributes: Mapping[str, Any]
    start_ns: int
    end_ns: int
    predict_end_ns: int
    predict_children: tuple[CallSpec, ...]
    scorer_calls: tuple[ScorerCall, ...]
    error: str | None = None

    def call_count(self) -> int:
        n = 2 + len(self.scorer_calls)
        n += sum(1 for child in self.predict_children for _ in child.walk())
        n += sum(1 for s in self.scorer_calls for child in s.children for _ in child.walk())
        return n


@dataclass(frozen=True)
class FinishEvaluation:
    eval_id: str
    key: str
    output: Mapping[str, Any]
    usage: Mapping[str, Mapping[str, int]]
    status: str  # "success" | "failed"
    error: str | None
    end_ns: int


Write = StartEvaluation | LogPrediction | FinishEvaluation


# --- keys -----------------------------------------------------------------------------------------


def prediction_key(eval_id: str, sample_id: str, epoch: int) -> str:
    """Stable across attempts, processes and replays: Inspect's (eval, sample, epoch)."""
    return f"{eval_id}/{sample_id}/{epoch}"


def object_name(text: str) -> str:
    """A Weave object name (letters, digits, ``-``, ``_``, ``.``) for a free-form name."""
    name = re.sub(r"([._-]{2,})+", "-", re.sub(r"[^\w._]+", "-", text)).strip("-_")
    return name[:128] or "unnamed"


# --- pure pieces ------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _attr(span: SpanRecord, key: str, content: bool, default: Any = None) -> Any:
    """An attribute, decoded; content attributes read as absent when capture is off."""
    if not content and key in c.CONTENT_ATTRIBUTES:
        return default
    value = span.attributes.get(key)
    return default if value is None else _json(value)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def start_evaluation(span: SpanRecord, wandb_project: str | None = None) -> StartEvaluation:
    """``inspect.task.started`` (or ``inspect.task``) → the evaluation's start."""
    a = span.attributes
    eval_id = str(a.get(c.EVAL_ID, ""))
    task = str(a.get(c.TASK_NAME) or "task")
    model = str(a.get(c.MODEL) or "none/none")
    scorers = tuple(str(s) for s in (_json(a.get(c.TASK_SCORERS)) or ()))
    generate_config = _mapping(_json(a.get(c.GENERATE_CONFIG)))
    model_spec = ModelSpec(
        name=object_name(model),
        model=model,
        generate_config=generate_config,
        model_args=_mapping(_json(a.get(c.MODEL_ARGS))),
        base_url=a.get(c.MODEL_BASE_URL),
        roles=_mapping(_json(a.get(c.MODEL_ROLES))),
    )
    dataset = DatasetSpec(
        # Weave object names are shared by all types: suffixes keep task, dataset, model apart
        name=object_name(f"{a.get(c.DATASET_NAME) or task}-dataset"),
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
        "task_args": _json(a.get(c.TASK_ARGS)),
        "model": model,
        "model_args": model_spec.model_args,
        "generate_config": generate_config,
        "eval_config": _json(a.get(c.EVAL_CONFIG)),
        "epochs": a.get(c.TASK_EPOCHS),
        "tags": a.get(c.TASK_TAGS),
        "git": {"origin": a.get(c.GIT_ORIGIN), "commit": a.get(c.GIT_COMMIT), "dirty": a.get(c.GIT_DIRTY)},
        "inspect_version": a.get(c.INSPECT_VERSION),
        "bridge_version": a.get(c.BRIDGE_VERSION),
        "key": eval_id,
    }
    return StartEvaluation(
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
            "task_args": _json(a.get(c.TASK_ARGS)),
            "epochs": a.get(c.TASK_EPOCHS),
            "scorers": list(scorers),
        },
        attributes={
            "_weave_eval_meta": EVAL_META,
            "inspect": _drop_none(inspect_attrs),
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


def start_from_sample(sample: SpanRecord) -> StartEvaluation:
    """A minimal start when the task's own spans never arrived (a damaged or cut span file)."""
    return start_evaluation(sample)


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, Mapping) else v) for k, v in d.items() if v is not None}


def _usage(value: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for model, u in _mapping(value).items():
        if isinstance(u, Mapping):
            out[str(model)] = {k: int(v) for k, v in u.items() if isinstance(v, (int, float))}
    return out


@dataclass
class EvalStats:
    """Running totals per evaluation (bounded: numbers only)."""

    latencies: list[float] = field(default_factory=list)  # summed with fsum: order-independent
    requests: dict[str, int] = field(default_factory=dict)
    last_end_ns: int = 0


def finish_evaluation(span: SpanRecord, stats: EvalStats | None = None) -> FinishEvaluation:
    """``inspect.task`` (ended) → the evaluation's summary and status, Inspect's own numbers."""
    a = span.attributes
    stats = stats or EvalStats()
    metrics = _mapping(_json(a.get(c.TASK_METRICS)))
    status = str(a.get(c.TASK_STATUS) or ("failed" if span.status == "ERROR" else "success"))
    error = a.get(c.TASK_ERROR) or (span.status_message if span.status == "ERROR" else None)
    usage = _usage(_json(a.get(c.TASK_USAGE)))
    for model, count in stats.requests.items():
        usage.setdefault(model, {})["requests"] = count
    output: dict[str, Any] = {str(k): dict(v) if isinstance(v, Mapping) else v for k, v in metrics.items()}
    if stats.latencies:
        output["model_latency"] = {"mean": math.fsum(stats.latencies) / len(stats.latencies)}
    output["inspect"] = _drop_none(
        {
            "status": status,
            "error": error,
            "samples_total": a.get(c.SAMPLES_TOTAL),
            "samples_completed": a.get(c.SAMPLES_COMPLETED),
            "samples_errored": a.get(c.SAMPLES_ERRORED),
            "duration_s": round((span.end_ns - span.start_ns) / 1e9, 3) if span.end_ns else None,
            "usage": _usage(_json(a.get(c.TASK_USAGE))),
            "log_location": a.get(c.LOG_LOCATION),
        }
    )
    return FinishEvaluation(
        eval_id=str(a.get(c.EVAL_ID, "")),
        key=str(a.get(c.EVAL_ID, "")),
        output=output,
        usage=usage,
        status="success" if status == "success" else "failed",
        error=None if status == "success" else str(error or status),
        end_ns=span.end_ns,
    )


def incomplete_finish(eval_id: str, reason: str, end_ns: int) -> FinishEvaluation:
    return FinishEvaluation(
        eval_id=eval_id,
        key=eval_id,
        output={"inspect": {"status": "incomplete", "error": reason}},
        usage={},
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
        value = _attr(sample, key, content)
        if value is not None:
            row[name] = value
    return row


def score_value(item: Mapping[str, Any]) -> Any:
    """Inspect's score → Weave's: numeric where meaningful, per key for dict scores, else raw."""
    numeric = item.get("numeric")
    value = item.get("value")
    if isinstance(value, Mapping):
        nums = _mapping(numeric)
        return {k: (nums.get(k) if nums.get(k) is not None else v) for k, v in value.items()}
    return numeric if numeric is not None else value


def _messages(value: Any) -> list[dict[str, Any]]:
    """GenAI semconv messages (parts) → OpenAI-style chat messages Weave's chat view reads."""
    out: list[dict[str, Any]] = []
    if not isinstance(value, list):
        return out
    for m in value:
        if not isinstance(m, Mapping):
            continue
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for part in m.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text" or kind == "reasoning":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                tool_calls.append(
                    {
                        "id": part.get("id"),
                        "type": "function",
                        "function": {
                            "name": part.get("name"),
                            "arguments": json.dumps(part.get("arguments")),
                        },
                    }
                )
            elif kind == "tool_call_response":
                texts.append(str(part.get("response", part.get("result", ""))))
            else:
                texts.append(json.dumps(part))
        msg: dict[str, Any] = {"role": m.get("role", "user"), "content": "\n".join(texts)}
        if tool_calls:
            msg["tool_calls"] = tool_calls
        if m.get("finish_reason"):
            msg["finish_reason"] = m.get("finish_reason")
        out.append(msg)
    return out


_USAGE_KEYS = (
    ("input_tokens", c.GEN_AI_USAGE_INPUT_TOKENS),
    ("output_tokens", c.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cache_read_input_tokens", c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_write_input_tokens", c.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
    ("reasoning_tokens", c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
)

_REQUEST_KEYS = (
    ("temperature", c.GEN_AI_REQUEST_TEMPERATURE),
    ("max_tokens", c.GEN_AI_REQUEST_MAX_TOKENS),
    ("top_p", c.GEN_AI_REQUEST_TOP_P),
    ("top_k", c.GEN_AI_REQUEST_TOP_K),
    ("stop", c.GEN_AI_REQUEST_STOP_SEQUENCES),
    ("frequency_penalty", c.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", c.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", c.GEN_AI_REQUEST_SEED),
    ("reasoning_effort", c.GEN_AI_REQUEST_REASONING_LEVEL),
)


def chat_model(span: SpanRecord) -> str:
    a = span.attributes
    return str(a.get(c.GEN_AI_RESPONSE_MODEL) or a.get(c.GEN_AI_REQUEST_MODEL) or "unknown")


def _chat_io(span: SpanRecord, content: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    a = span.attributes
    inputs: dict[str, Any] = {"model": a.get(c.GEN_AI_REQUEST_MODEL)}
    for name, key in _REQUEST_KEYS:
        if a.get(key) is not None:
            inputs[name] = a.get(key)
    if content:
        system = _attr(span, c.GEN_AI_SYSTEM_INSTRUCTIONS, True)
        messages = _messages(_attr(span, c.GEN_AI_INPUT_MESSAGES, True))
        if isinstance(system, list):
            text = "\n".join(str(p.get("content", "")) for p in system if isinstance(p, Mapping))
            messages.insert(0, {"role": "system", "content": text})
        inputs["messages"] = messages
        tools = _attr(span, c.GEN_AI_TOOL_DEFINITIONS, True)
        if tools is not None:
            inputs["tools"] = tools
    usage = {name: int(a[key]) for name, key in _USAGE_KEYS if isinstance(a.get(key), (int, float))}
    if "input_tokens" in usage or "output_tokens" in usage:
        usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    reasons = a.get(c.GEN_AI_RESPONSE_FINISH_REASONS) or []
    choices: list[dict[str, Any]] = []
    if content:
        for i, msg in enumerate(_messages(_attr(span, c.GEN_AI_OUTPUT_MESSAGES, True))):
            reason = msg.pop("finish_reason", reasons[i] if i < len(reasons) else None)
            choices.append({"index": i, "message": msg, "finish_reason": reason})
    output: dict[str, Any] = {
        "id": a.get(c.GEN_AI_RESPONSE_ID),
        "model": chat_model(span),
        "choices": choices,
        "finish_reasons": list(reasons),
        "usage": usage,
    }
    return _drop_none(inputs), _drop_none(output)


def _op_name(span: SpanRecord) -> str:
    """Stable op names (variety goes to display names): ``chat``, ``execute_tool``, ``inspect.solver``."""
    return span.name.split(" ", 1)[0] or "span"


def call_spec(span: SpanRecord, children: tuple[CallSpec, ...], content: bool) -> CallSpec:
    """One span of a sample trace → one call, with Inspect's times and readable inputs/outputs."""
    a = span.attributes
    op = _op_name(span)
    inputs: dict[str, Any]
    output: Any
    if op == c.OP_CHAT:
        inputs, output = _chat_io(span, content)
    elif op == c.OP_EXECUTE_TOOL:
        inputs = {"name": a.get(c.GEN_AI_TOOL_NAME), "call_id": a.get(c.GEN_AI_TOOL_CALL_ID)}
        args = _attr(span, c.GEN_AI_TOOL_CALL_ARGUMENTS, content)
        if args is not None:
            inputs["arguments"] = args
        output = _attr(span, c.GEN_AI_TOOL_CALL_RESULT, content)
        if a.get(c.TOOL_ERROR) is not None:
            output = {"result": output, "error": a.get(c.TOOL_ERROR)}
    elif span.name == c.SPAN_SANDBOX:
        inputs = {"action": a.get(c.SANDBOX_ACTION), "file": a.get(c.SANDBOX_FILE)}
        cmd = _attr(span, c.SANDBOX_CMD, content)
        if cmd is not None:
            inputs["cmd"] = cmd
        output = a.get(c.SANDBOX_RESULT)
    else:
        inputs = {"name": a.get(c.SPAN_NAME), "type": a.get(c.SPAN_TYPE)}
        value = _attr(span, c.INPUT_VALUE, content)
        if value is not None:
            inputs["input"] = value
        output = _attr(span, c.OUTPUT_VALUE, content)
    attributes = {
        "inspect": _drop_none(
            {
                "span_id": span.span_id,
                "trace_id": span.trace_id,
                "span_name": span.name,
                "span_type": a.get(c.SPAN_TYPE),
                "model_role": a.get(c.MODEL_ROLE),
                "working_time": a.get(c.MODEL_WORKING_TIME),
                "retries": a.get(c.MODEL_RETRIES),
                "cache": a.get(c.MODEL_CACHE),
            }
        )
    }
    if a.get(c.GEN_AI_PROVIDER_NAME):
        attributes["gen_ai"] = {
            "provider": a.get(c.GEN_AI_PROVIDER_NAME),
            "operation": a.get(c.GEN_AI_OPERATION_NAME),
        }
    error = None
    if span.status == "ERROR":
        error = span.status_message or str(a.get(c.MODEL_ERROR) or a.get(c.TOOL_ERROR) or "error")
    return CallSpec(
        key=span.span_id,
        op=op,
        display_name=str(a.get(c.WANDB_DISPLAY_NAME) or span.name),
        inputs=_drop_none(inputs),
        output=output,
        attributes=attributes,
        start_ns=span.start_ns,
        end_ns=span.end_ns or span.start_ns,
        error=error,
        children=children,
    )


def _tree(root: SpanRecord, spans: Sequence[SpanRecord]) -> dict[str, list[SpanRecord]]:
    by_parent: dict[str, list[SpanRecord]] = {}
    for s in spans:
        if s.span_id != root.span_id:
            by_parent.setdefault(s.parent_id or root.span_id, []).append(s)
    for kids in by_parent.values():
        kids.sort(key=lambda s: (s.start_ns, s.span_id))
    return by_parent


def _build(span: SpanRecord, by_parent: Mapping[str, list[SpanRecord]], content: bool) -> CallSpec:
    kids = tuple(_build(k, by_parent, content) for k in by_parent.get(span.span_id, ()))
    return call_spec(span, kids, content)


def log_prediction(
    sample: SpanRecord, descendants: Sequence[SpanRecord], *, traces: bool = True, content: bool = True
) -> LogPrediction:
    """A sample trace (root ``inspect.sample`` + its descendants) → one prediction row."""
    a = sample.attributes
    eval_id = str(a.get(c.EVAL_ID, ""))
    sample_id = str(a.get(c.SAMPLE_ID))
    epoch = int(a.get(c.SAMPLE_EPOCH) or 1)
    key = prediction_key(eval_id, sample_id, epoch)
    by_parent = _tree(sample, descendants)
    predict_children: list[CallSpec] = []
    scorer_spans: dict[str, SpanRecord] = {}
    scorer_extra: list[CallSpec] = []
    predict_end = sample.start_ns
    for top in by_parent.get(sample.span_id, ()):
        if top.name == f"{c.SPAN_INSPECT_PREFIX}scorers":
            for s in by_parent.get(top.span_id, ()):
                name = str(s.attributes.get(c.SPAN_NAME) or "")
                if s.name == f"{c.SPAN_INSPECT_PREFIX}scorer" and name and name not in scorer_spans:
                    scorer_spans[name] = s
                else:
                    scorer_extra.append(_build(s, by_parent, content))
            continue
        predict_children.append(_build(top, by_parent, content))
        predict_end = max(predict_end, top.end_ns)
    predict_children.extend(scorer_extra)
    raw_scores = _mapping(_json(a.get(c.SAMPLE_SCORES)))
    scores: dict[str, Any] = {}
    scorer_calls: list[ScorerCall] = []
    for name, item in raw_scores.items():
        item = _mapping(item)
        value = score_value(item)
        scores[name] = value
        details: dict[str, Any] = {"value": value, "raw": item.get("value")}
        if content:
            for extra in ("answer", "explanation"):
                if item.get(extra) is not None:
                    details[extra] = item[extra]
        span = scorer_spans.get(name)
        kids: tuple[CallSpec, ...] = ()
        if span is not None and traces:
            kids = tuple(_build(k, by_parent, content) for k in by_parent.get(span.span_id, ()))
        scorer_calls.append(
            ScorerCall(
                name=name,
                key=f"{key}/score/{name}",
                value=value,
                output=details,
                start_ns=span.start_ns if span is not None else sample.end_ns,
                end_ns=span.end_ns if span is not None else sample.end_ns,
                children=kids,
            )
        )
    error = None
    if sample.status == "ERROR" or a.get(c.SAMPLE_ERROR):
        error = str(a.get(c.SAMPLE_ERROR) or sample.status_message or "error")
    latency = a.get(c.SAMPLE_TOTAL_TIME)
    usage = _usage(_json(a.get(c.USAGE_BY_MODEL)))
    attributes = {
        "_weave_eval_meta": EVAL_META,
        "inspect": _drop_none(
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
    return LogPrediction(
        eval_id=eval_id,
        key=key,
        sample_id=sample_id,
        epoch=epoch,
        example=example_row(sample, content),
        output=_attr(sample, c.SAMPLE_OUTPUT, content),
        scores=scores,
        model_latency=float(latency) if isinstance(latency, (int, float)) else None,
        attributes=attributes
        | {
            "inspect_sample": _drop_none(
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


# --- the stateful assembler (still no I/O) ------------------------------------------------------


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

    Memory: spans are held only for sample traces whose root span has not ended yet, plus one
    key per written prediction (to ignore a span seen twice).
    """

    def __init__(
        self, *, traces: bool = True, content: bool = True, wandb_project: str | None = None
    ) -> None:
        self.traces = traces
        self.content = content
        self.wandb_project = wandb_project
        self._evals: dict[str, _Eval] = {}
        self._buffers: dict[str, dict[str, SpanRecord]] = {}
        self._done_traces: set[str] = set()
        self._predicted: set[str] = set()
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
        if span.name in (c.SPAN_TASK_STARTED, c.SPAN_TASK) and eval_id:
            self._task(span, str(eval_id), out)
        elif span.name == c.SPAN_SAMPLE and eval_id:
            self._sample(span, str(eval_id), out)
        elif span.attributes.get(c.SAMPLE_UUID) is not None and span.trace_id not in self._done_traces:
            self._buffers.setdefault(span.trace_id, {})[span.span_id] = span  # a replay overwrites
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
            model = chat_model(chat)
            ev.stats.requests[model] = ev.stats.requests.get(model, 0) + 1
        if pred.model_latency is not None:
            ev.stats.latencies.append(pred.model_latency)
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
            start_ns = ev.start.start_ns if ev.start else 0
            out.append(incomplete_finish(eval_id, reason, max(ev.stats.last_end_ns, start_ns)))
        self._buffers.clear()
        return out
