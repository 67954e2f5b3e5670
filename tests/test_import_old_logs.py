"""A log written by an inspect-ai release from a year ago, imported by today's bridge.

The log is written in a side venv (tests/support/old_inspect.py) with the bridge not installed —
what a user's old logs are. The oracle is that log as today's Inspect reads it: one sample trace
per sample, one chat span per model call with its token usage, one tool span per tool call, the
task's status and metrics, Inspect's version as the log records it; and what the old log does
not hold (a sample's start and end times) is not invented.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from inspect_ai.event import ModelEvent, ToolEvent
from inspect_ai.log import EvalLog, read_eval_log

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord, read_span_file
from tests.support.bridge import OTEL_BRIDGE, run_cli, subprocess_env
from tests.support.old_inspect import OLD_INSPECT, old_python

OLD_TASK = """
from bridge_demo import add  # the demo's tool (its offline model needs a newer Inspect)
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageTool, GenerateConfig, ModelAPI, ModelOutput, ModelUsage, modelapi
from inspect_ai.scorer import match
from inspect_ai.solver import generate, use_tools


@modelapi(name="old-offline")
class OldOffline(ModelAPI):
    def __init__(self, model_name, base_url=None, api_key=None, config=GenerateConfig(), **model_args):
        super().__init__(model_name, base_url, api_key, [], config)

    async def generate(self, input, tools, tool_choice, config):
        results = [m for m in input if isinstance(m, ChatMessageTool)]
        if tools and not results:
            arguments = {"x": 2, "y": 3}
            out = ModelOutput.for_tool_call(model="old-offline/m", tool_name="add", tool_arguments=arguments)
        else:
            answer = results[-1].text if results else "5"
            out = ModelOutput.from_content(model="old-offline/m", content=answer)
        out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)
        return out


@task
def old_arithmetic():
    samples = [Sample(id=f"s{i}", input="What is 2 + 3?", target="5") for i in range(3)]
    return Task(dataset=samples, solver=[use_tools(add()), generate()], scorer=match())


if __name__ == "__main__":
    import sys

    (log,) = eval(old_arithmetic(), model="old-offline/m", log_dir=sys.argv[1], display="none", epochs=2)
    assert log.status == "success", log.error
"""


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalLog, list[SpanRecord]]:
    root = tmp_path_factory.mktemp("old-inspect")
    (root / "old_task.py").write_text(OLD_TASK)
    logs = root / "logs"
    proc = subprocess.run(
        [str(old_python()), str(root / "old_task.py"), str(logs)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (log_file,) = logs.glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.eval.packages.get("inspect_ai") == OLD_INSPECT
    result = run_cli(
        [OTEL_BRIDGE, "import", str(logs), "--dir", str(root / "spans"), "--quiet"], subprocess_env()
    )
    assert result.returncode == 0, result.stderr
    return log, [s for p in sorted((root / "spans").glob("*.jsonl")) for s in read_span_file(p)]


def test_old_log_imports_with_what_it_contains(old: tuple[EvalLog, list[SpanRecord]]) -> None:
    log, spans = old
    samples = log.samples or []
    roots = {s.attr(c.SAMPLE_UUID): s for s in spans if s.name == c.SPAN_SAMPLE}
    assert sorted(roots) == sorted(s.uuid for s in samples)
    model_events = [e for s in samples for e in s.events if isinstance(e, ModelEvent)]
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == len(model_events) == 2 * len(samples)
    assert sum(s.attr("gen_ai.usage.input_tokens") for s in chats) == sum(
        e.output.usage.input_tokens for e in model_events if e.output.usage
    )
    tools = [s for s in spans if s.name == "execute_tool add"]
    assert len(tools) == sum(isinstance(e, ToolEvent) for s in samples for e in s.events)
    (task,) = (s for s in spans if s.name == c.SPAN_TASK)
    assert task.attr(c.TASK_STATUS) == str(log.status) == "success"
    assert log.results is not None
    expected = {sc.name: {n: m.value for n, m in sc.metrics.items()} for sc in log.results.scores}
    assert task.json_attr(c.TASK_METRICS) == expected
    # the Inspect that wrote the log, as live
    assert {s.attr(c.INSPECT_VERSION) for s in spans if c.INSPECT_VERSION in s.attributes} == {OLD_INSPECT}
    assert {s.resource.get("service.version") for s in spans} == {OLD_INSPECT}


def test_what_the_old_log_lacks_is_not_invented(old: tuple[EvalLog, list[SpanRecord]]) -> None:
    log, spans = old
    samples = {s.uuid: s for s in log.samples or []}
    assert all(s.started_at is None and s.completed_at is None for s in samples.values())  # 0.3.150
    for root in (s for s in spans if s.name == c.SPAN_SAMPLE):
        sample = samples[root.attr(c.SAMPLE_UUID)]
        # no start or end time in the log: the sample's own first and last event times
        assert root.start_ns == int(sample.events[0].timestamp.timestamp() * 1e9)
        last = max(
            int((getattr(e, "completed", None) or e.timestamp).timestamp() * 1e9) for e in sample.events
        )
        assert root.end_ns == last
        for key, present in (
            (c.SAMPLE_TOTAL_TIME, sample.total_time is not None),
            (c.SAMPLE_WORKING_TIME, sample.working_time is not None),
            (c.SAMPLE_LIMIT, sample.limit is not None),
            (c.SAMPLE_ERROR, sample.error is not None),
        ):
            assert (key in root.attributes) == present, key


def test_a_log_the_installed_inspect_cannot_read_is_named_and_the_others_import(
    old: tuple[EvalLog, list[SpanRecord]], tmp_path: Path
) -> None:
    log, _ = old
    unreadable = tmp_path / "future.eval"
    unreadable.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # a zip that is no Inspect log
    out = tmp_path / "spans"
    result = run_cli(
        [OTEL_BRIDGE, "import", log.location, str(unreadable), "--dir", str(out), "--quiet"], subprocess_env()
    )
    assert result.returncode == 1
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and str(unreadable) in errors[0] and "not a readable Inspect log" in errors[0]
    assert any(s.name == c.SPAN_SAMPLE for p in out.glob("*.jsonl") for s in read_span_file(p))
