"""The writes a Weave evaluation is made of, and the keys that make writing them idempotent.

Frozen values: the translation (``mapping``, ``calls``) makes them, the sink applies them. Every
write carries a deterministic ``key`` derived from Inspect's ids (eval id, sample id + epoch,
span id), so a sink can tell what it already wrote, in this process or on the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
    """One scorer's call, as EvaluationLogger writes it: op named after the scorer, output = score."""

    name: str
    key: str
    value: Any  # the score: the call's output and predict_and_score.output.scores[name]
    details: Mapping[str, Any]  # Inspect's raw value, answer, explanation: call attributes, not columns
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
    """The end of an evaluation: ``output`` holds only the metric columns (Inspect's metrics per
    scorer, ``model_latency``); Inspect's counters and usage go to the call's summary."""

    eval_id: str
    key: str
    output: Mapping[str, Any]
    usage: Mapping[str, Mapping[str, int]]  # by response model, from the chat spans (weave's rollup)
    summary: Mapping[str, Any]  # summary.inspect: status, sample counts, duration, usage, log
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
