"""A small offline eval that exercises what the bridge traces.

Solver chain (system message → a react agent that calls a tool → a self-check step) and two
scorers, on arithmetic questions answered by the network-free ``offline`` provider::

    INSPECT_OTEL_ENABLED=1 inspect eval examples/bridge_demo.py --model offline/careful
"""

from __future__ import annotations

import bridge_examples.offline_model  # noqa: F401  (registers offline/ when run from Python)
from inspect_ai import Task, task
from inspect_ai.agent import react
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageUser
from inspect_ai.scorer import Score, Target, mean, pattern, scorer
from inspect_ai.solver import Generate, TaskState, generate, solver, system_message
from inspect_ai.tool import tool


@tool
def add():  # type: ignore[no-untyped-def]
    async def execute(x: int, y: int) -> str:
        """Add two integers.

        Args:
            x: First addend.
            y: Second addend.
        """
        return str(x + y)

    return execute


@solver
def self_check():  # type: ignore[no-untyped-def]
    """Ask the model to critique its answer: a second, tool-free model call."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        answer = state.output.completion
        state.messages.append(ChatMessageUser(content=f"Please critique this answer: {answer}"))
        await generate(state, tool_calls="none")
        state.output.completion = answer
        return state

    return solve


@scorer(metrics=[mean()])
def used_tool():  # type: ignore[no-untyped-def]
    """1.0 when the transcript holds a tool result."""

    async def score(state: TaskState, target: Target) -> Score:
        used = any(m.role == "tool" for m in state.messages)
        return Score(value=1.0 if used else 0.0, explanation="tool used" if used else "no tool")

    return score


def arithmetic_dataset(n: int = 6, name: str = "arithmetic") -> MemoryDataset:
    samples = [
        Sample(
            id=f"q{i}",
            input=f"What is {7 * i + 3} + {11 * i + 5}?",
            target=str(18 * i + 8),
            metadata={"difficulty": "easy" if i < n // 2 else "hard"},
        )
        for i in range(1, n + 1)
    ]
    return MemoryDataset(samples, name=name)


@task
def arithmetic(samples: int = 6, epochs: int = 1) -> Task:
    return Task(
        dataset=arithmetic_dataset(samples),
        solver=[
            system_message("You are a careful calculator. Use the add tool, then reply 'ANSWER: <n>'."),
            react(name="calculator", tools=[add()], submit=False),
            self_check(),
        ],
        scorer=[pattern(r"ANSWER:\s*(-?\d+)"), used_tool()],
        epochs=epochs,
    )


@task
def arithmetic_quick(samples: int = 4) -> Task:
    """The same questions answered in one model call, without tools (a second task shape)."""
    return Task(
        dataset=arithmetic_dataset(samples, name="arithmetic_quick"),
        solver=[system_message("Reply 'ANSWER: <n>'."), generate()],
        scorer=pattern(r"ANSWER:\s*(-?\d+)"),
    )
