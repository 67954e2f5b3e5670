"""Span records → W&B Models writes (pure: no I/O, no wandb import).

``ops``: the writes; ``options``: what the translation is told; ``mapping``: pure span → value
functions; ``assembler``: ``WandbTranslator``, which keeps the numbers of every run. Importers
use this package, not its modules.
"""

from otel_bridge.translate.common import run_key
from otel_bridge.translate.wandb.assembler import WandbTranslator
from otel_bridge.translate.wandb.mapping import RELEVANT_SPANS, SCORER_METRICS_HINT, weave_evaluations_url
from otel_bridge.translate.wandb.ops import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_OK,
    JOB_TYPE,
    TABLE_KEY,
    DefineMetric,
    FinishRun,
    LogFiles,
    LogRow,
    LogTable,
    SetName,
    SetTags,
    StartRun,
    UpdateConfig,
    UpdateSummary,
    Write,
)
from otel_bridge.translate.wandb.options import Options

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "JOB_TYPE",
    "RELEVANT_SPANS",
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
    "weave_evaluations_url",
]
