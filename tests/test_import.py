"""``otel-bridge import``: real evals traced live, then their logs imported; the two span files compared.

The oracle for every span the import writes is the span the live hook wrote for the same eval
(and Inspect's own log, for what must be there): the same trees, names, kinds, attributes,
events and times, except the allow-list of docs/conventions.md ("Imported logs"), written out
again here so that a change to it must change this test too.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog, read_eval_log

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord, read_span_file
from tests.support.bridge import (
    INSPECT,
    OTEL_BRIDGE,
    ROOT,
    BridgeEnv,
    CliResult,
    inspect_eval,
    run_cli,
    subprocess_env,
)
from tests.support.otlp_capture import OtlpCapture

DEMO = str(ROOT / "examples" / "bridge_demo.py")
MS = 1_000_000

# What only a live run knows (docs/conventions.md, "Imported logs")
# the command line: Inspect's log does not record it; the eval's own redacted copy of the log
LIVE_ONLY_ATTRIBUTES = {"inspect.command_line", "inspect.log.redacted_copy"}
ORDER_ONLY_ATTRIBUTES = {"inspect.run.task_names", "wandb.display_name"}  # on the run span: task order
LIVE_ONLY_RESOURCE = {"service.instance.id"}  # the process that recorded the spans
HOOK_TIMED = {c.SPAN_RUN, c.SPAN_TASK, c.SPAN_TASK_STARTED}  # started/ended at hook-call times


@dataclass
class Recorded:
    env: BridgeEnv
    logs: list[EvalLog]
    live: list[SpanRecord]
    imported: list[SpanRecord]
    result: CliResult


def _spans(directory: Path) -> list[SpanRecord]:
    return [s for p in sorted(directory.glob("*.jsonl")) for s in read_span_file(p)]


def _import(env: BridgeEnv, *args: str) -> CliResult:
    return run_cli([OTEL_BRIDGE, "import", *args], subprocess_env(_no_hook(env)))


def _no_hook(env: BridgeEnv) -> dict[str, str]:
    return {k: v for k, v in env.env().items() if k not in ("INSPECT_OTEL_ENABLED", "INSPECT_REQUIRED_HOOKS")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    env = BridgeEnv(tmp_path_factory.mktemp("import"))
    live_env = subprocess_env(env.env())
    runs = [
        # 2 tasks × 2 models × 2 epochs: tools, a react agent, a self-check solver, two scorers
        [f"{DEMO}@arithmetic", f"{DEMO}@arithmetic_quick", "--model", "offline/careful,offline/hasty"]
        + ["-T", "samples=2", "--epochs", "2", "--max-samples", "4"],
        # a sample that errors twice (retry_on_error: its first attempt is live-only), model retries
        [f"{DEMO}@arithmetic", "--model", "offline/careful", "-T", "samples=3"]
        + ["-M", "error_on=What is 24", "-M", "fail_every=4", "--no-fail-on-error", "--retry-on-error", "1"],
        # every sample stops at a message limit
        [f"{DEMO}@arithmetic", "--model", "offline/hasty", "-T", "samples=2", "--message-limit", "4"],
        # a task that fails (its end comes from the run's end, not on_task_end)
        [
            f"{DEMO}@arithmetic_quick",
            "--model",
            "offline/hasty",
            "-T",
            "samples=3",
            "-M",
            "error_on=What is 17",
        ],
    ]
    for args in runs:
        result = inspect_eval([*args, "--log-dir", str(env.log_dir)], live_env)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    logs = [read_eval_log(str(p)) for p in sorted(env.log_dir.glob("*.eval"))]
    assert sorted(str(log.status) for log in logs) == ["error"] + ["success"] * 6
    out = env.root / "imported"
    result = _import(env, str(env.log_dir), "--dir", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return Recorded(env, logs, _spans(env.span_dir), _spans(out), result)


# ----------------------------------------------------------------- comparing two span files
def _retried(spans: list[SpanRecord]) -> set[str]:
    """Traces of sample attempts that failed and were retried (their events are not in the log)."""
    return {s.trace_id for s in spans if s.name == c.SPAN_SAMPLE and s.attr(c.SAMPLE_STATUS) == "retried"}


def _keyed(spans: list[SpanRecord]) -> dict[Any, SpanRecord]:
    """Each span by its place in its tree: the Inspect ids along its path from the root (and, in a
    sample, Inspect's own start time), never by OpenTelemetry ids, which live runs draw at random."""
    by_id = {s.span_id: s for s in spans}
    out: dict[Any, SpanRecord] = {}
    for span in spans:
        path = []
        node: SpanRecord | None = span
        while node is not None:
            ids = (c.RUN_ID, c.EVAL_ID, c.SAMPLE_UUID, c.SAMPLE_ATTEMPT, c.SPAN_ID)
            path.append((node.name, *(node.attr(k) for k in ids)))
            node = by_id.get(node.parent_id or "")
        in_sample = span.attr(c.SAMPLE_UUID) is not None and span.name != c.SPAN_SAMPLE
        key = (tuple(reversed(path)), span.start_ns if in_sample else None)
        assert key not in out, f"two spans at one place: {key}"
        out[key] = span
    return out


def _events(span: SpanRecord, timed: bool = True) -> list[Any]:
    return [
        (e.name, e.time_ns if timed else None, json.dumps(e.attributes, sort_keys=True)) for e in span.events
    ]


def test_import_makes_the_same_trees_as_live(recorded: Recorded) -> None:
    retried = _retried(recorded.live)
    live = _keyed([s for s in recorded.live if s.trace_id not in retried])
    imported = _keyed(recorded.imported)
    assert Counter(k[0][-1][0] for k in live) == Counter(k[0][-1][0] for k in imported)
    assert live.keys() == imported.keys()
    # the retried attempts are the only live spans left out: one per retry Inspect's log records
    retries = sum(len(s.error_retries or []) for log in recorded.logs for s in log.samples or [])
    assert retries == len(retried) == 1


def test_imported_spans_equal_live_ones_but_the_allow_list(recorded: Recorded) -> None:
    retried = _retried(recorded.live)
    live = _keyed([s for s in recorded.live if s.trace_id not in retried])
    _assert_same(live, _keyed(recorded.imported))


def _assert_same(
    live: dict[Any, SpanRecord],
    imported: dict[Any, SpanRecord],
    outcome_from_kept_logs: frozenset[str] = frozenset(),
) -> None:
    """Every imported span equals the live span at its place, but for the allow-list.

    ``outcome_from_kept_logs``: runs whose failed task attempts' logs Inspect removed; their
    outcome (status) is the remaining logs'.
    """
    for key, got in imported.items():
        want = live[key]
        where = f"{want.name} {key[0][-1]}"
        skip = LIVE_ONLY_ATTRIBUTES | (ORDER_ONLY_ATTRIBUTES if want.name == c.SPAN_RUN else set())
        if want.name == c.SPAN_RUN and want.attr(c.RUN_ID) in outcome_from_kept_logs:
            skip = skip | {"inspect.run.status", c.RUN_EVAL_IDS}
            want = replace(want, status=got.status, status_message=got.status_message)
        assert got.kind == want.kind, where
        assert (got.status, got.status_message) == (want.status, want.status_message), where
        assert not LIVE_ONLY_ATTRIBUTES & got.attributes.keys(), where
        assert {k: v for k, v in got.attributes.items() if k not in skip} == {
            k: v for k, v in want.attributes.items() if k not in skip
        }, where
        if want.name == c.SPAN_RUN and want.attr(c.RUN_ID) in outcome_from_kept_logs:
            assert set(got.attr(c.RUN_TASK_NAMES)) < set(want.attr(c.RUN_TASK_NAMES))
            assert set(got.attr(c.RUN_EVAL_IDS)) < set(want.attr(c.RUN_EVAL_IDS))  # the removed logs
        elif want.name == c.SPAN_RUN:
            assert sorted(got.attr(c.RUN_TASK_NAMES)) == sorted(want.attr(c.RUN_TASK_NAMES))
        clean = {k: v for k, v in want.resource.items() if k not in LIVE_ONLY_RESOURCE}
        assert {k: v for k, v in got.resource.items() if k not in LIVE_ONLY_RESOURCE} == clean
        if want.name in HOOK_TIMED or want.name == c.SPAN_SAMPLE:
            _check_hook_timed(want, got, where)
        else:  # every span inside a sample: Inspect's own times
            assert (got.start_ns, got.end_ns) == (want.start_ns, want.end_ns) or _ends_with_sample(
                want, got, imported
            ), where
            assert _events(got) == _events(want), where


def _ends_with_sample(want: SpanRecord, got: SpanRecord, imported: dict[Any, SpanRecord]) -> bool:
    """A span the log gives no end (a failed model call): live, it ended when Inspect delivered
    it with the finished sample; imported, at the sample's completed_at (where its root ends)."""
    root = next(s for s in imported.values() if s.trace_id == got.trace_id and s.name == c.SPAN_SAMPLE)
    return (
        got.start_ns == want.start_ns
        and want.status == "ERROR"
        and got.end_ns == root.end_ns
        and got.end_ns - 50 * MS < want.end_ns <= got.end_ns  # live: delivered just before completed_at
    )


def _check_hook_timed(want: SpanRecord, got: SpanRecord, where: str) -> None:
    if want.name == c.SPAN_SAMPLE:
        # live: when the hook saw the sample begin; imported: the log's first event (its init span)
        assert abs(got.start_ns - want.start_ns) < 5 * MS, where
        # live: on_sample_end's time; imported: the sample's completed_at, a little before it
        assert want.end_ns - 500 * MS < got.end_ns <= want.end_ns + MS, where
        assert _events(got, timed=False) == _events(want, timed=False), where
        assert all(e.time_ns == got.end_ns for e in got.events), where
    else:
        # live: the hook calls' times; imported: the log's (task times there are whole seconds,
        # so the first sample's init stands in for a task's start)
        assert want.start_ns <= got.start_ns < want.start_ns + 5_000 * MS, where
        if want.name == c.SPAN_TASK_STARTED:  # a marker: it ends as it starts
            assert got.end_ns == got.start_ns, where
        else:
            assert want.end_ns - 5_000 * MS < got.end_ns <= want.end_ns, where
        assert _events(got) == _events(want), where


def test_every_imported_sample_is_one_of_inspects(recorded: Recorded) -> None:
    samples = {(s.uuid, len(s.error_retries or []) + 1) for log in recorded.logs for s in log.samples or []}
    roots = [s for s in recorded.imported if s.name == c.SPAN_SAMPLE]
    assert sorted((s.attr(c.SAMPLE_UUID), s.attr(c.SAMPLE_ATTEMPT)) for s in roots) == sorted(samples)
    assert "inspect.command_line" not in {k for s in recorded.imported for k in s.attributes}


# ----------------------------------------------------------------- identity, twice, dry run
def test_importing_again_gives_the_same_ids_and_writes_nothing_twice(
    recorded: Recorded, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    assert _import(recorded.env, str(recorded.env.log_dir), "--dir", str(again), "--quiet").returncode == 0
    first = sorted((s.trace_id, s.span_id, s.parent_id, s.name) for s in recorded.imported)
    assert sorted((s.trace_id, s.span_id, s.parent_id, s.name) for s in _spans(again)) == first
    before = {p.name: p.read_bytes() for p in again.glob("*.jsonl")}
    result = _import(recorded.env, str(recorded.env.log_dir), "--dir", str(again), "--quiet")
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in again.glob("*.jsonl")} == before
    assert f"already in {again}" in result.stdout


def test_importing_a_run_traced_live_adds_nothing_to_its_span_file(
    recorded: Recorded, tmp_path: Path
) -> None:
    live_dir = tmp_path / "live"
    shutil.copytree(recorded.env.span_dir, live_dir)
    before = {p.name: p.read_bytes() for p in live_dir.glob("*.jsonl")}
    result = _import(recorded.env, str(recorded.env.log_dir), "--dir", str(live_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    after = {p.name: p.read_bytes() for p in live_dir.glob("*.jsonl")}
    # every span the import makes is already there (matched by Inspect's ids and times)
    assert after == before, "the import appended spans a live file already held"


def test_import_names_files_as_live(recorded: Recorded) -> None:
    live = sorted(p.name.split("_", 1)[1] for p in recorded.env.files())
    imported = sorted(p.name.split("_", 1)[1] for p in (recorded.env.root / "imported").glob("*.jsonl"))
    assert imported == live == sorted(f"{run}.jsonl" for run in {log.eval.run_id for log in recorded.logs})


def test_dry_run_prints_what_it_would_write_and_writes_nothing(recorded: Recorded, tmp_path: Path) -> None:
    target = tmp_path / "nothing"
    result = _import(recorded.env, str(recorded.env.log_dir), "--dir", str(target), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not target.exists()
    out = result.stdout
    for log in recorded.logs:
        assert f"run {log.eval.run_id}" in out
        line = next(x for x in out.splitlines() if log.location in x)
        assert (
            f"{log.eval.task} · {log.eval.model} [{log.status}]: {len(log.samples or [])} sample(s)" in line
        )
    samples = sum(len(log.samples or []) for log in recorded.logs)
    assert f"would import {len(recorded.imported)} spans from {samples} samples in 7 log(s), 4 run(s)" in out


def test_help_lists_every_option() -> None:
    result = run_cli([OTEL_BRIDGE, "import", "--help"], subprocess_env())
    assert result.returncode == 0
    for option in ("PATH", "--to", "--dir", "--dry-run", "--quiet", "file, weave, wandb, otlp", "s3://"):
        assert option in result.stdout


# ----------------------------------------------------------------- bad input
def test_bad_inputs_are_one_message_each_and_the_rest_still_imports(
    recorded: Recorded, tmp_path: Path
) -> None:
    good = recorded.logs[0]
    mess = tmp_path / "mess"
    (mess / "nested").mkdir(parents=True)
    shutil.copy(good.location, mess / "nested" / Path(good.location).name)
    data = Path(good.location).read_bytes()
    (mess / "truncated.eval").write_bytes(data[: len(data) // 2])
    (mess / "garbage.eval").write_bytes(os.urandom(2048))
    (mess / "notalog.json").write_text('{"hello": "world"}')
    (mess / "README.txt").write_text("not a log\n")
    named_json = tmp_path / "named.json"  # given by name: it was meant to be a log
    named_json.write_text('{"hello": "world"}')
    missing = tmp_path / "does-not-exist.eval"
    out = tmp_path / "spans"
    result = _import(recorded.env, str(mess), str(missing), str(named_json), "--dir", str(out), "--quiet")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for name in ("truncated.eval", "garbage.eval", "named.json"):
        (line,) = (e for e in errors if name in e)
        assert "not a readable Inspect log" in line
    assert [e for e in errors if str(missing) in e] == [f"error: {missing}: no such file or directory"]
    assert len(errors) == 4, errors
    for name in ("README.txt", "notalog.json"):  # in a directory: not logs, said once each
        assert result.stderr.count(f"skipped (not an Inspect log): {mess / name}") == 1
    # the good log is imported all the same: one sample trace per sample of Inspect's log
    roots = [s for s in _spans(out) if s.name == c.SPAN_SAMPLE]
    assert sorted(s.attr(c.SAMPLE_UUID) for s in roots) == sorted(s.uuid for s in good.samples or [])


def test_an_unreadable_file_is_named_and_the_others_import(recorded: Recorded, tmp_path: Path) -> None:
    good, other = recorded.logs[0], recorded.logs[1]
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(good.location, logs / Path(good.location).name)
    locked = logs / Path(other.location).name
    if os.geteuid() == 0:  # root reads any mode: a log listed in the directory whose target is gone
        locked.symlink_to(tmp_path / "moved-away" / locked.name)
    else:
        shutil.copy(other.location, locked)
        locked.chmod(0)
    result = _import(recorded.env, str(logs), "--dir", str(tmp_path / "spans"), "--quiet")
    assert result.returncode == 1
    assert [x for x in result.stderr.splitlines() if x.startswith("error:")] == [
        x for x in result.stderr.splitlines() if str(locked) in x
    ]
    assert any(s.attr(c.EVAL_ID) == good.eval.eval_id for s in _spans(tmp_path / "spans"))


# ----------------------------------------------------------------- an eval set with a task retry
FLAKY = """
import os
from bridge_demo import arithmetic_dataset
from inspect_ai import Task, task
from inspect_ai.scorer import pattern
from inspect_ai.solver import generate, solver


@solver
def fail_if_told():
    async def solve(state, generate):
        if os.environ.get("FLAKY_FAIL") == "1":
            raise RuntimeError("flaky failure (FLAKY_FAIL=1)")
        return state

    return solve


@task
def flaky():
    return Task(
        dataset=arithmetic_dataset(2, name="flaky"),
        solver=[fail_if_told(), generate()],
        scorer=pattern(r"ANSWER:\\s*(-?\\d+)"),
    )
"""


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Two eval-set invocations: the flaky task fails (and is retried, and fails) in the first,
    and the second runs it again; Inspect keeps the final logs only."""
    env = BridgeEnv(tmp_path_factory.mktemp("import-eval-set"))
    (env.root / "flaky_task.py").write_text(FLAKY)
    args = [INSPECT, "eval-set", f"{env.root / 'flaky_task.py'}@flaky", f"{DEMO}@arithmetic_quick"]
    args += ["--model", "offline/careful", "--log-dir", str(env.log_dir), "--retry-attempts", "1"]
    args += ["--retry-wait", "0", "--display", "none"]
    first = run_cli(args, subprocess_env({**env.env(), "FLAKY_FAIL": "1"}))
    second = run_cli(args, subprocess_env(env.env()))
    assert (first.returncode, second.returncode) == (1, 0), first.stderr[-2000:] + second.stderr[-2000:]
    logs = [read_eval_log(str(p)) for p in sorted(env.log_dir.glob("*.eval"))]
    assert sorted(log.eval.task for log in logs) == ["arithmetic_quick", "flaky"]
    out = env.root / "imported"
    result = _import(env, str(env.log_dir), "--dir", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr  # Inspect's logs.json / eval-set.json are not reported
    return Recorded(env, logs, _spans(env.span_dir), _spans(out), result)


def _no_eval_set(spans: list[SpanRecord]) -> list[SpanRecord]:
    return [s for s in spans if s.name != c.SPAN_EVAL_SET]


def test_eval_set_import_equals_live_but_the_attempts_inspect_removed(eval_set: Recorded) -> None:
    live = _keyed(_no_eval_set(eval_set.live))
    imported = _keyed(_no_eval_set(eval_set.imported))
    assert imported.keys() <= live.keys()
    # live only: the failed task attempts, whose logs Inspect replaced with the retry's
    kept = {log.eval.eval_id for log in eval_set.logs}
    missing = {k for k in live.keys() - imported.keys()}
    assert missing and all(live[k].attr(c.EVAL_ID) not in kept for k in missing)
    statuses = {live[k].attr(c.TASK_STATUS) for k in missing if live[k].name == c.SPAN_TASK}
    assert statuses == {"retried", "error"}
    first_run = frozenset(live[k].attr(c.RUN_ID) for k in missing)
    _assert_same(live, imported, outcome_from_kept_logs=first_run)
    (run,) = (s for s in imported.values() if s.name == c.SPAN_RUN and s.attr(c.RUN_ID) in first_run)
    assert run.attr("inspect.run.status") == "success"  # its remaining log (arithmetic_quick) succeeded


def test_eval_set_spans_wrap_each_run_as_live(eval_set: Recorded) -> None:
    (log_dir,) = {s.attr("inspect.eval_set.log_dir") for s in eval_set.live if s.name == c.SPAN_EVAL_SET}
    sets = {s.span_id: s for s in eval_set.imported if s.name == c.SPAN_EVAL_SET}
    runs = [s for s in eval_set.imported if s.name == c.SPAN_RUN]
    assert len(sets) == len(runs) == len({log.eval.run_id for log in eval_set.logs}) == 2
    for run in runs:
        parent = sets[run.parent_id or ""]
        assert parent.trace_id == run.trace_id and parent.start_ns <= run.start_ns
        assert parent.attr(c.EVAL_SET_ID) == eval_set.logs[0].eval.eval_set_id
        assert parent.attr("inspect.eval_set.log_dir") == log_dir


def test_eval_set_imported_into_its_live_span_files_adds_nothing(eval_set: Recorded, tmp_path: Path) -> None:
    live_dir = tmp_path / "live"
    shutil.copytree(eval_set.env.span_dir, live_dir)
    before = {p.name: p.read_bytes() for p in live_dir.glob("*.jsonl")}
    result = _import(eval_set.env, str(eval_set.env.log_dir), "--dir", str(live_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in live_dir.glob("*.jsonl")} == before


# ----------------------------------------------------------------- inspect eval-retry
@pytest.fixture(scope="module")
def retried(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """A task that fails, then ``inspect eval-retry`` of its log (a new run, traced live too)."""
    env = BridgeEnv(tmp_path_factory.mktemp("import-eval-retry"))
    (env.root / "flaky_task.py").write_text(FLAKY)
    task = f"{env.root / 'flaky_task.py'}@flaky"
    args = ["--model", "offline/careful", "--log-dir", str(env.log_dir)]
    failed = inspect_eval([task, *args], subprocess_env({**env.env(), "FLAKY_FAIL": "1"}))
    (log_file,) = env.log_dir.glob("*.eval")
    assert read_eval_log(str(log_file), header_only=True).status == "error", failed.stderr[-2000:]
    retry = run_cli(
        [INSPECT, "eval-retry", str(log_file), *args[2:], "--display", "none"], subprocess_env(env.env())
    )
    assert retry.returncode == 0, retry.stderr[-2000:]
    logs = [read_eval_log(str(p)) for p in sorted(env.log_dir.glob("*.eval"))]
    assert sorted(str(log.status) for log in logs) == ["error", "success"]
    out = env.root / "imported"
    result = _import(env, str(env.log_dir), "--dir", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return Recorded(env, logs, _spans(env.span_dir), _spans(out), result)


def test_eval_retry_logs_import_as_their_two_live_runs(retried: Recorded) -> None:
    live, imported = _keyed(retried.live), _keyed(retried.imported)
    assert imported.keys() == live.keys()
    _assert_same(live, imported)
    runs = {s.attr(c.RUN_ID): s.attr("inspect.run.status") for s in retried.imported if s.name == c.SPAN_RUN}
    assert runs == {log.eval.run_id: str(log.status) for log in retried.logs}


def test_import_to_otlp_delivers_the_spans_it_writes(recorded: Recorded) -> None:
    with OtlpCapture() as capture:
        env = {**_no_hook(recorded.env), "OTEL_EXPORTER_OTLP_ENDPOINT": capture.http_endpoint}
        result = run_cli(
            [OTEL_BRIDGE, "import", str(recorded.env.log_dir), "--to", "otlp", "--quiet"], subprocess_env(env)
        )
        assert result.returncode == 0, result.stderr
        received = capture.wait_for(len(recorded.imported))
    # the same spans as the span-file import (ids derived from Inspect's, so the same ids)
    assert {s.key for s in received} == {(s.trace_id, s.span_id) for s in recorded.imported}


# ----------------------------------------------------------------- a cancelled run
CANCEL = """
import os
import sys
from pathlib import Path

import anyio
from bridge_demo import arithmetic
from inspect_ai import eval_async
from inspect_ai.model import get_model

spans, logs = Path(sys.argv[1]), sys.argv[2]
os.environ["INSPECT_DISPLAY"] = "none"


def samples_recorded() -> int:
    return sum(f.read_text().count('"inspect.sample"') for f in spans.glob("*.jsonl"))


async def main() -> None:
    async with anyio.create_task_group() as group:

        async def cancel_after_first_samples() -> None:
            while samples_recorded() < 2:  # cancel mid-run, once samples have finished
                await anyio.sleep(0.1)
            group.cancel_scope.cancel()

        group.start_soon(cancel_after_first_samples)
        slow = get_model("offline/careful", latency=0.2)
        await eval_async(arithmetic(samples=20), model=slow, log_dir=logs, max_samples=2)


anyio.run(main)
"""


@pytest.fixture(scope="module")
def cancelled(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    env = BridgeEnv(tmp_path_factory.mktemp("import-cancelled"))
    (env.root / "cancel.py").write_text(CANCEL)
    run = run_cli(
        [sys.executable, str(env.root / "cancel.py"), str(env.span_dir), str(env.log_dir)],
        subprocess_env(env.env()),
    )
    logs = [read_eval_log(str(p)) for p in sorted(env.log_dir.glob("*.eval"))]
    assert [str(log.status) for log in logs] == ["cancelled"], run.stderr[-3000:]
    out = env.root / "imported"
    result = _import(env, str(env.log_dir), "--dir", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return Recorded(env, logs, _spans(env.span_dir), _spans(out), result)


def test_cancelled_run_imports_what_its_log_holds(cancelled: Recorded) -> None:
    live, imported = _keyed(cancelled.live), _keyed(cancelled.imported)
    assert imported.keys() == live.keys()
    logged = {s.uuid for s in cancelled.logs[0].samples or []}
    assert {s.attr(c.SAMPLE_UUID) for s in imported.values() if s.name == c.SPAN_SAMPLE} == logged
    # live, the run and its task end with the cancelling exception (Inspect passes no logs);
    # imported, from the log: status cancelled, with the results it holds
    ends = {c.SPAN_RUN, c.SPAN_TASK}
    _assert_same(live, {k: v for k, v in imported.items() if v.name not in ends})
    for key, got in imported.items():
        if got.name in ends:
            want = live[key]
            assert got.status == want.status == "ERROR"
            assert got.attr("inspect.run.status", "cancelled") == want.attr("inspect.run.status", "cancelled")
    (task,) = (s for s in imported.values() if s.name == c.SPAN_TASK)
    log = cancelled.logs[0]
    assert task.attr(c.TASK_STATUS) == "cancelled" and task.status_message == "task cancelled"
    assert log.results is not None
    assert task.json_attr(c.TASK_METRICS) == {
        sc.name: {n: m.value for n, m in sc.metrics.items()} for sc in log.results.scores
    }
