"""The span tree of a real eval: 2 tasks × 2 models × 2 epochs, concurrent, checked against Inspect's log."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from bridge_demo import arithmetic, arithmetic_quick
from inspect_ai import eval
from inspect_ai.event import ModelEvent
from inspect_ai.log import EvalLog
from inspect_ai.model import get_model

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


def test_model_spans_are_not_duplicated_and_use_inspect_times(run: tuple[list[EvalLog], SpanTree]) -> None:
    logs, tree = run
    for log in logs:
        for sample in log.samples or []:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            chats = sorted(
                (s for s in tree.descendants(root) if s.name.startswith("chat ")), key=lambda s: s.start_ns
            )
            events = [e for e in sample.events if isinstance(e, ModelEvent)]
            assert len(chats) == len(events)
            for span, event in zip(chats, sorted(events, key=lambda e: e.timestamp), strict=True):
                assert span.kind == 3  # CLIENT
                assert abs(span.start_ns - event.timestamp.timestamp() * 1e9) < 2_000
                assert event.completed is not None
                assert abs(span.end_ns - event.completed.timestamp() * 1e9) < 2_000
                assert span.attr(c.GEN_AI_RESPONSE_ID) == event.output.response_id


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
