"""Where spans go, and what never goes: OTLP over loopback, content off, secrets, bad
configuration, an unreachable endpoint, huge transcripts, someone else's global provider."""

from __future__ import annotations

import json
import socket
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bridge_demo import arithmetic, arithmetic_dataset
from inspect_ai import Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model
from inspect_ai.scorer import Score, Target, accuracy, pattern, scorer
from inspect_ai.solver import TaskState, generate, system_message

from otel_bridge import conventions as c
from otel_bridge.records import read_span_file
from tests.support.bridge import (
    INSPECT,
    OTEL_BRIDGE,
    BridgeEnv,
    full_log,
    inspect_eval,
    run_cli,
    seed_span_ids,
    subprocess_env,
)
from tests.support.otlp_capture import OtlpCapture
from tests.support.spantree import SpanTree, expected_shape
from tests.support.wandb_log import find_run_dirs, wait_for_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_export_over_loopback(bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    with OtlpCapture() as capture:
        endpoint = capture.http_endpoint if protocol == "http/protobuf" else f"http://{capture.grpc_endpoint}"
        monkeypatch.delenv("INSPECT_OTEL_EXPORTERS")  # the default: file, plus otlp when an endpoint is set
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        (log,) = eval(arithmetic(samples=2), model="offline/careful", display="none")
        assert log.status == "success"
        recorded = bridge.spans()  # the default also writes the span file
        received = capture.wait_for(len(recorded), timeout=30)
    assert {(s.trace_id, s.span_id) for s in recorded} == {s.key for s in received}
    assert len(received) == len(recorded), "no span was sent twice"
    assert {r.transport for r in capture.received} == {"http" if protocol == "http/protobuf" else "grpc"}
    by_id = {s.span_id: s for s in recorded}
    for span in received:
        mine = by_id[span.span_id]
        assert span.name == mine.name
        assert span.attributes == mine.attributes
        assert span.start_time_unix_nano == mine.start_ns
        assert span.resource["service.name"] == "inspect-ai"


@scorer(metrics=[accuracy()])
def planted_judge(answer: str, explanation: str) -> Any:
    """Always correct, with a planted answer and explanation (free text a scorer writes)."""

    async def score(state: TaskState, target: Target) -> Score:
        return Score(value="C", answer=answer, explanation=explanation)

    return score


@pytest.mark.parametrize("content", [False, True], ids=["content-off", "content-on"])
def test_content_off_removes_every_planted_text(
    bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch, content: bool
) -> None:
    """Markers planted in the system message, input, target, sample and eval metadata, a scorer's
    answer and explanation: with content off none is in any exported byte, with content on every
    one is (so the test can fail). The oracle is Inspect's own log, which holds them all."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", str(content).lower())
    names = ("system", "input", "target", "metadata", "eval_metadata", "answer", "explanation")
    markers = {name: f"plant{name.replace('_', '')}{uuid.uuid4().hex[:12]}" for name in names}
    sample = Sample(
        id="s",
        input=f"What is 1 + 2? {markers['input']}",
        target=markers["target"],
        metadata={"note": markers["metadata"]},
    )
    task = Task(
        dataset=MemoryDataset([sample]),
        solver=[system_message(markers["system"]), generate()],
        scorer=planted_judge(markers["answer"], markers["explanation"]),
    )
    (log,) = eval(task, model="offline/careful", display="none", metadata={"note": markers["eval_metadata"]})
    assert log.status == "success"
    oracle = read_eval_log(log.location).model_dump_json()
    assert [k for k, v in markers.items() if v not in oracle] == []
    raw = bridge.raw_bytes()
    exported = [k for k, v in markers.items() if v.encode() in raw]
    assert exported == (list(names) if content else [])
    # what is not content stays: scores, metrics, ids
    tree = SpanTree(bridge.spans())
    (task_span,) = tree.named(c.SPAN_TASK)
    assert task_span.json_attr(c.TASK_METRICS)["planted_judge"]["accuracy"] == 1.0
    (sample_span,) = tree.named(c.SPAN_SAMPLE)
    assert sample_span.attr(c.SAMPLE_ID) == "s"
    assert sample_span.json_attr(c.SAMPLE_SCORES)["planted_judge"]["value"] == "C"


SECRET_ARG = "sk-planted-model-arg-5f1c2e9a7b"
SECRET_ENV = "tok-planted-env-value-8d3b6a1f"


def test_secrets_never_leave(bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_API_KEY", SECRET_ENV)
    dataset = MemoryDataset([Sample(id="s", input=f"My token is {SECRET_ENV}. What is 1 + 2?", target="3")])
    task = Task(dataset=dataset, solver=generate(), scorer=pattern(r"ANSWER:\s*(-?\d+)"))
    with OtlpCapture() as capture:
        monkeypatch.delenv("INSPECT_OTEL_EXPORTERS")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", capture.http_endpoint)
        model = get_model(
            "offline/careful",
            api_key=SECRET_ARG,
            api_token=SECRET_ARG,
            headers={"Authorization": f"Bearer {SECRET_ARG}"},
        )
        (log,) = eval(task, model=model, display="none", task_args={}, metadata={"password": SECRET_ARG})
        spans = bridge.spans()
        capture.wait_for(len(spans))
        wire = b"".join(r.body for r in capture.received)
    assert log.status == "success"
    for blob in (bridge.raw_bytes(), wire):
        assert SECRET_ARG.encode() not in blob
        assert SECRET_ENV.encode() not in blob
    (task_span,) = SpanTree(spans).named(c.SPAN_TASK)
    assert "[REDACTED:secret_key]" in task_span.attr(c.MODEL_ARGS)
    (sample,) = SpanTree(spans).named(c.SPAN_SAMPLE)
    assert sample.attr(c.SAMPLE_INPUT) == "My token is [REDACTED:env:MY_PROVIDER_API_KEY]. What is 1 + 2?"


def _metrics(stdout_logs: Path) -> dict[str, dict[str, float]]:
    from inspect_ai.log import list_eval_logs, read_eval_log

    (info,) = list_eval_logs(str(stdout_logs))
    log = read_eval_log(info)
    assert log.results is not None
    return {s.name: {m: v.value for m, v in s.metrics.items()} for s in log.results.scores}


def test_bad_configuration_is_one_clear_message_and_changes_nothing(tmp_path: Path) -> None:
    args = ["examples/bridge_demo.py@arithmetic", "--model", "offline/hasty", "-T", "samples=4"]
    off = inspect_eval([*args, "--log-dir", str(tmp_path / "off")], subprocess_env())
    bad = {
        "INSPECT_OTEL_ENABLED": "1",
        "INSPECT_OTEL_DIR": str(tmp_path / "spans"),
        "INSPECT_OTEL_EXPORTERS": "file,bogus",
        "INSPECT_OTEL_CONTENT_MAX_BYTES": "lots",
        "INSPECT_OTEL_CAPTURE_CONTENT": "perhaps",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon",
    }
    on = inspect_eval([*args, "--log-dir", str(tmp_path / "on")], subprocess_env(bad))
    assert on.returncode == off.returncode == 0
    assert _metrics(tmp_path / "on") == _metrics(tmp_path / "off")
    for name in (
        "INSPECT_OTEL_EXPORTERS",
        "INSPECT_OTEL_CONTENT_MAX_BYTES",
        "INSPECT_OTEL_CAPTURE_CONTENT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        lines = [ln for ln in on.stderr.splitlines() if name in ln]
        assert len(lines) == 1, (name, on.stderr)
        assert lines[0].startswith("inspect-otel-bridge: ")
    assert "bogus" in on.stderr and "accepted: file, otlp, console, weave, wandb" in on.stderr
    assert list((tmp_path / "spans").glob("*.jsonl")), "valid settings still apply"
    assert "Traceback" not in on.stderr


def test_unknown_enabled_value_says_so_and_stays_off(tmp_path: Path) -> None:
    env = subprocess_env({"INSPECT_OTEL_ENABLED": "maybe", "INSPECT_OTEL_DIR": str(tmp_path / "spans")})
    result = inspect_eval(
        [
            "examples/bridge_demo.py@arithmetic_quick",
            "--model",
            "offline/careful",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        env,
    )
    assert result.returncode == 0
    assert result.stderr.count("INSPECT_OTEL_ENABLED='maybe' is not a boolean") == 1
    assert not (tmp_path / "spans").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_delays_exit_briefly_and_keeps_everything(tmp_path: Path) -> None:
    args = ["examples/bridge_demo.py@arithmetic", "--model", "offline/careful", "-T", "samples=3"]
    baseline = inspect_eval([*args, "--log-dir", str(tmp_path / "off")], subprocess_env())
    port = _closed_port()
    env = subprocess_env(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_DIR": str(tmp_path / "spans"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        }
    )
    result = inspect_eval([*args, "--log-dir", str(tmp_path / "on")], env)
    assert result.returncode == baseline.returncode == 0
    assert result.seconds - baseline.seconds < 15, (result.seconds, baseline.seconds)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("inspect-otel-bridge:")]
    assert len(lines) == 1, result.stderr
    (span_file,) = (tmp_path / "spans").glob("*.jsonl")
    recorded = BridgeEnv(tmp_path).spans()
    assert f"otlp: {len(recorded)} span(s) not delivered to http://127.0.0.1:{port}/v1/traces" in lines[0]
    assert f"`otel-bridge sync {span_file} --to otlp`" in lines[0]
    tree = SpanTree(recorded)
    assert len(tree.named(c.SPAN_RUN)) == 1 and len(tree.named(c.SPAN_SAMPLE)) == 3


def test_huge_transcript_is_truncated_to_valid_json_and_small_requests(
    bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = "lorem ipsum " * 40_000  # ~480 KB per message, repeated in every model call
    samples = [Sample(id=f"big{i}", input=f"{huge} What is {i} + 2?", target=str(i + 2)) for i in range(12)]
    task = Task(
        dataset=MemoryDataset(samples), solver=[generate(), generate()], scorer=pattern(r"ANSWER:\s*(-?\d+)")
    )
    with OtlpCapture() as capture:
        monkeypatch.delenv("INSPECT_OTEL_EXPORTERS")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", capture.http_endpoint)
        (log,) = eval(task, model="offline/careful", display="none")
        spans = bridge.spans()
        capture.wait_for(len(spans))
        sizes = [len(r.body) for r in capture.received]
    assert log.status == "success"
    assert max(sizes) < 4 * 1024 * 1024
    for span in spans:
        for key in set(span.attributes) & c.CONTENT_ATTRIBUTES:
            value = span.attributes[key]
            assert len(value.encode()) <= 32 * 1024, (span.name, key, len(value))
            if key in {c.GEN_AI_INPUT_MESSAGES, c.GEN_AI_OUTPUT_MESSAGES, c.GEN_AI_SYSTEM_INSTRUCTIONS}:
                json.loads(value)
        if span.attr(c.TRUNCATED):
            assert set(span.attr(c.TRUNCATED)) <= c.CONTENT_ATTRIBUTES
    names = Counter(s.name for s in spans if s.attr(c.TRUNCATED))
    assert names == {c.SPAN_SAMPLE: 12, "chat careful": 24}, names  # each sample root and both chat calls


GLOBAL_PROVIDER_SCRIPT = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
calls = []
real_set = trace.set_tracer_provider
def recording_set(provider):
    calls.append(type(provider).__module__)
    real_set(provider)
trace.set_tracer_provider = recording_set
from inspect_ai import eval
from inspect_ai.hooks import Hooks, TaskStart, hooks
from bridge_demo import arithmetic
memory = InMemorySpanExporter()

@hooks(name="app_installs_provider_late", description="test: the app's provider, after the bridge's start")
class Late(Hooks):
    async def on_task_start(self, data: TaskStart) -> None:
        from otel_bridge.hook import session
        if session.current() is None or calls:
            return  # the bridge starts first; the app installs its provider once
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)

with trace.get_tracer("app").start_as_current_span("application work before"):
    pass
eval(arithmetic(samples=2), model="offline/careful", display="none")
with trace.get_tracer("app").start_as_current_span("application work"):
    eval(arithmetic(samples=2), model="offline/careful", display="none")
print("GLOBAL", sorted({s.name for s in memory.get_finished_spans()}))
print("SET_CALLS", calls)
"""


def test_someone_elses_global_provider_does_not_hijack_the_spans(tmp_path: Path) -> None:
    """The app installs its global provider after the bridge started: the bridge's spans stay its
    own, and the bridge never installs (or replaces) a global provider itself."""
    env = subprocess_env(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_DIR": str(tmp_path / "spans"),
            "INSPECT_OTEL_EXPORTERS": "file",
            "INSPECT_LOG_DIR": str(tmp_path / "logs"),
        }
    )
    result = run_cli([sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT], env)
    assert result.returncode == 0, result.stderr
    assert "GLOBAL ['application work']" in result.stdout, result.stdout
    # only the app's own call (from the test hook), none by the bridge
    assert "SET_CALLS ['opentelemetry.sdk.trace']" in result.stdout, result.stdout
    tree = SpanTree(BridgeEnv(tmp_path).spans())
    assert len(tree.named(c.SPAN_SAMPLE)) == 4 and len(tree.named(c.SPAN_RUN)) == 2
    # the bridge's traces are its own: not parented under the application's current span
    assert all(s.parent_id is None for s in tree.named(c.SPAN_RUN) + tree.named(c.SPAN_SAMPLE))


def test_sample_spans_arrive_while_the_eval_runs(bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans are exported as they end: the first samples are on disk before the run ends."""
    seen_during_run: list[int] = []
    from inspect_ai.hooks import Hooks, RunEnd, hooks

    @hooks(name="probe_live_export", description="test probe")
    class Probe(Hooks):
        async def on_run_end(self, data: RunEnd) -> None:
            seen_during_run.append(len([s for s in bridge.spans() if s.name == c.SPAN_SAMPLE]))

    (log,) = eval(
        Task(dataset=arithmetic_dataset(6), solver=generate(), scorer=pattern(r"ANSWER:\s*(\d+)")),
        model=get_model("offline/careful", latency=0.6),
        max_samples=1,
        display="none",
    )
    assert log.status == "success"
    assert full_log(log).samples
    assert seen_during_run and seen_during_run[0] >= 3


def test_embedded_default_records_span_file_and_offline_wandb_run(tmp_path: Path) -> None:
    """Nothing configured, no API key, no network: a span file and an offline W&B run, locally."""
    env = subprocess_env({"INSPECT_OTEL_ENABLED": "1", "HOME": str(tmp_path / "home")})
    env.pop("WANDB_API_KEY", None)
    result = run_cli(
        [
            INSPECT,
            "eval",
            str(ROOT / "examples/bridge_demo.py@arithmetic"),
            "--model",
            "offline/careful",
            "-T",
            "samples=3",
            "--display",
            "none",
        ],
        env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (span_file,) = (tmp_path / "otel-spans").glob("*.jsonl")
    (task,) = SpanTree(list(read_span_file(span_file))).named(c.SPAN_TASK)
    (run_dir,) = find_run_dirs(tmp_path / "wandb")
    run = wait_for_run(run_dir)
    assert run.run_id == task.attr(c.RUN_ID)
    assert run.exit_code == 0
    accuracy = task.json_attr(c.TASK_METRICS)["pattern"]["accuracy"]
    assert [v for k, v in run.summary.items() if k.endswith("pattern/accuracy")] == [accuracy]
    assert "wandb sync" in result.stderr
    shown = run_cli([OTEL_BRIDGE, "show"], env, cwd=tmp_path)
    assert shown.returncode == 0 and "arithmetic · offline/careful" in shown.stdout


def test_sampling_keeps_or_drops_whole_sample_traces(
    bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    seed_span_ids(monkeypatch)
    (log,) = eval(arithmetic(samples=12), model="offline/careful", display="none")
    log = full_log(log)
    tree = SpanTree(bridge.spans())
    roots = tree.named(c.SPAN_SAMPLE)
    assert 0 < len(roots) < 12, "about half of the sample traces are kept"
    by_trace: dict[str, int] = {}
    for span in tree.spans:
        by_trace[span.trace_id] = by_trace.get(span.trace_id, 0) + 1
    for root in roots:
        (sample,) = [s for s in log.samples or [] if str(s.id) == root.attr(c.SAMPLE_ID)]
        assert tree.shape(root) == expected_shape(sample), "a kept trace is complete"
        assert by_trace[root.trace_id] == 1 + len(tree.descendants(root))
    assert all(s.parent_id is None or s.parent_id in tree.by_id for s in tree.spans), "no orphan spans"
    (task,) = tree.named(c.SPAN_TASK)  # the run and task spans, which carry the metrics, are always kept
    assert len(tree.named(c.SPAN_RUN)) == 1 and task.attr(c.SAMPLES_TOTAL) == 12
    # the rows a consumer waits for are the sample traces actually kept, not every sample
    assert task.attr(c.SAMPLES_TRACED) == len(roots)
