"""The span tree of a real eval: 2 tasks × 2 models × 2 epochs, concurrent, checked against Inspect's log."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_demo import arithmetic, arithmetic_quick
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.event import ModelEvent
from inspect_ai.log import EvalLog, resolve_sample_attachments
from inspect_ai.model import ChatMessage, ContentText, get_model
from inspect_ai.solver import Generate, TaskState, solver

from otel_bridge import conventions as c
from otel_bridge.hook.attributes import numeric
from otel_bridge.records import SpanRecord
from tests.support.bridge import BridgeEnv, full_log
from tests.support.spantree import SpanTree, expected_shape

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[EvalLog], SpanTree]:
    env = BridgeEnv(tmp_path_factory.mktemp("spans"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.env().items():
            mp.setenv(key, value)
        logs = eval(
            [arithmetic(samples=3), arithmetic_quick(samples=3)],
            model=[get_model("offline/careful", latency=0.01), get_model("offline/hasty", latency=0.01)],
            epochs=2,
            max_samples=4,
            max_tasks=4,
            display="none",
            log_dir=str(env.log_dir),
        )
    assert all(log.status == "success" for log in logs)
    return [full_log(log) for log in logs], SpanTree(env.spans())


def test_run_task_and_marker_spans(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    (run_span,) = tree.named(c.SPAN_RUN)
    assert run_span.parent_id is None
    assert run_span.attr(c.RUN_ID) == logs[0].eval.run_id
    tasks = tree.named(c.SPAN_TASK)
    assert sorted(t.attr(c.EVAL_ID) for t in tasks) == sorted(log.eval.eval_id for log in logs)
    for task in tasks:
        assert task.parent_id == run_span.span_id
        markers = [k for k in tree.kids(task) if k.name == c.SPAN_TASK_STARTED]
        assert len(markers) == 1
        assert markers[0].attr(c.TASK_ARGS) == task.attr(c.TASK_ARGS)
    assert len(tree.spans) == len({s.span_id for s in tree.spans}), "a span was exported twice"


def test_every_sample_trace_nests_as_inspect_did(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    tasks = {t.attr(c.EVAL_ID): t for t in tree.named(c.SPAN_TASK)}
    total = 0
    for log in logs:
        assert log.samples is not None
        assert len(log.samples) == 3 * 2
        for sample in log.samples:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            total += 1
            assert root.parent_id is None
            assert root.links == ((tasks[log.eval.eval_id].trace_id, tasks[log.eval.eval_id].span_id),)
            assert root.attr(c.SAMPLE_UUID) == sample.uuid
            assert tree.shape(root) == expected_shape(sample)
    assert total == len(tree.named(c.SPAN_SAMPLE)) == 4 * 6


def _chats_and_model_events(logs: list[EvalLog], tree: SpanTree) -> Iterator[tuple[SpanRecord, ModelEvent]]:
    """Each sample's chat spans (by start) beside its ModelEvents in Inspect's log (by time)."""
    for log in logs:
        for sample in log.samples or []:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            chats = sorted(
                (s for s in tree.descendants(root) if s.name.startswith("chat ")), key=lambda s: s.start_ns
            )
            events = [e for e in sample.events if isinstance(e, ModelEvent)]
            assert len(chats) == len(events)
            yield from zip(chats, sorted(events, key=lambda e: e.timestamp), strict=True)


def test_model_spans_are_not_duplicated_and_use_inspect_times(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    for span, event in _chats_and_model_events(logs, tree):
        assert span.kind == 3  # CLIENT
        assert abs(span.start_ns - event.timestamp.timestamp() * 1e9) < 2_000
        assert event.completed is not None
        assert abs(span.end_ns - event.completed.timestamp() * 1e9) < 2_000
        assert span.attr(c.GEN_AI_RESPONSE_ID) == event.output.response_id


def _texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of GenAI messages: text parts, tool calls and tool responses."""
    out = []
    for m in messages:
        bits = []
        for part in m["parts"]:
            if part["type"] == "text":
                bits.append(part["content"])
            elif part["type"] == "tool_call":
                bits.append(f"{part['name']}{json.dumps(part['arguments'], sort_keys=True)}")
            elif part["type"] == "tool_call_response":
                bits.append(str(part["response"]))
        out.append((m["role"], "".join(bits)))
    return out


def _inspect_texts(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    out = []
    for m in messages:
        if m.role == "system":
            continue
        calls = getattr(m, "tool_calls", None) or []
        text = m.text + "".join(f"{t.function}{json.dumps(t.arguments, sort_keys=True)}" for t in calls)
        out.append((m.role, text))
    return out


def test_input_messages_are_each_calls_conversation(run: tuple[list[EvalLog], SpanTree]) -> None:
    """Messages are encoded once per sample and reused: every call must still show its own input."""
    logs, tree = run
    checked = 0
    for log in logs:
        for sample in log.samples or []:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            chats = sorted(
                (s for s in tree.descendants(root) if s.name.startswith("chat ")), key=lambda s: s.start_ns
            )
            resolved = resolve_sample_attachments(sample)  # the log stores long texts once, by reference
            events = sorted(
                (e for e in resolved.events if isinstance(e, ModelEvent)), key=lambda e: e.timestamp
            )
            for span, event in zip(chats, events, strict=True):
                assert _texts(json.loads(span.attr(c.GEN_AI_INPUT_MESSAGES))) == _inspect_texts(event.input)
                assert span.attr(c.INPUT_VALUE) == span.attr(c.GEN_AI_INPUT_MESSAGES)
                system = [m.text for m in event.input if m.role == "system"]
                instructions = json.loads(span.attr(c.GEN_AI_SYSTEM_INSTRUCTIONS))
                assert [p["content"] for p in instructions] == system
                checked += 1
    assert checked == sum(
        len([e for e in s.events if isinstance(e, ModelEvent)]) for g in logs for s in g.samples or []
    )


@solver
def _edit_between_calls():  # type: ignore[no-untyped-def]
    """Two model calls with the conversation edited in place between them."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state = await generate(state, tool_calls="none")
        state.messages[0].content = "edited question"  # a str content replaced
        reply = state.messages[-1]
        reply.content = [ContentText(text="first part"), ContentText(text="second part")]
        state = await generate(state, tool_calls="none")
        assert isinstance(state.messages[1].content, list)
        state.messages[1].content[1].text = "second part, edited"  # a part edited in place
        return await generate(state, tool_calls="none")

    return solve


def test_messages_edited_in_place_are_encoded_again(tmp_path: Path) -> None:
    """A solver editing the conversation between calls: each call shows the text it was sent."""
    env = BridgeEnv(tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.env().items():
            mp.setenv(key, value)
        (log,) = eval(
            Task(dataset=[Sample(input="original question", target="x")], solver=_edit_between_calls()),
            model="offline/careful",
            display="none",
            log_dir=str(env.log_dir),
        )
    assert log.status == "success", log.error
    chats = sorted((s for s in env.spans() if s.name.startswith("chat ")), key=lambda s: s.start_ns)
    inputs = [_texts(json.loads(s.attr(c.GEN_AI_INPUT_MESSAGES))) for s in chats]
    assert len(inputs) == 3
    assert inputs[0] == [("user", "original question")]
    assert inputs[1][0] == ("user", "edited question")
    assert inputs[1][1] == ("assistant", "first partsecond part")
    assert inputs[2][1] == ("assistant", "first partsecond part, edited")


def test_children_lie_inside_their_parents(run: tuple[list[EvalLog], SpanTree]) -> None:
    _, tree = run
    for span in tree.spans:
        if span.parent_id is None:
            continue
        parent = tree.by_id[span.parent_id]
        assert parent.start_ns <= span.start_ns <= span.end_ns <= parent.end_ns, (span.name, parent.name)


def test_identifiers_on_every_span(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    run_id = logs[0].eval.run_id
    for span in tree.spans:
        assert span.attr(c.RUN_ID) == run_id
        if span.name == c.SPAN_RUN:
            continue
        for key in (c.EVAL_ID, c.TASK_ID, c.TASK_NAME, c.MODEL):
            assert span.attr(key), (span.name, key)
        if span.name not in (c.SPAN_TASK, c.SPAN_TASK_STARTED):
            for key in (c.SAMPLE_ID, c.SAMPLE_EPOCH, c.SAMPLE_UUID):
                assert span.attr(key) is not None, (span.name, key)
        assert span.resource["service.name"] == "inspect-ai"


def test_token_usage_equals_inspect_log(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    for log in logs:
        chats = [
            s for s in tree.spans if s.name.startswith("chat ") and s.attr(c.EVAL_ID) == log.eval.eval_id
        ]
        (usage,) = log.stats.model_usage.values()
        assert sum(s.attr(c.GEN_AI_USAGE_INPUT_TOKENS) for s in chats) == usage.input_tokens
        assert sum(s.attr(c.GEN_AI_USAGE_OUTPUT_TOKENS) for s in chats) == usage.output_tokens
        (task,) = [t for t in tree.named(c.SPAN_TASK) if t.attr(c.EVAL_ID) == log.eval.eval_id]
        assert task.attr(c.USAGE_INPUT_TOKENS) == usage.input_tokens
        for sample in log.samples or []:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            assert root.attr(c.USAGE_TOTAL_TOKENS) == sum(u.total_tokens for u in sample.model_usage.values())


def test_scores_and_metrics_equal_inspect_log(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    for log in logs:
        assert log.results is not None
        (task,) = [t for t in tree.named(c.SPAN_TASK) if t.attr(c.EVAL_ID) == log.eval.eval_id]
        expected = {s.name: {m: v.value for m, v in s.metrics.items()} for s in log.results.scores}
        assert task.json_attr(c.TASK_METRICS) == expected
        assert task.attr(c.TASK_STATUS) == "success"
        assert task.attr(c.SAMPLES_TOTAL) == log.results.total_samples
        assert task.attr(c.SAMPLES_COMPLETED) == log.results.completed_samples
        assert task.attr(c.SAMPLES_ERRORED) == 0
        for sample in log.samples or []:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            assert sample.scores
            recorded = root.json_attr(c.SAMPLE_SCORES)
            events = {e.attributes[c.GEN_AI_EVALUATION_NAME]: e.attributes for e in root.events}
            for name, score in sample.scores.items():
                assert recorded[name]["value"] == score.value
                assert recorded[name]["numeric"] == numeric(score.value)
                assert events[name][c.GEN_AI_EVALUATION_SCORE_VALUE] == numeric(score.value)
            assert root.attr(c.SAMPLE_OUTPUT) == sample.output.completion
            assert root.attr(c.SAMPLE_TARGET) == sample.target
            assert root.attr(c.SAMPLE_STATUS) == "success"
            assert root.status == "UNSET"


def test_genai_attributes_on_chat_and_tool_spans(run: tuple[list[EvalLog], SpanTree]) -> None:
    _, tree = run
    chats = [s for s in tree.spans if s.name.startswith("chat ")]
    assert chats
    for span in chats:
        assert span.attr(c.GEN_AI_OPERATION_NAME) == "chat"
        assert span.attr(c.GEN_AI_PROVIDER_NAME) == "offline"
        assert span.name == f"chat {span.attr(c.GEN_AI_REQUEST_MODEL)}"
        assert span.attr(c.GEN_AI_CONVERSATION_ID) == span.attr(c.SAMPLE_UUID)
        messages = json.loads(span.attr(c.GEN_AI_INPUT_MESSAGES))
        assert messages and all({"role", "parts"} <= set(m) for m in messages)
        assert json.loads(span.attr(c.GEN_AI_OUTPUT_MESSAGES))[0]["finish_reason"] in {"stop", "tool_call"}
    tools = [s for s in tree.spans if s.name.startswith("execute_tool ")]
    assert tools
    for span in tools:
        assert span.attr(c.GEN_AI_TOOL_NAME) == "add"
        assert span.attr(c.GEN_AI_TOOL_CALL_ID).startswith("call_")
        args = json.loads(span.attr(c.GEN_AI_TOOL_CALL_ARGUMENTS))
        assert span.attr(c.GEN_AI_TOOL_CALL_RESULT) == str(args["x"] + args["y"])  # strings stay raw


def _documented_keys() -> set[str]:
    text = (ROOT / "docs" / "conventions.md").read_text()
    return set(re.findall(r"`([a-z_][a-z0-9_.]*(?:\.<[a-z_]+>)?)`", text))


def _emitted_keys(spans: list[SpanRecord]) -> Counter[str]:
    keys: Counter[str] = Counter()
    for span in spans:
        keys.update(span.attributes.keys())
        for event in span.events:
            keys.update(event.attributes.keys())
        keys.update(span.resource.keys())
    return keys


def test_every_emitted_key_is_documented(run: tuple[list[EvalLog], SpanTree]) -> None:
    _, tree = run
    undocumented = set(_emitted_keys(tree.spans)) - _documented_keys()
    assert not undocumented, f"attribute keys missing from docs/conventions.md: {sorted(undocumented)}"
    names = {re.sub(r" .*", " <x>", s.name) for s in tree.spans}
    for name in names:
        assert f"`{name.replace(' <x>', '')}" in (ROOT / "docs" / "conventions.md").read_text(), name


def test_no_key_is_a_prefix_of_another(run: tuple[list[EvalLog], SpanTree]) -> None:
    """Weave's OTLP endpoint rejects a span that has both `foo` and `foo.bar`."""
    _, tree = run
    for span in tree.spans:
        keys = set(span.attributes)
        for key in keys:
            assert not any(other.startswith(key + ".") for other in keys), (span.name, key)


def test_span_names_are_low_cardinality(run: tuple[list[EvalLog], SpanTree]) -> None:
    _, tree = run
    names = {s.name for s in tree.spans}
    assert names == {
        c.SPAN_RUN,
        c.SPAN_TASK,
        c.SPAN_TASK_STARTED,
        c.SPAN_SAMPLE,
        "inspect.init",
        "inspect.solvers",
        "inspect.solver",
        "inspect.scorers",
        "inspect.scorer",
        "invoke_agent calculator",
        "execute_tool add",
        "chat careful",
        "chat hasty",
    }


# Inspect's StopReason → the GenAI finish_reason, as docs/conventions.md documents it
DOCUMENTED_FINISH = {
    "stop": "stop",
    "tool_calls": "tool_call",
    "max_tokens": "length",
    "model_length": "length",
}


def test_output_messages_are_the_model_events_outputs(run: tuple[list[EvalLog], SpanTree]) -> None:
    """gen_ai.output.messages of every chat span is its model call's output as Inspect logged it
    (text, tool calls, finish reason), in the order of the sample's model events."""
    logs, tree = run
    checked = 0
    for span, call in _chats_and_model_events(logs, tree):
        expected = []
        for choice in call.output.choices:
            message = choice.message
            content = message.content
            texts = [content] if isinstance(content, str) else [p.text for p in content if p.type == "text"]
            parts: list[dict[str, Any]] = [{"type": "text", "content": t} for t in texts if t]
            parts += [
                {"type": "tool_call", "id": t.id, "name": t.function, "arguments": t.arguments}
                for t in message.tool_calls or []
            ]
            reason = DOCUMENTED_FINISH[choice.stop_reason]
            expected.append({"role": "assistant", "parts": parts, "finish_reason": reason})
        assert json.loads(span.attr(c.GEN_AI_OUTPUT_MESSAGES)) == expected
        checked += 1
    assert checked >= 3
