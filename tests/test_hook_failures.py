"""Failures are visible in the spans: model retries, sample retries, errors, limits, task errors,
eval-set task retries, several eval() calls in one process, and a cancelled run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from bridge_demo import arithmetic, arithmetic_quick
from inspect_ai import Task, eval, eval_set
from inspect_ai.event import ModelEvent, SandboxEvent
from inspect_ai.model import get_model
from inspect_ai.solver import Generate, TaskState, generate, solver

from otel_bridge import conventions as c
from otel_bridge.exporters.process import WorkerSpanProcessor
from otel_bridge.hook import session as sessions
from tests.support.bridge import INSPECT, BridgeEnv, full_log, subprocess_env
from tests.support.spantree import SpanTree, expected_shape

ROOT = Path(__file__).resolve().parent.parent


def test_each_failed_model_attempt_is_its_own_error_span(bridge: BridgeEnv) -> None:
    (log,) = eval(arithmetic(samples=3), model=get_model("offline/careful", fail_every=2), display="none")
    log = full_log(log)
    tree = SpanTree(bridge.spans())
    failed_events = [e for s in log.samples or [] for e in s.events if isinstance(e, ModelEvent) and e.error]
    all_events = [e for s in log.samples or [] for e in s.events if isinstance(e, ModelEvent)]
    failed_spans = [s for s in tree.spans if s.name.startswith("chat ") and s.status == "ERROR"]
    assert failed_events, "the flaky provider should have failed some calls"
    assert len(failed_spans) == len(failed_events)
    assert len([s for s in tree.spans if s.name.startswith("chat ")]) == len(all_events)
    for span in failed_spans:
        assert span.attr(c.ERROR_TYPE) == "FlakyProviderError"
        assert "transient failure" in span.status_message
    assert log.status == "success"


def test_sample_retries_are_separate_attempt_traces(bridge: BridgeEnv) -> None:
    (log,) = eval(
        arithmetic(samples=2),
        model=get_model("offline/careful", error_on="What is 10 "),
        retry_on_error=2,
        fail_on_error=False,
        display="none",
    )
    log = full_log(log)
    tree = SpanTree(bridge.spans())
    attempts = sorted(tree.sample(log.eval.eval_id, "q1", 1), key=lambda s: s.attr(c.SAMPLE_ATTEMPT))
    assert [s.attr(c.SAMPLE_ATTEMPT) for s in attempts] == [1, 2, 3]
    assert len({s.trace_id for s in attempts}) == 3
    for span in attempts[:2]:
        assert span.status == "ERROR" and span.attr(c.SAMPLE_WILL_RETRY) is True
        assert span.attr(c.SAMPLE_STATUS) == "retried"
    final = attempts[2]
    assert final.status == "ERROR" and final.attr(c.SAMPLE_STATUS) == "error"
    assert "refusing prompt" in final.attr(c.SAMPLE_ERROR)
    assert final.attr(c.ERROR_TYPE) == "ValueError"
    (ok,) = tree.sample(log.eval.eval_id, "q2", 1)
    assert ok.status == "UNSET"
    (task,) = tree.named(c.SPAN_TASK)
    assert task.attr(c.SAMPLES_ERRORED) == 1
    assert task.attr(c.TASK_STATUS) == log.status


def test_limit_hit_marks_the_sample(bridge: BridgeEnv) -> None:
    (log,) = eval(arithmetic(samples=2), model="offline/careful", message_limit=3, display="none")
    log = full_log(log)
    tree = SpanTree(bridge.spans())
    for sample in log.samples or []:
        assert sample.limit is not None
        (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
        assert root.status == "ERROR"
        assert root.attr(c.SAMPLE_LIMIT) == sample.limit.type == "message"
        assert root.attr(c.ERROR_TYPE) == "message_limit"
        assert root.attr(c.SAMPLE_STATUS) == "limit"


def test_task_error_still_ends_the_task_span(bridge: BridgeEnv) -> None:
    (log,) = eval(
        arithmetic(samples=3), model=get_model("offline/careful", error_on="What is 17 "), display="none"
    )
    assert log.status == "error"
    tree = SpanTree(bridge.spans())
    (task,) = tree.named(c.SPAN_TASK)
    assert task.status == "ERROR"
    assert task.attr(c.TASK_STATUS) == "error"
    assert "refusing prompt" in task.attr(c.TASK_ERROR)
    (run,) = tree.named(c.SPAN_RUN)
    assert run.status == "ERROR" and run.attr(c.RUN_STATUS) == "error"
    assert sessions.current() is not None and sessions.current().recorder.idle  # type: ignore[union-attr]


_FAILED_ONCE: list[bool] = []


@solver
def fail_first_time():  # type: ignore[no-untyped-def]
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if not _FAILED_ONCE:
            _FAILED_ONCE.append(True)
            raise RuntimeError("first attempt of this task fails")
        return state

    return solve


def test_eval_set_with_task_retry(bridge: BridgeEnv) -> None:
    _FAILED_ONCE.clear()
    task = Task(
        dataset=arithmetic(samples=2).dataset,
        solver=[fail_first_time(), generate()],
        scorer=arithmetic(samples=2).scorer,
        name="flaky_task",
    )
    success, logs = eval_set(
        [task],
        log_dir=str(bridge.root / "evalset"),
        model="offline/careful",
        retry_attempts=2,
        retry_wait=0.1,
        retry_connections=1.0,
        display="none",
    )
    assert success
    tree = SpanTree(bridge.spans())
    (eval_set_span,) = tree.named(c.SPAN_EVAL_SET)
    runs = tree.named(c.SPAN_RUN)
    assert runs and all(r.parent_id == eval_set_span.span_id for r in runs)
    tasks = sorted(tree.named(c.SPAN_TASK), key=lambda t: t.start_ns)
    assert len(tasks) == 2
    assert tasks[0].status == "ERROR" and tasks[1].status == "UNSET"
    assert tasks[0].attr(c.TASK_STATUS) == "retried"
    assert tasks[1].attr(c.TASK_STATUS) == "success"
    assert all(r.attr(c.RUN_STATUS) == "success" for r in runs), "a superseded attempt does not fail the run"
    assert tasks[0].attr(c.TASK_ID) == tasks[1].attr(c.TASK_ID)
    assert tasks[0].attr(c.EVAL_ID) != tasks[1].attr(c.EVAL_ID)
    final = full_log(logs[0])
    assert final.results is not None
    expected = {s.name: {m: v.value for m, v in s.metrics.items()} for s in final.results.scores}
    assert tasks[1].json_attr(c.TASK_METRICS) == expected
    assert all(s.attr(c.EVAL_SET_ID) == final.eval.eval_set_id for s in tree.spans)


def test_two_evals_in_one_process_do_not_leak(bridge: BridgeEnv) -> None:
    (first,) = eval(arithmetic(samples=2), model="offline/careful", display="none")
    (second,) = eval(arithmetic_quick(samples=3), model="offline/hasty", display="none")
    assert len(bridge.files()) == 2
    tree = SpanTree(bridge.spans())
    assert len(tree.named(c.SPAN_RUN)) == 2
    for log, samples in ((full_log(first), 2), (full_log(second), 3)):
        (task,) = [t for t in tree.named(c.SPAN_TASK) if t.attr(c.EVAL_ID) == log.eval.eval_id]
        (run,) = [r for r in tree.named(c.SPAN_RUN) if r.attr(c.RUN_ID) == log.eval.run_id]
        assert task.parent_id == run.span_id
        roots = [s for s in tree.named(c.SPAN_SAMPLE) if s.attr(c.EVAL_ID) == log.eval.eval_id]
        assert len(roots) == samples
        assert all(r.links == ((task.trace_id, task.span_id),) for r in roots)
        assert all(r.attr(c.RUN_ID) == log.eval.run_id for r in roots)
        for sample in log.samples or []:
            (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
            assert tree.shape(root) == expected_shape(sample)
    session = sessions.current()
    assert session is not None and session.recorder.idle


def test_cancelled_run_ends_every_span(bridge: BridgeEnv, tmp_path: Path) -> None:
    """Ctrl-C in the middle of `inspect eval`: the spans recorded so far end as cancelled."""
    env = subprocess_env(bridge.env())
    proc = subprocess.Popen(
        [
            INSPECT,
            "eval",
            "examples/bridge_demo.py@arithmetic",
            "--model",
            "offline/careful",
            "-M",
            "latency=0.3",
            "-T",
            "samples=30",
            "--max-samples",
            "2",
            "--display",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(s.name == c.SPAN_SAMPLE for s in bridge.spans()):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no sample span was written while the eval ran")
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    tree = SpanTree(bridge.spans())
    (task,) = tree.named(c.SPAN_TASK)
    assert task.status == "ERROR"
    assert task.attr(c.TASK_STATUS) == "cancelled"
    (run,) = tree.named(c.SPAN_RUN)
    assert run.status == "ERROR" and run.attr(c.RUN_STATUS) == "cancelled"
    finished = [s for s in tree.named(c.SPAN_SAMPLE) if s.attr(c.SAMPLE_STATUS) == "success"]
    assert 1 <= len(finished) < 30
    assert b"Traceback" not in stderr or b"otel_bridge" not in stderr


@solver
def run_in_sandbox():  # type: ignore[no-untyped-def]
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        from inspect_ai.util import sandbox

        await sandbox().exec(["sh", "-c", "echo sandboxed; exit 3"])
        await sandbox().write_file("note.txt", "hello")
        return state

    return solve


def test_sandbox_calls_are_spans(bridge: BridgeEnv) -> None:
    task = Task(
        dataset=arithmetic(samples=1).dataset,
        solver=[run_in_sandbox(), generate()],
        scorer=arithmetic(samples=1).scorer,
        sandbox="local",
    )
    (log,) = eval(task, model="offline/careful", display="none")
    log = full_log(log)
    tree = SpanTree(bridge.spans())
    sandbox_spans = sorted(tree.named(c.SPAN_SANDBOX), key=lambda s: s.start_ns)
    (sample,) = log.samples or []
    events = [e for e in sample.events if isinstance(e, SandboxEvent)]
    assert [s.attr(c.SANDBOX_ACTION) for s in sandbox_spans] == [e.action for e in events]
    assert {"exec", "write_file"} <= {e.action for e in events}
    (exec_span,) = [s for s in sandbox_spans if "echo sandboxed" in str(s.attr(c.SANDBOX_CMD))]
    (write_span,) = [s for s in sandbox_spans if s.attr(c.SANDBOX_ACTION) == "write_file"]
    assert exec_span.attr(c.SANDBOX_RESULT) == 3 and exec_span.status == "ERROR"
    assert write_span.attr(c.SANDBOX_FILE) == "note.txt" and write_span.status == "UNSET"
    solver_span = tree.by_id[exec_span.parent_id]
    assert solver_span.attr(c.SPAN_NAME) == "run_in_sandbox"
    (root,) = tree.sample(log.eval.eval_id, sample.id, sample.epoch)
    assert tree.shape(root) == expected_shape(sample)


@solver
def _kill_translator_worker():  # type: ignore[no-untyped-def]
    """Kills the W&B worker process in the middle of the eval (as an OOM killer would)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        session = sessions.current()
        assert session is not None
        (sink,) = [s for s in session.pipeline.destinations if s.name == "wandb"]
        assert isinstance(sink.processor, WorkerSpanProcessor)
        with contextlib.suppress(ProcessLookupError):
            os.kill(sink.processor.pid, signal.SIGKILL)
        return await generate(state)

    return solve


def test_a_dead_translator_worker_does_not_touch_the_eval(
    bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSPECT_OTEL_EXPORTERS", "file,wandb")
    started = time.monotonic()
    (log,) = eval(
        Task(dataset=arithmetic(samples=4).dataset, solver=[_kill_translator_worker()]),
        model="offline/careful",
        display="none",
    )
    elapsed = time.monotonic() - started
    assert log.status == "success" and log.results is not None
    assert log.results.completed_samples == 4
    sessions._close_at_exit()  # what exit does: must not hang on the dead worker
    assert time.monotonic() - started < elapsed + 15
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "wandb exporter process failed" in line]
    assert len(lines) == 1, err
    assert "otel-bridge sync <file> --to wandb" in lines[0]
    tree = SpanTree(bridge.spans())  # the span file has everything, for a later sync
    assert len(tree.named(c.SPAN_SAMPLE)) == 4
