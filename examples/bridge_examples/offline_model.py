"""A deterministic, network-free model provider for the demo, tests and benchmarks.

Inspect's ``mockllm`` downloads a tokenizer unless every output carries usage, so a fresh
machine with no network needs a provider of its own. ``offline/<name>`` behaves like a small
tool-using model: it calls the first available tool once, then answers from the tool result.

Model args (``-M key=value`` or ``get_model(..., key=value)``):
  - ``skill``: ``careful`` (default, answers from the tool result) or ``hasty`` (guesses,
    wrong on every third question) — two "models" that score differently.
  - ``latency``: seconds to sleep per call (default 0).
  - ``fail_every``: raise a transient error on every Nth call (retried by Inspect).
  - ``error_on``: a substring; a prompt containing it raises a non-retryable error.
  - ``response_model``: the model name the output reports (default ``offline/<name>``), e.g. a
    real provider's dated name such as ``gpt-4o-2024-08-06``, which Weave's cost table prices.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import anyio
from inspect_ai.model import (
    ChatMessage,
    ChatMessageTool,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from tenacity import wait_fixed

__all__ = ["FlakyProviderError", "OfflineModel"]


class FlakyProviderError(RuntimeError):
    """A transient failure Inspect should retry."""


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.text for m in messages)


@modelapi(name="offline")
class OfflineModel(ModelAPI):
    """Scripted model: one tool call when tools are offered, then a final answer."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's ModelAPI signature)
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        self.skill = str(model_args.get("skill", "careful"))
        self.latency = float(model_args.get("latency", 0))
        self.fail_every = int(model_args.get("fail_every", 0))
        self.error_on = model_args.get("error_on")
        self.response_model = str(model_args.get("response_model") or f"offline/{model_name}")
        self._calls = itertools.count(1)

    def should_retry(self, ex: Exception) -> bool:
        return isinstance(ex, FlakyProviderError)

    def retry_wait(self) -> Any:
        return wait_fixed(0.01)

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        call = next(self._calls)
        if self.latency:
            await anyio.sleep(self.latency)
        prompt = _text(input)
        if self.fail_every and call % self.fail_every == 0:
            raise FlakyProviderError(f"offline provider: transient failure on call {call}")
        if self.error_on and str(self.error_on) in prompt:
            raise ValueError(f"offline provider: refusing prompt containing {self.error_on!r}")

        model = self.response_model
        tool_results = [m for m in input if isinstance(m, ChatMessageTool)]
        if tools and not tool_results and tool_choice != "none":
            output = ModelOutput.for_tool_call(
                model=model,
                tool_name=tools[0].name,
                tool_arguments=self._tool_arguments(tools[0], prompt),
                tool_call_id=f"call_{call}",
            )
        else:
            output = ModelOutput.from_content(model=model, content=self._answer(prompt, tool_results))
        completion = output.message.text or json.dumps(
            [tc.arguments for tc in output.message.tool_calls or []]
        )
        input_tokens = _tokens(prompt)
        output_tokens = _tokens(completion)
        output.usage = ModelUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        output.response_id = f"resp_{self.model_name}_{call}"
        return output

    def _tool_arguments(self, tool: ToolInfo, prompt: str) -> dict[str, Any]:
        numbers = [int(n) for n in re.findall(r"-?\d+", prompt)][-2:]
        names = list(tool.parameters.properties.keys())
        if len(names) >= 2 and len(numbers) == 2:
            return {names[0]: numbers[0], names[1]: numbers[1]}
        return {name: prompt[-40:] for name in names[:1]}

    def _answer(self, prompt: str, tool_results: list[ChatMessageTool]) -> str:
        if "critique" in prompt.lower() and "ANSWER:" in prompt:
            return "The answer looks right."
        if tool_results and self.skill == "careful":
            return f"ANSWER: {tool_results[-1].text.strip()}"
        numbers = [int(n) for n in re.findall(r"-?\d+", prompt)]
        guess = sum(numbers[-2:]) if len(numbers) >= 2 else 0
        if self.skill == "hasty" and len(prompt) % 3 == 0:
            guess += 1
        return f"ANSWER: {guess}"
