"""The W&B Models writes: what the sink must do, in order (``run`` is the W&B run id).

Frozen values, so the translation stays testable without wandb: ``assembler`` makes them, the
sink (``otel_bridge.sinks.wandb``) applies them with the public wandb API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1  # a task errored
EXIT_INCOMPLETE = 2  # the process stopped before the run's end was recorded
EXIT_CANCELLED = 130  # cancelled / Ctrl-C (the shell's code for SIGINT)
JOB_TYPE = "eval"
TABLE_KEY = "samples"


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
    copies: Mapping[str, str] = field(default_factory=dict)  # log location → the eval's redacted copy


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
