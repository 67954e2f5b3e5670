"""A scorer for re-scoring an existing log (``inspect score LOG --scorer ...``), network-free.

The demo tasks do not run ``answer_value``, so ``inspect score`` adds a new score column; its
value is the number the model answered (it differs between samples, so a test can tell rows apart).
"""

from __future__ import annotations

import re

from inspect_ai.scorer import Score, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState


@scorer(metrics=[mean(), stderr()])
def answer_value():  # type: ignore[no-untyped-def]
    """The integer after ``ANSWER:`` in the completion (0 when there is none)."""

    async def score(state: TaskState, target: Target) -> Score:
        found = re.findall(r"ANSWER:\s*(-?\d+)", state.output.completion)
        value = float(found[-1]) if found else 0.0
        return Score(value=value, answer=found[-1] if found else None, explanation=f"answered {value:g}")

    return score
