"""A task whose tool fails on some inputs, the way real tools do (tests of tool errors)::

    INSPECT_OTEL_ENABLED=1 inspect eval examples/bridge_examples/failing_tools.py --model offline/careful

``divide`` raises ``ToolError`` on a zero divisor and ``PermissionError`` on a negative dividend;
Inspect turns both into a failed tool call (``ToolEvent.error``, types ``unknown`` and
``permission``) that the model sees, and the sample goes on. The offline model calls the tool
once with the question's two numbers, then answers.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.agent import react
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import system_message
from inspect_ai.tool import ToolError, tool

import bridge_examples.offline_model  # noqa: F401  (registers offline/ when run from Python)

#: (dividend, divisor) per question: fine, zero divisor, negative dividend, fine, zero, fine
QUESTIONS = ((84, 4), (9, 0), (-6, 3), (100, 5), (7, 0), (45, 9))


@tool
def divide():  # type: ignore[no-untyped-def]
    async def execute(x: int, y: int) -> str:
        """Divide one integer by another.

        Args:
            x: The dividend (not negative).
            y: The divisor.
        """
        if y == 0:
            raise ToolError("division by zero")
        if x < 0:
            raise PermissionError("negative dividends are not allowed")
        return str(x // y)

    return execute


@task
def divisions() -> Task:
    samples = [
        Sample(id=f"d{i}", input=f"What is {x} / {y}?", target=str(x // y) if y else "undefined")
        for i, (x, y) in enumerate(QUESTIONS, start=1)
    ]
    return Task(
        dataset=MemoryDataset(samples, name="divisions"),
        solver=[
            system_message("Use the divide tool, then reply 'ANSWER: <n>'."),
            react(name="divider", tools=[divide()], submit=False),
        ],
        scorer=includes(),
    )
