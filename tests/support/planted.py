"""Planted markers: an eval whose every free-text and secret-bearing place holds a unique string.

The test (tests/test_secrets.py) makes the markers, writes them to a JSON file, and runs this
module in a child process (``python -m tests.support.planted MARKERS_JSON``): real Inspect evals
on a scripted provider, ``planted/…``, with real tools, scorers and errors. The oracle is the
markers themselves: what was planted is known, so every exported byte can be searched for it,
independently of the bridge's own lists of attributes.

Where each marker is planted:

- content: ``system`` (system message), ``input`` (sample input), ``target``, ``metadata`` (sample
  metadata), ``task_arg`` (a task argument's value), ``tool_args`` (the model's tool call),
  ``tool_result``, ``tool_error`` (a ToolError's message), ``completion``, ``model_error`` (a
  provider error's message), ``score_answer``, ``score_explanation``, ``score_text`` (a text-valued
  score), ``sandbox_cmd`` (in a command the echo tool runs in Inspect's ``local`` sandbox),
  ``sandbox_output`` (that command's output, built by the shell: it is not in the command);
- secrets: ``env`` (the value of PLANTED_SERVICE_TOKEN, echoed in a tool error), ``model_arg``
  (an ``api_key`` model arg), ``sample_meta`` (``api_key`` in sample metadata), ``meta_key`` (a
  GitHub token as a sample metadata key), ``task_arg_key`` (an ``api_key`` task arg),
  ``model_error_key`` (an OpenAI-shaped key in a provider error),
  ``scorer_key`` (a Hugging Face token in a scorer explanation), ``pattern`` (matches the user's
  INSPECT_OTEL_REDACT_PATTERNS, in the completion), ``late`` (LATE_DEPLOY_API_KEY, exported
  between two evals of one process and echoed in the second one's tool error), ``sandbox``
  (PLANTED_SANDBOX_TOKEN, printed by the sandbox command from its environment).
"""

from __future__ import annotations

import json
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any

from inspect_ai import Task, eval, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageTool,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.scorer import Score, Target, accuracy, scorer
from inspect_ai.solver import TaskState, generate, system_message, use_tools
from inspect_ai.tool import Tool, ToolChoice, ToolError, ToolInfo, tool
from inspect_ai.util import sandbox

CONTENT = (
    "system",
    "input",
    "target",
    "metadata",
    "task_arg",
    "tool_args",
    "tool_result",
    "tool_error",
    "completion",
    "model_error",
    "score_answer",
    "score_explanation",
    "score_text",
    "sandbox_cmd",
    "sandbox_output",
)
SECRETS = (
    "env",
    "model_arg",
    "sample_meta",
    "meta_key",
    "task_arg_key",
    "model_error_key",
    "scorer_key",
    "pattern",
    "late",
    "sandbox",
)
PATTERN = "CORP-[0-9]{10}"  # the user's INSPECT_OTEL_REDACT_PATTERNS in the test
_MARKERS: dict[str, str] = {}


def _random(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def make_markers() -> dict[str, str]:
    """Fresh unique markers: content words, and secrets in the shapes real ones have."""
    markers = {
        f"content.{name}": f"plant{name.replace('_', '')}{_random(12, string.ascii_lowercase)}"
        for name in CONTENT
    }
    markers.update(
        {
            "secret.env": _random(24),
            "secret.model_arg": _random(28),
            "secret.sample_meta": _random(26),
            "secret.meta_key": "ghp_" + _random(36),
            "secret.task_arg_key": _random(30),
            "secret.model_error_key": "sk-proj-" + _random(32),
            "secret.scorer_key": "hf_" + _random(34),
            "secret.pattern": "CORP-" + _random(10, string.digits),
            "secret.late": _random(27),
            "secret.sandbox": _random(25),
        }
    )
    return markers


def m(name: str) -> str:
    return _MARKERS[name]


@modelapi(name="planted")
class PlantedModel(ModelAPI):
    """Calls the offered tool once (with planted arguments), then answers with the completion
    marker; a prompt asking for ``model-fail`` raises a provider error echoing a key."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's ModelAPI signature)
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)

    async def generate(
        self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice, config: GenerateConfig
    ) -> ModelOutput:
        prompt = "\n".join(message.text for message in input)
        if "model-fail" in prompt:
            raise RuntimeError(
                f"Incorrect API key provided: {m('secret.model_error_key')}; {m('content.model_error')}"
            )
        model = f"planted/{self.model_name}"
        if tools and not any(isinstance(message, ChatMessageTool) for message in input):
            output = ModelOutput.for_tool_call(
                model=model,
                tool_name=tools[0].name,
                tool_arguments={"text": m("content.tool_args")},
                tool_call_id="call_1",
            )
        else:
            answer = f"ANSWER: {m('content.completion')} (ref {m('secret.pattern')})"
            output = ModelOutput.from_content(model=model, content=answer)
        output.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
        return output


@tool
def echo() -> Tool:
    async def execute(text: str) -> str:
        """Echo the text back.

        Args:
            text: The text to echo.
        """
        # a real sandbox exec: the command holds one marker, its output another (the shell joins
        # two halves) and a secret from the sandbox's environment
        out = m("content.sandbox_output")
        half = len(out) // 2
        command = f"printf '%s%s %s' '{out[:half]}' '{out[half:]}' \"$PLANTED_SANDBOX_TOKEN\""
        command += f" # {m('content.sandbox_cmd')}"
        result = await sandbox().exec(["sh", "-c", command])
        assert result.success, result.stderr
        return f"{m('content.tool_result')} {text} {result.stdout}"

    return execute


@tool
def deploy() -> Tool:
    async def execute(text: str) -> str:
        """Deploy the text.

        Args:
            text: The text to deploy.
        """
        late = os.environ.get("LATE_DEPLOY_API_KEY", "")
        raise ToolError(
            f"{m('content.tool_error')}: rejected token {os.environ['PLANTED_SERVICE_TOKEN']} {late}"
        )

    return execute


@scorer(metrics=[accuracy()])
def judged() -> Any:
    async def score(state: TaskState, target: Target) -> Score:
        return Score(
            value="C",
            answer=m("content.score_answer"),
            explanation=f"{m('content.score_explanation')}, checked with {m('secret.scorer_key')}",
        )

    return score


@scorer(metrics=[])
def verdict() -> Any:
    async def score(state: TaskState, target: Target) -> Score:
        return Score(value=m("content.score_text"))

    return score


@task
def planted(api_key: str = "", note: str = "", tools: str = "echo") -> Task:
    # a token as a key (a dict of tokens to their owners): keys are redacted like values
    metadata = {
        "note": m("content.metadata"),
        "api_key": m("secret.sample_meta"),
        m("secret.meta_key"): "ops",
    }
    samples = [
        Sample(id="ok", input=f"tool-ok {m('content.input')}", target=m("content.target"), metadata=metadata),
        Sample(id="modelfail", input=f"model-fail {m('content.input')}", target=m("content.target")),
    ]
    chosen = echo() if tools == "echo" else deploy()
    return Task(
        dataset=MemoryDataset(samples),
        solver=[system_message(m("content.system")), use_tools(chosen), generate()],
        scorer=[judged(), verdict()],
        sandbox="local",
    )


def main(markers_file: str) -> None:
    _MARKERS.update(json.loads(Path(markers_file).read_text()))
    # Inspect keeps api_key out of its log; proxy_api_key is recorded (and must not leave either)
    model_args = {"api_key": m("secret.model_arg"), "proxy_api_key": m("secret.model_arg")}
    task_args = {"api_key": m("secret.task_arg_key"), "note": m("content.task_arg")}
    runs = []
    for tools in ("echo", "deploy"):
        if tools == "deploy":  # a secret that appears in the environment after tracing started
            os.environ["LATE_DEPLOY_API_KEY"] = m("secret.late")
        (log,) = eval(
            planted(**task_args, tools=tools),
            model="planted/agent",
            model_args=model_args,
            display="none",
            fail_on_error=False,
        )
        runs.append({"status": log.status, "location": log.location})
    print(json.dumps(runs))


if __name__ == "__main__":
    main(sys.argv[1])
