"""The per-run state of the W&B translation: one ``Run`` per W&B run, one ``Pair`` per task × model.

Numbers only, bounded: a pair keeps running sums and a bounded window of recent samples
(``PairSamples``); the assembler drops a run's state when it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from otel_bridge.translate.wandb.running import PairSamples

RECENT_SAMPLES = 10_000  # per task × model: samples whose re-send replaces rather than adds


@dataclass
class Pair:
    """One task × model (keyed by Inspect's task_id, stable across eval-set retries)."""

    label: str
    task: str
    model: str
    counts: PairSamples = field(default_factory=lambda: PairSamples(RECENT_SAMPLES))
    categorical: set[str] = field(default_factory=set)
    metric_names: dict[str, list[str]] = field(default_factory=dict)
    open_evals: set[str] = field(default_factory=set)
    ended_evals: set[str] = field(default_factory=set)
    traced: dict[str, int] = field(default_factory=dict)  # eval_id → final sample traces seen
    expected: dict[str, int] = field(default_factory=dict)  # eval_id → what its task span says
    attempts: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # eval_id → start, status
    status: str | None = None  # of the latest attempt (by start time), not the last to end
    final: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Run:
    key: str
    eval_set_id: str | None
    started: bool = False
    finished: bool = False
    pairs: dict[str, Pair] = field(default_factory=dict)
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
    row_bytes: dict[tuple[str, str, int], int] = field(default_factory=dict)
    table_bytes: int = 0
    dropped_rows: int = 0
    logs: list[str] = field(default_factory=list)
    log_copies: dict[str, str] = field(default_factory=dict)  # log location → its redacted copy
    start_ns: int | None = None
    end_ns: int | None = None
    end_status: str | None = None  # set when the run / eval-set span has ended
    end_message: str = ""
    expected_evals: set[str] = field(default_factory=set)  # every task × model its run spans name


def samples_missing(pair: Pair) -> bool:
    """Some attempt's task span counts more final sample traces than have arrived."""
    return any(pair.traced.get(e, 0) < n for e, n in pair.expected.items())
