"""Attribute dictionaries built from Inspect's objects (pure functions, no OTel calls)."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from inspect_ai.hooks import EvalSetStart, RunStart, SampleAttemptStart, TaskStart
from inspect_ai.log import EvalLog, EvalSample, EvalSpec
from inspect_ai.model import GenerateConfig, ModelUsage
from inspect_ai.scorer import Score

from otel_bridge import conventions as c
from otel_bridge.hook.content import dumps, to_jsonable
from otel_bridge.redact import Redactor
from otel_bridge.translate.common import wandb_run_id

AttrValue = str | bool | int | float | list[str]
Attrs = dict[str, AttrValue]

PROVIDERS = {
    "anthropic": "anthropic",
    "openai": "openai",
    "openai-api": "openai",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "grok": "x_ai",
    "azureai": "azure.ai.inference",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
}

# Inspect's categorical score values and what they count for
CATEGORICAL = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
CATEGORY_LABELS = {"C": "correct", "I": "incorrect", "P": "partial", "N": "noanswer"}


def split_model(model: str) -> tuple[str, str]:
    """'openai/gpt-4o' → ('openai', 'gpt-4o')."""
    provider, _, name = model.partition("/")
    if not name:
        return "unknown", provider
    return PROVIDERS.get(provider, provider), name


def ns(ts: Any) -> int:
    """A datetime (or epoch seconds) → epoch nanoseconds."""
    seconds = ts if isinstance(ts, (int, float)) else ts.timestamp()
    return int(seconds * 1_000_000_000)


def usage_attrs(usage: ModelUsage | None) -> Attrs:
    if usage is None:
        return {}
    out: Attrs = {
        c.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        c.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
    }
    if usage.input_tokens_cache_read is not None:
        out[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.input_tokens_cache_read
    if usage.input_tokens_cache_write is not None:
        out[c.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.input_tokens_cache_write
    if usage.reasoning_tokens is not None:
        out[c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    return out


def total_usage(by_model: Mapping[str, ModelUsage]) -> Attrs:
    """Sum of every model's usage, under inspect.usage.*, plus the per-model JSON."""
    if not by_model:
        return {}
    totals = {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cache_read": 0,
        "cache_write": 0,
        "reasoning": 0,
    }
    for u in by_model.values():
        totals["input_tokens"] += u.input_tokens
        totals["output_tokens"] += u.output_tokens
        totals["total_tokens"] += u.total_tokens
        totals["cache_read"] += u.input_tokens_cache_read or 0
        totals["cache_write"] += u.input_tokens_cache_write or 0
        totals["reasoning"] += u.reasoning_tokens or 0
    return {
        c.USAGE_INPUT_TOKENS: totals["input_tokens"],
        c.USAGE_OUTPUT_TOKENS: totals["output_tokens"],
        c.USAGE_TOTAL_TOKENS: totals["total_tokens"],
        c.USAGE_CACHE_READ_TOKENS: totals["cache_read"],
        c.USAGE_CACHE_WRITE_TOKENS: totals["cache_write"],
        c.USAGE_REASONING_TOKENS: totals["reasoning"],
        c.USAGE_BY_MODEL: dumps({m: to_jsonable(u) for m, u in by_model.items()}),
    }


def request_attrs(config: GenerateConfig) -> Attrs:
    out: Attrs = {}
    pairs: list[tuple[str, Any]] = [
        (c.GEN_AI_REQUEST_TEMPERATURE, config.temperature),
        (c.GEN_AI_REQUEST_MAX_TOKENS, config.max_tokens),
        (c.GEN_AI_REQUEST_TOP_P, config.top_p),
        (c.GEN_AI_REQUEST_TOP_K, config.top_k),
        (c.GEN_AI_REQUEST_FREQUENCY_PENALTY, config.frequency_penalty),
        (c.GEN_AI_REQUEST_PRESENCE_PENALTY, config.presence_penalty),
        (c.GEN_AI_REQUEST_SEED, config.seed),
        (c.GEN_AI_REQUEST_REASONING_LEVEL, config.reasoning_effort),
    ]
    for key, value in pairs:
        if value is not None:
            out[key] = value
    if config.stop_seqs:
        out[c.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(s) for s in config.stop_seqs]
    return out


def numeric(value: Any) -> float | None:
    """Inspect score value → number where one is meaningful (C/I/P/N, bool, number)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value in CATEGORICAL:
            return CATEGORICAL[value]
        try:
            return float(value)
        except ValueError:
            return None
    return None


def label(value: Any) -> str | None:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, str) and value in CATEGORY_LABELS:
        return CATEGORY_LABELS[value]
    return None


def score_json(score: Score, capture_content: bool) -> dict[str, Any]:
    value = to_jsonable(score.value)
    item: dict[str, Any] = {"value": value}
    if isinstance(value, dict):
        item["numeric"] = {k: numeric(v) for k, v in value.items()}
    else:
        item["numeric"] = numeric(value)
    if capture_content:
        if score.answer is not None:
            item["answer"] = score.answer
        if score.explanation is not None:
            item["explanation"] = score.explanation
    return item


def evaluation_events(name: str, score: Score, capture_content: bool, redactor: Redactor) -> list[Attrs]:
    """One gen_ai.evaluation.result event per score (per key for dict-valued scores)."""
    values = score.value if isinstance(score.value, dict) else {None: score.value}
    events: list[Attrs] = []
    for key, value in values.items():
        attrs: Attrs = {
            c.GEN_AI_EVALUATION_NAME: name if key is None else f"{name}/{key}",
            c.SCORE_VALUE: dumps(to_jsonable(value)),
        }
        number = numeric(value)
        if number is not None:
            attrs[c.GEN_AI_EVALUATION_SCORE_VALUE] = number
        text = label(value)
        if text is not None:
            attrs[c.GEN_AI_EVALUATION_SCORE_LABEL] = text
        if capture_content and score.explanation:
            attrs[c.GEN_AI_EVALUATION_EXPLANATION] = redactor.text(score.explanation)
        if capture_content and score.answer:
            attrs[c.SCORE_ANSWER] = redactor.text(score.answer)
        events.append(attrs)
    return events


_SECRET_ARG = re.compile(r"((?:api[_-]?key|token|secret|password)[^=\s]*=)(\S+)", re.IGNORECASE)


def command_line(redactor: Redactor) -> str:
    """The CLI command line (Inspect records none), with secret-looking values removed."""
    text = " ".join(sys.argv)
    return redactor.text(_SECRET_ARG.sub(r"\1[REDACTED:secret_key]", text))


def eval_set_attrs(data: EvalSetStart, versions: Attrs) -> Attrs:
    return {
        c.EVAL_SET_ID: data.eval_set_id,
        c.EVAL_SET_LOG_DIR: data.log_dir,
        c.WANDB_DISPLAY_NAME: f"eval set {data.eval_set_id}",
        **versions,
    }


def run_attrs(data: RunStart, redactor: Redactor, versions: Attrs) -> Attrs:
    attrs: Attrs = {
        c.RUN_ID: data.run_id,
        c.RUN_TASK_NAMES: list(data.task_names),
        c.COMMAND_LINE: command_line(redactor),
        c.WANDB_DISPLAY_NAME: f"run {', '.join(data.task_names)}",
        **versions,
    }
    if data.eval_set_id:
        attrs[c.EVAL_SET_ID] = data.eval_set_id
    return attrs


def task_base(data: TaskStart, link_wandb_run: bool = False) -> Attrs:
    """The task's identity, carried by every span under it; with ``link_wandb_run`` also the
    W&B Models run that will hold the eval (Weave's OTLP mapping links each call to it)."""
    base: Attrs = {
        c.RUN_ID: data.run_id,
        c.EVAL_ID: data.eval_id,
        c.TASK_ID: data.spec.task_id,
        c.TASK_NAME: data.spec.task,
        c.MODEL: data.spec.model,
    }
    if data.eval_set_id:
        base[c.EVAL_SET_ID] = data.eval_set_id
    run = wandb_run_id(data.eval_set_id, data.run_id) if link_wandb_run else None
    if run:
        base[c.WANDB_WB_RUN_ID] = run
    return base


def sample_base(task_base: Attrs, data: SampleAttemptStart) -> Attrs:
    """The sample attempt's identity (its root span's; child spans drop the conversation id)."""
    return {
        **task_base,
        c.SAMPLE_ID: str(data.summary.id),
        c.SAMPLE_EPOCH: data.summary.epoch,
        c.SAMPLE_UUID: data.sample_id,
        c.SAMPLE_ATTEMPT: data.attempt,
        c.GEN_AI_CONVERSATION_ID: data.sample_id,
    }


def task_start_attrs(spec: EvalSpec, redactor: Redactor) -> Attrs:
    config = to_jsonable(spec.config)
    attrs: Attrs = {
        c.TASK_VERSION: str(spec.task_version),
        c.TASK_ARGS: dumps(redactor.structure(to_jsonable(spec.task_args))),
        c.MODEL_ARGS: dumps(redactor.structure(to_jsonable(spec.model_args))),
        c.GENERATE_CONFIG: dumps(redactor.structure(to_jsonable(spec.model_generate_config))),
        c.EVAL_CONFIG: dumps(redactor.structure(config)),
        c.PACKAGES: dumps(spec.packages),
        c.COMMAND_LINE: command_line(redactor),
    }
    if spec.config.epochs is not None:
        attrs[c.TASK_EPOCHS] = spec.config.epochs
    if spec.task_file:
        attrs[c.TASK_FILE] = spec.task_file
    if spec.tags:
        attrs[c.TASK_TAGS] = [str(t) for t in spec.tags]
    if spec.metadata:
        attrs[c.TASK_METADATA] = dumps(redactor.structure(to_jsonable(spec.metadata)))
    if spec.solver:
        attrs[c.TASK_SOLVER] = spec.solver
    if spec.scorers:
        attrs[c.TASK_SCORERS] = [s.name for s in spec.scorers]
        attrs[c.TASK_SCORER_METRICS] = dumps({s.name: _metric_names(s.metrics) for s in spec.scorers})
    if spec.model_base_url:
        attrs[c.MODEL_BASE_URL] = redactor.text(spec.model_base_url)
    if spec.model_roles:
        attrs[c.MODEL_ROLES] = dumps(redactor.structure(to_jsonable(spec.model_roles)))
    if spec.dataset.name:
        attrs[c.DATASET_NAME] = spec.dataset.name
    if spec.dataset.location:
        attrs[c.DATASET_LOCATION] = spec.dataset.location
    if spec.dataset.samples is not None:
        attrs[c.DATASET_SAMPLES] = spec.dataset.samples
    if spec.revision is not None:
        attrs[c.GIT_ORIGIN] = redactor.text(spec.revision.origin)
        attrs[c.GIT_COMMIT] = spec.revision.commit
        if spec.revision.dirty is not None:
            attrs[c.GIT_DIRTY] = spec.revision.dirty
    return attrs


def _metric_names(metrics: Any) -> list[str]:
    """Metric names as results will report them ('inspect_ai/accuracy' → 'accuracy')."""
    names: list[str] = []
    items = list(metrics.values()) if isinstance(metrics, dict) else list(metrics or [])
    for item in items:
        for definition in (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else [item]
        ):
            for d in definition if isinstance(definition, list) else [definition]:
                name = str(getattr(d, "name", d)).rsplit("/", 1)[-1]
                if name not in names:
                    names.append(name)
    return names


def task_metrics(log: EvalLog) -> dict[str, dict[str, float]]:
    """{scorer name: {metric name: value}} exactly as Inspect reports them."""
    out: dict[str, dict[str, float]] = {}
    if log.results is None:
        return out
    for score in log.results.scores:
        out.setdefault(score.name, {}).update({name: metric.value for name, metric in score.metrics.items()})
    return out


def task_end_attrs(log: EvalLog, errored: int) -> Attrs:
    attrs: Attrs = {c.TASK_STATUS: str(log.status), c.SAMPLES_ERRORED: errored}
    if log.results is not None:
        attrs[c.SAMPLES_TOTAL] = log.results.total_samples
        attrs[c.SAMPLES_COMPLETED] = log.results.completed_samples
    attrs[c.TASK_METRICS] = dumps(task_metrics(log))
    attrs[c.TASK_USAGE] = dumps({m: to_jsonable(u) for m, u in log.stats.model_usage.items()})
    attrs.update(total_usage(log.stats.model_usage))
    if log.location:
        attrs[c.LOG_LOCATION] = log.location
    if log.error is not None:
        attrs[c.TASK_ERROR] = log.error.message
    return attrs


def error_type(message: str, default: str) -> str:
    """'ValueError(\"x\")' → 'ValueError'."""
    match = re.match(r"^([A-Za-z_][\w.]*)(?:\(|:)", message.strip())
    return match.group(1) if match else default


def sample_end_attrs(sample: EvalSample, capture_content: bool, redactor: Redactor) -> Attrs:
    attrs: Attrs = {}
    if sample.total_time is not None:
        attrs[c.SAMPLE_TOTAL_TIME] = sample.total_time
    if sample.working_time is not None:
        attrs[c.SAMPLE_WORKING_TIME] = sample.working_time
    attrs[c.SAMPLE_MESSAGE_COUNT] = len(sample.messages)
    attrs.update(total_usage(sample.model_usage))
    if sample.scores:
        by_name = {n: score_json(s, capture_content) for n, s in sample.scores.items()}
        # made of redacted strings: the edge pass need not search it again
        attrs[c.SAMPLE_SCORES] = redactor.vouch(dumps(redactor.structure(by_name)))
    if sample.error is not None:
        attrs[c.SAMPLE_ERROR] = redactor.text(sample.error.message)
    if sample.limit is not None:
        attrs[c.SAMPLE_LIMIT] = str(sample.limit.type)
        if sample.limit.reason:
            attrs[c.SAMPLE_LIMIT_REASON] = sample.limit.reason
    return attrs
