"""The collector's Weave Agents overlay: a real eval's spans, through the real collector binary, into
Weave's own Agents-view mapping.

weave 0.53.12's in-memory server has no Agents ingest of its own (production's is the ClickHouse
``insert_otel_spans``), so the test server runs that ingest's pure step — weave's own
``Span.from_proto`` and ``extract_genai_span`` — on what reaches ``/agents/otel/v1/traces``
(tests/weave_server/README.md). The columns Weave extracts are compared with Inspect's log: the
agent, tools and their call ids, the models and every model call's token counts, the sample as the
conversation. docs/weave.md ("The Agents view") lists what maps and what does not.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai.log import EvalLog, read_eval_log
from inspect_ai.scorer import value_to_float

from otel_bridge.records import read_span_file
from tests.support.bridge import OTEL_BRIDGE, ROOT, inspect_eval, run_cli, subprocess_env
from tests.support.collector import Binaries, Jaeger
from tests.support.otlp_capture import OtlpCapture
from tests.test_collector import bridge_capture, start_collector
from tests.weave_server.harness import DUMMY_API_KEY, WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["bridge_capture", "weave_server"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvalLog]:
    """The demo (react agent, a tool, two chats per sample) on one model: its span file and log."""
    tmp = tmp_path_factory.mktemp("agents")
    env = subprocess_env(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_DIR": str(tmp / "spans"),
            "INSPECT_OTEL_EXPORTERS": "file",
        }
    )
    args = [str(ROOT / "examples" / "bridge_demo.py@arithmetic"), "--model", "offline/careful"]
    proc = inspect_eval([*args, "-T", "samples=2", "--log-dir", str(tmp / "logs")], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the span file, not its metric file beside it (a glob on the name's last letter would also
    # drop a span file whose random id ends in "s")
    [span_file] = [p for p in (tmp / "spans").glob("*.jsonl") if not p.name.endswith(".metrics.jsonl")]
    [log] = [read_eval_log(str(p)) for p in (tmp / "logs").glob("*.eval")]
    return span_file, log


def test_agents_overlay_delivers_spans_weave_reads_as_agent_tool_and_model_calls(
    binaries: Binaries,
    jaeger: Jaeger,
    bridge_capture: OtlpCapture,
    weave_server: WeaveServer,
    recorded: tuple[Path, EvalLog],
    tmp_path: Path,
) -> None:
    span_file, log = recorded
    entity, name = "ent", f"agents-{uuid.uuid4().hex[:10]}"
    project = f"{entity}/{name}"
    spans = list(read_span_file(span_file))
    col = start_collector(
        binaries,
        jaeger,
        bridge_capture,
        tmp_path,
        overlays=["weave-agents.yaml"],
        env={
            "WEAVE_AGENTS_OTLP_ENDPOINT": f"{weave_server.url}/agents/otel",
            "WANDB_API_KEY": DUMMY_API_KEY,
            "WANDB_ENTITY": entity,
            "WANDB_PROJECT": name,
        },
    )
    try:
        env = subprocess_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": col.otlp_http_traces_url})
        sent = run_cli([OTEL_BRIDGE, "sync", str(span_file), "--to", "otlp", "--quiet"], env, timeout=120)
        assert sent.returncode == 0, sent.stderr
        rows = weave_server.wait_for(
            lambda: weave_server.agent_spans(project), lambda r: len(r) >= len(spans), timeout=60
        )
    finally:
        col.stop()
    assert len(rows) == len({(s.trace_id, s.span_id) for s in spans}), "every span stored once"
    by_op = Counter(r["operation_name"] for r in rows)

    # models: one chat row per model call of Inspect's log, with its tokens and model names
    calls = [e for s in log.samples or [] for e in s.events if e.event == "model"]
    chats = [r for r in rows if r["operation_name"] == "chat"]
    assert len(chats) == len(calls) == by_op["chat"]
    assert sum(r["input_tokens"] for r in chats) == log.stats.model_usage[log.eval.model].input_tokens
    assert sum(r["output_tokens"] for r in chats) == log.stats.model_usage[log.eval.model].output_tokens
    assert {r["response_model"] for r in chats} == {e.output.model for e in calls}
    assert {r["request_model"] for r in chats} == {log.eval.model.split("/", 1)[1]}
    assert {r["provider_name"] for r in chats} == {log.eval.model.split("/", 1)[0]}
    assert all(r["input_messages"] and r["output_messages"] for r in chats)

    # tools: one execute_tool row per tool call, named, with the call id and arguments
    tool_events = [e for s in log.samples or [] for e in s.events if e.event == "tool"]
    tools = [r for r in rows if r["operation_name"] == "execute_tool"]
    assert sorted(r["tool_name"] for r in tools) == sorted(e.function for e in tool_events)
    assert sorted(r["tool_call_id"] for r in tools) == sorted(e.id for e in tool_events)
    assert all(r["tool_call_arguments"] and r["tool_call_result"] for r in tools)

    # the agent: Inspect's agent spans (react's "calculator") are invoke_agent rows with their name
    agent_spans = [
        e for s in log.samples or [] for e in s.events if e.event == "span_begin" and e.type == "agent"
    ]
    agents = [r for r in rows if r["operation_name"] == "invoke_agent"]
    assert sorted(r["agent_name"] for r in agents) == sorted(e.name for e in agent_spans) and agents

    # the sample is the conversation: its root and chat rows carry the sample's uuid
    samples = {s.uuid for s in log.samples or []}
    assert {r["conversation_id"] for r in rows if r["conversation_id"]} == samples

    # what does not map (docs/weave.md): Inspect's own spans are plain spans with no operation,
    # scores only custom attributes of the sample row, and no W&B run link on this endpoint
    to_float = value_to_float()
    plain = {r["span_name"] for r in rows if not r["operation_name"]}
    assert plain and all(n.startswith("inspect.") for n in plain)
    for sample in log.samples or []:
        [root] = [
            r for r in rows if r["span_name"] == "inspect.sample" and r["conversation_id"] == sample.uuid
        ]
        for scorer, score in (sample.scores or {}).items():
            numeric = root["custom_attrs_float"][f"inspect.sample.scores.{scorer}.numeric"]
            assert numeric == pytest.approx(to_float(score.value))  # Inspect's own conversion
    assert {r["wb_run_id"] for r in rows} == {""}
