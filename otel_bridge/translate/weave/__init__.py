"""The bridge's spans → the writes that make a Weave Evaluation (pure: no I/O, no weave import).

``ops``: the writes and their keys; ``mapping`` and ``calls``: pure span → write functions;
``assembler``: ``WeaveTranslator``, which buffers spans arriving in any order until a write is
complete. Importers use this package, not its modules.
"""

from otel_bridge.translate.weave.assembler import WeaveTranslator
from otel_bridge.translate.weave.calls import call_spec, chat_model
from otel_bridge.translate.weave.mapping import (
    EVAL_META,
    EvalStats,
    example_row,
    finish_evaluation,
    incomplete_finish,
    log_prediction,
    score_value,
    start_evaluation,
    start_from_sample,
)
from otel_bridge.translate.weave.ops import (
    CallSpec,
    DatasetSpec,
    FinishEvaluation,
    LogPrediction,
    ModelSpec,
    ScorerCall,
    StartEvaluation,
    Write,
    object_name,
    prediction_key,
)

__all__ = [
    "EVAL_META",
    "CallSpec",
    "DatasetSpec",
    "EvalStats",
    "FinishEvaluation",
    "LogPrediction",
    "ModelSpec",
    "ScorerCall",
    "StartEvaluation",
    "WeaveTranslator",
    "Write",
    "call_spec",
    "chat_model",
    "example_row",
    "finish_evaluation",
    "incomplete_finish",
    "log_prediction",
    "object_name",
    "prediction_key",
    "score_value",
    "start_evaluation",
    "start_from_sample",
]
