"""The W&B Models sink against the real wandb SDK (offline), read back from the ``.wandb`` log.

Every scenario runs real Inspect evals with the bridge's ``wandb`` exporter in its own Python
process (wandb-core and the hook session are process-global), all scenarios in parallel, once
per test session. The same module is the scenario runner: ``python -m tests.test_wandb_sink
<scenario> <root>``. Assertions compare what W&B recorded with Inspect's own ``.eval`` logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge import ROOT, subprocess_env
from tests.support.wandb_log import WandbRun, load_runs, merge_runs, wait_for_run

OTEL_BRIDGE = str(Path(sys.executable).parent / "otel-bridge")
PROJECT = "bridge-tests"
RUN_NAME_TEMPLATE = "{tasks} on {models} [{run_id}]"


# ============================================================================================
# Scenario runner (executed in a child process)


def _flaky_task() -> Any:
    """A task that fails while FLAKY_FAIL=1: identical task identity in both eval-set invocations."""
    from bridge_demo import arithmetic_dataset
    from inspect_ai import Task
    from inspect_ai.scorer import pattern
    from inspect_ai.solver import Generate, TaskState, generate, solver

    @solver
    def fail_if_told():  # type: ignore[no-untyped-def]
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            if os.environ.get("FLAKY_FAIL") == "1":
                raise RuntimeError("flaky failure (FLAKY_FAIL=1)")
            return state

        return solve

    return Task(
        name="flaky",
        dataset=arithmetic_dataset(2, name="flaky"),
        solver=[fail_if_told(), generate()],
        scorer=pattern(r"ANSWER:\s*(-?\d+)"),
    )


def _scenario(name: str, root: Path) -> dict[str, Any]:
    import anyio
    from bridge_demo import arithmetic, arithmetic_quick
    from inspect_ai import eval, eval_async, eval_set
    from inspect_ai.model import get_model

    logs_dir = str(root / "logs")
    careful = get_model("offline/careful")
    if name == "main":
        logs = eval(
            [arithmetic(samples=3), arithmetic_quick(samples=2)],
            model=[careful, get_model("offline/hasty")],
            epochs=2,
            max_tasks=4,
            log_dir=logs_dir,
            display="none",
        )
        return {"logs": [log.location for log in logs]}
    if name == "two_evals":
        first = eval(arithmetic(samples=2), model=careful, log_dir=logs_dir, display="none")
        second = eval(arithmetic(samples=3), model=careful, log_dir=logs_dir, display="none")
        return {"logs": [first[0].location, second[0].location]}
    if name == "error":
        model = get_model("offline/careful", error_on="What is 10 + 16")
        logs = eval(arithmetic(samples=3), model=model, log_dir=logs_dir, display="none")
        return {"logs": [log.location for log in logs]}
    if name == "capture_off":
        logs = eval(arithmetic(samples=3), model=careful, log_dir=logs_dir, display="none")
        return {"logs": [log.location for log in logs]}
    if name == "cancel":
        os.environ["INSPECT_DISPLAY"] = "none"

        def samples_recorded() -> int:
            files = (root / "spans").glob("*.jsonl")
            return sum(f.read_text().count('"inspect.sample"') for f in files)

        async def cancelled() -> None:
            slow = get_model("offline/careful", latency=0.2)
            async with anyio.create_task_group() as group:

                async def cancel_after_first_samples() -> None:
                    while samples_recorded() < 2:  # cancel mid-run, once samples have finished
                        await anyio.sleep(0.1)
                    group.cancel_scope.cancel()

                group.start_soon(cancel_after_first_samples)
                await eval_async(arithmetic(samples=20), model=slow, log_dir=logs_dir, max_samples=2)

        anyio.run(cancelled)
        return {"logs": [str(p) for p in sorted((root / "logs").glob("*.eval"))]}
    if name.startswith("eval_set"):
        ok, logs = eval_set(
            [_flaky_task(), arithmetic(samples=2)],
            model=careful,
            log_dir=logs_dir,
            retry_attempts=1,
            retry_wait=0.1,
            display="none",
        )
        return {"ok": ok, "logs": [log.location for log in logs]}
    raise ValueError(name)


def _child_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    env = subprocess_env(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_EXPORTERS": "file,wandb",
            "INSPECT_OTEL_DIR": str(root / "spans"),
            "INSPECT_REQUIRED_HOOKS": "otel_bridge",
            "INSPECT_OTEL_WANDB_PROJECT": PROJECT,
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(root),
            "WANDB_DATA_DIR": str(root / "data"),
            "WANDB_CACHE_DIR": str(root / "cache"),
            "WANDB_CONFIG_DIR": str(root / "config"),
            "HOME": str(root),  # no ~/.netrc: the no-API-key path
        }
    )
    env.pop("WANDB_API_KEY", None)
    for key, value in extra.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)  # "" removes a variable
    return env


def _spawn(args: list[str], root: Path, extra: dict[str, str]) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=ROOT,
        env=_child_env(root, extra),
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    lines = proc.stdout.strip().splitlines()
    result: dict[str, Any] = {}
    if lines and lines[-1].startswith("{"):
        result = json.loads(lines[-1])
    result.update(returncode=proc.returncode, stderr=proc.stderr, seconds=time.monotonic() - started)
    return result


def _run_scenario(name: str, root: Path, extra: dict[str, str] | None = None) -> dict[str, Any]:
    args = [sys.executable, "-m", "tests.test_wandb_sink", name, str(root)]
    result = _spawn(args, root, extra or {})
    assert result["returncode"] == 0, f"scenario {name} failed:\n{result['stderr'][-4000:]}"
    result["root"] = root
    return result


def _sync(
    span_dir: Path, root: Path, settings: dict[str, str] | None = None, returncode: int = 0
) -> dict[str, Any]:
    result = _spawn([OTEL_BRIDGE, "sync", str(span_dir), "--to", "wandb", "--quiet"], root, settings or {})
    assert result["returncode"] == returncode, result["stderr"][-4000:]
    result["root"] = root
    return result


# ============================================================================================
# Fixtures: every scenario once, three at a time


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("wandb-sink")
    notes = base / "notes.txt"
    notes.write_text("extra file for W&B\n")

    def main_then_syncs() -> dict[str, dict[str, Any]]:
        settings = {"INSPECT_OTEL_WANDB_FILES": str(notes), "INSPECT_OTEL_WANDB_TAGS": "ci,nightly"}
        main = _run_scenario("main", base / "main", settings)
        synced = _sync(base / "main" / "spans", base / "synced", settings)
        # a killed process: the span file ends before the run's end was recorded
        killed_dir = base / "killed-spans"
        killed_dir.mkdir()
        lines = [
            ln for f in sorted((base / "main" / "spans").glob("*.jsonl")) for ln in f.read_text().splitlines()
        ]
        cut = next(i for i, ln in enumerate(lines) if '"inspect.run"' in ln)
        assert cut > 0, "the run span is in the first batch: nothing to cut"
        (killed_dir / "killed.jsonl").write_text("\n".join(lines[:cut]) + "\n")
        killed = _sync(killed_dir, base / "killed")
        # W&B down: an API key, but the server refuses connections
        down_env = {
            **settings,
            "WANDB_MODE": "",
            "WANDB_API_KEY": "x" * 40,
            "WANDB_BASE_URL": "http://127.0.0.1:9",
        }
        # sync exits 1: nothing reached W&B (the run is kept offline for `wandb sync`)
        down = _sync(base / "main" / "spans", base / "down", down_env, returncode=1)
        return {"main": main, "synced": synced, "killed": killed, "down": down}

    def eval_set_twice() -> dict[str, dict[str, Any]]:
        root = base / "eval_set"
        first = _run_scenario("eval_set_1", root, {"FLAKY_FAIL": "1"})
        first["read"] = _logs(first)  # eval_set replaces the failed log when it retries
        second = _run_scenario("eval_set_2", root, {"FLAKY_FAIL": "0"})
        synced = _sync(root / "spans", base / "eval_set_synced")
        return {"eval_set_1": first, "eval_set_2": second, "eval_set_synced": synced}

    jobs = {
        "two_evals": lambda: {
            "two_evals": _run_scenario(
                "two_evals", base / "two_evals", {"INSPECT_OTEL_WANDB_RUN_NAME": RUN_NAME_TEMPLATE}
            )
        },
        "error": lambda: {"error": _run_scenario("error", base / "error")},
        "capture_off": lambda: {
            "capture_off": _run_scenario(
                "capture_off",
                base / "capture_off",
                {
                    "INSPECT_OTEL_CAPTURE_CONTENT": "false",
                    "INSPECT_OTEL_WANDB_TABLE_MAX_ROWS": "2",
                    "INSPECT_OTEL_WANDB_LOG_ARTIFACT": "false",
                },
            )
        },
        "cancel": lambda: {"cancel": _run_scenario("cancel", base / "cancel")},
    }
    out: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(main_then_syncs), pool.submit(eval_set_twice)]
        futures += [pool.submit(job) for job in jobs.values()]
        for future in futures:
            out.update(future.result())
    return out


def _only_run(root: Path) -> WandbRun:
    runs = load_runs(root)
    assert len(runs) == 1, f"expected one W&B run under {root}, found {sorted(runs)}"
    (segments,) = runs.values()
    assert len(segments) == 1
    return wait_for_run(segments[0].run_dir)


def _logs(outcome: dict[str, Any]) -> list[Any]:
    from inspect_ai.log import read_eval_log

    return [read_eval_log(location) for location in outcome["logs"]]


def _label(log: Any) -> str:
    return f"{log.eval.task}/{log.eval.model}"


def _pair_keys(row: dict[str, Any], labels: list[str]) -> set[str]:
    return {label for label in labels for key in row if key.startswith(label + "/")}


def _assert_summary_matches_log(run: WandbRun, log: Any) -> None:
    label = _label(log)
    s = run.summary
    assert log.results is not None
    for score in log.results.scores:
        for metric in score.metrics.values():
            assert s[f"{label}/{score.name}/{metric.name}"] == pytest.approx(metric.value), (label, metric)
    assert s[f"{label}/samples_total"] == log.results.total_samples
    assert s[f"{label}/samples_completed"] == log.results.completed_samples
    assert s[f"{label}/samples_errored"] == sum(1 for x in log.samples or [] if x.error is not None)
    assert s[f"{label}/status"] == log.status
    assert s[f"{label}/log_location"] == _path(log.location)
    assert s[f"{label}/eval_id"] == log.eval.eval_id


def _path(location: str) -> str:
    return location.removeprefix("file://")


# ============================================================================================
# 2 tasks × 2 models × 2 epochs


@pytest.fixture(scope="module")
def main_run(outcomes: dict[str, dict[str, Any]]) -> WandbRun:
    return _only_run(outcomes["main"]["root"])


@pytest.fixture(scope="module")
def main_logs(outcomes: dict[str, dict[str, Any]]) -> list[Any]:
    logs = _logs(outcomes["main"])
    assert len(logs) == 4 and all(log.status == "success" for log in logs)
    return logs


def test_identity(main_run: WandbRun, main_logs: list[Any], outcomes: dict[str, dict[str, Any]]) -> None:
    run_id = main_logs[0].eval.run_id
    assert main_run.run_id == run_id
    assert main_run.project == PROJECT
    assert main_run.job_type == "eval"
    assert main_run.name == "arithmetic, arithmetic_quick · offline/careful, offline/hasty"
    assert main_run.group == "arithmetic" or main_run.group == "arithmetic_quick"
    assert set(main_run.tags) == {
        "task:arithmetic",
        "task:arithmetic_quick",
        "model:offline/careful",
        "model:offline/hasty",
        "dataset:arithmetic",
        "dataset:arithmetic_quick",
        "ci",
        "nightly",
    }
    # offline with no API key, and the user is told how to upload
    assert "upload it with `wandb sync " in outcomes["main"]["stderr"]
    assert str(main_run.run_dir) in outcomes["main"]["stderr"]


def test_config_per_task_and_model(main_run: WandbRun, main_logs: list[Any]) -> None:
    for log in main_logs:
        cfg = main_run.config[_label(log)]
        spec = log.eval
        assert (cfg["task"], cfg["model"], cfg["task_id"]) == (spec.task, spec.model, spec.task_id)
        assert cfg["task_args"] == spec.task_args
        assert cfg["model_args"] == spec.model_args
        assert cfg["generate_config"] == spec.model_generate_config.model_dump(exclude_none=True)
        assert cfg["eval_config"]["epochs"] == spec.config.epochs == 2
        assert cfg["dataset"] == {"name": spec.dataset.name, "samples": spec.dataset.samples}
        assert cfg["scorers"] == [s.name for s in spec.scorers or []]
    spec = main_logs[0].eval
    assert main_run.config["packages"] == spec.packages
    if spec.revision is not None:
        assert main_run.config["git"]["commit"] == spec.revision.commit
    inspect_cfg = main_run.config["inspect"]
    assert inspect_cfg["run_ids"] == [spec.run_id]
    assert "test_wandb_sink.py main" in inspect_cfg["command_line"]
    assert inspect_cfg["version"] == spec.packages["inspect_ai"]


def test_history_rows_per_pair(main_run: WandbRun, main_logs: list[Any]) -> None:
    labels = [_label(log) for log in main_logs]
    for log in main_logs:
        label = _label(log)
        rows = [r for r in main_run.history if f"{label}/samples" in r]
        n = log.results.completed_samples
        # one row per finished sample (x = samples completed so far), then Inspect's final values
        assert [r[f"{label}/samples"] for r in rows] == [*range(1, n + 1), n]
        assert rows[-1][f"{label}/tokens"] == log.stats.model_usage[log.eval.model].total_tokens
        for score in log.results.scores:
            for metric in score.metrics.values():
                assert rows[-1][f"{label}/{score.name}/{metric.name}"] == pytest.approx(metric.value)
        # running accuracy: after every sample, the mean of the numeric scores seen so far
        numeric = {
            (str(s.id), s.epoch): 1.0 if s.scores["pattern"].value == "C" else 0.0 for s in log.samples or []
        }
        total = sum(numeric.values())
        assert rows[-2][f"{label}/pattern/accuracy"] == pytest.approx(total / n)
        for r in rows[:-1]:
            k = r[f"{label}/samples"]
            acc = r[f"{label}/pattern/accuracy"]
            assert acc * k == pytest.approx(round(acc * k)), "accuracy so far is a fraction of k"
        metric = main_run.metric(f"{label}/pattern/accuracy")
        assert metric is not None and metric.step_metric == f"{label}/samples"
    # concurrent pairs never share a row (their counters are separate)
    for row in main_run.history:
        assert len(_pair_keys(row, labels)) <= 1, row


def test_summary_equals_inspect_log(main_run: WandbRun, main_logs: list[Any]) -> None:
    for log in main_logs:
        _assert_summary_matches_log(main_run, log)
    by_model: dict[str, int] = {}
    for log in main_logs:
        for model, usage in log.stats.model_usage.items():
            by_model[model] = by_model.get(model, 0) + usage.total_tokens
    for model, total in by_model.items():
        assert main_run.summary[f"tokens/{model}/total_tokens"] == total
    assert main_run.summary["status"] == "success"
    assert sorted(main_run.summary["logs"]) == sorted(log.location for log in main_logs)
    assert main_run.summary["duration_s"] > 0


def test_samples_table(main_run: WandbRun, main_logs: list[Any]) -> None:
    columns, rows = main_run.table("samples")
    got = {(r[0], r[1], r[2], r[3]): dict(zip(columns, r, strict=True)) for r in rows}
    expected = {}
    for log in main_logs:
        for s in log.samples or []:
            expected[(log.eval.task, log.eval.model, str(s.id), s.epoch)] = s
    assert got.keys() == expected.keys()
    assert len(rows) == 2 * (3 + 2) * 2  # models × samples × epochs
    for key, s in expected.items():
        row = got[key]
        assert row["input"] == s.input
        assert row["target"] == s.target
        assert row["output"] == s.output.completion
        for scorer, score in (s.scores or {}).items():
            assert row[f"score/{scorer}"] == score.value
        assert row["total_tokens"] == sum(u.total_tokens for u in s.model_usage.values())
        assert row["total_time"] == pytest.approx(s.total_time)
        assert row["status"] == "success" and row["error"] is None


def test_logs_artifact_and_files(main_run: WandbRun, main_logs: list[Any]) -> None:
    artifacts = [a for a in main_run.artifacts if a["type"] == "inspect-log"]
    assert len(artifacts) == 1
    art = artifacts[0]
    assert art["name"] == f"inspect-logs-{main_run.run_id}"
    assert sorted(art["paths"]) == sorted(Path(log.location).name for log in main_logs)
    sizes = {e["path"]: e["size"] for e in art["entries"]}
    for log in main_logs:  # a redacted copy, not the raw file (tests/test_secrets.py reads it back)
        assert sizes[Path(log.location).name] > 0
    assert "notes.txt" in main_run.files


def test_exit_code_success(main_run: WandbRun) -> None:
    assert main_run.exit_code == 0


# ============================================================================================
# sync from the span file reproduces the live run


def _comparable(run: WandbRun) -> dict[str, Any]:
    def clean(row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in {"_runtime", "_timestamp", "_wandb"}}
        if isinstance(out.get("samples"), dict):  # table entries: keep the content hash only
            out["samples"] = out["samples"]["sha256"]
        return out

    return {
        "identity": (run.run_id, run.project, run.name, run.group, run.job_type, sorted(run.tags)),
        "config": run.config,
        "history": [clean(r) for r in run.history],
        "summary": clean(run.summary),
        "metrics": [(m.name, m.step_metric) for m in run.metrics],
        "table": run.table("samples"),
        "artifacts": sorted((a["name"], a["type"], tuple(sorted(a["paths"]))) for a in run.artifacts),
        "exit_code": run.exit_code,
    }


def test_sync_reproduces_live_run(main_run: WandbRun, outcomes: dict[str, dict[str, Any]]) -> None:
    synced = _only_run(outcomes["synced"]["root"])
    assert _comparable(synced) == _comparable(main_run)
    assert "wandb sync" in outcomes["synced"]["stderr"]


def test_wandb_down_means_offline_within_bounded_time(
    main_run: WandbRun, outcomes: dict[str, dict[str, Any]]
) -> None:
    down = outcomes["down"]
    assert down["seconds"] < 60
    problems = [line for line in down["stderr"].splitlines() if line.startswith("error:")]
    assert problems == [
        "error: wandb: http://127.0.0.1:9 did not answer; W&B runs are written offline "
        "(upload later with `wandb sync`)"
    ]
    assert "wandb sync" in down["stderr"]
    assert _comparable(_only_run(down["root"])) == _comparable(main_run)


def test_sync_of_killed_run_finishes_it_failed(
    outcomes: dict[str, dict[str, Any]], main_run: WandbRun
) -> None:
    killed = _only_run(outcomes["killed"]["root"])
    assert killed.run_id == main_run.run_id
    assert killed.exit_code == 2
    assert killed.summary["status"] == "incomplete"
    assert "never finished" in killed.summary["status_reason"]


# ============================================================================================
# two eval() calls in one process


def test_two_evals_in_one_process_are_two_runs(outcomes: dict[str, dict[str, Any]]) -> None:
    logs = _logs(outcomes["two_evals"])
    runs = {
        rid: wait_for_run(segs[-1].run_dir) for rid, segs in load_runs(outcomes["two_evals"]["root"]).items()
    }
    assert sorted(runs) == sorted(log.eval.run_id for log in logs)
    for log in logs:
        run = runs[log.eval.run_id]
        _assert_summary_matches_log(run, log)
        label = _label(log)
        # the second eval's counter starts again at 1 (no state shared with the first)
        xs = [r[f"{label}/samples"] for r in run.history if f"{label}/samples" in r]
        n = log.results.completed_samples
        assert xs == [*range(1, n + 1), n]
        assert run.name == f"arithmetic on offline/careful [{log.eval.run_id}]"
        assert run.exit_code == 0
        assert run.summary["table/rows_logged"] == n
    assert [log.results.completed_samples for log in logs] == [2, 3]


# ============================================================================================
# task error, cancellation, content capture off


def test_task_error_fails_the_run(outcomes: dict[str, dict[str, Any]]) -> None:
    (log,) = _logs(outcomes["error"])
    assert log.status == "error"
    run = _only_run(outcomes["error"]["root"])
    label = _label(log)
    assert run.exit_code == 1
    assert run.summary["status"] == "error"
    assert run.summary[f"{label}/status"] == "error"
    assert log.error is not None and run.summary[f"{label}/error"] == log.error.message
    assert run.summary[f"{label}/log_location"] == log.location
    errored = [r for r in run.history if r.get(f"{label}/errors")]
    assert errored, "the errored sample shows in the errors series"


def test_cancellation_fails_the_run(outcomes: dict[str, dict[str, Any]]) -> None:
    run = _only_run(outcomes["cancel"]["root"])
    assert run.exit_code == 130
    assert run.summary["status"] == "cancelled"
    assert run.summary["arithmetic/offline/careful/status"] == "cancelled"
    done = [
        r["arithmetic/offline/careful/samples"]
        for r in run.history
        if "arithmetic/offline/careful/samples" in r
    ]
    assert done and 2 <= max(done) < 20, "cancelled mid-run, after some samples"


def test_content_capture_off(outcomes: dict[str, dict[str, Any]]) -> None:
    (log,) = _logs(outcomes["capture_off"])
    run = _only_run(outcomes["capture_off"]["root"])
    columns, rows = run.table("samples")
    assert len(rows) == 2  # INSPECT_OTEL_WANDB_TABLE_MAX_ROWS=2
    assert run.summary["table/rows_dropped"] == len(log.samples or []) - 2
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        assert (record["input"], record["target"], record["output"]) == (None, None, None)
        assert record["score/pattern"] in {"C", "I"}
    assert not [a for a in run.artifacts if a["type"] == "inspect-log"]  # LOG_ARTIFACT=false
    _assert_summary_matches_log(run, log)
    assert run.exit_code == 0


# ============================================================================================
# eval set: retries and a second invocation continue one W&B run


def test_eval_set_is_one_resumed_run(outcomes: dict[str, dict[str, Any]]) -> None:
    assert outcomes["eval_set_1"]["ok"] is False and outcomes["eval_set_2"]["ok"] is True
    final_logs = _logs(outcomes["eval_set_2"])
    eval_set_id = final_logs[0].eval.eval_set_id
    runs = load_runs(outcomes["eval_set_1"]["root"])
    assert list(runs) == [eval_set_id]
    first, second = (wait_for_run(seg.run_dir) for seg in runs[eval_set_id])
    assert first.resume_requested and second.resume_requested
    assert first.group == second.group == eval_set_id

    flaky = "flaky/offline/careful"
    # invocation 1: the flaky task failed, was retried (a new eval_id) and failed again
    failed_logs = {log.eval.task: log for log in outcomes["eval_set_1"]["read"]}
    assert failed_logs["flaky"].status == "error"
    assert first.exit_code == 1 and first.summary["status"] == "error"
    assert first.summary[f"{flaky}/status"] == "error"
    assert first.summary[f"{flaky}/eval_id"] == failed_logs["flaky"].eval.eval_id  # the retry's
    assert first.summary["arithmetic/offline/careful/status"] == "success"
    _assert_summary_matches_log(first, failed_logs["arithmetic"])
    # invocation 2 resumes it and only runs the flaky task again
    assert second.exit_code == 0 and second.summary["status"] == "success"
    merged = merge_runs([first, second])
    assert merged.exit_code == 0
    for log in final_logs:
        assert log.status == "success"
        _assert_summary_matches_log(merged, log)


def test_eval_set_sync_gives_the_same_final_run(outcomes: dict[str, dict[str, Any]]) -> None:
    """Live, each invocation is a segment of the run; sync replays them as one (W&B merges both)."""
    live_runs = load_runs(outcomes["eval_set_1"]["root"])
    synced_runs = load_runs(outcomes["eval_set_synced"]["root"])
    assert list(synced_runs) == list(live_runs)
    (eval_set_id,) = live_runs
    live = merge_runs([wait_for_run(seg.run_dir) for seg in live_runs[eval_set_id]])
    synced = merge_runs([wait_for_run(seg.run_dir) for seg in synced_runs[eval_set_id]])
    assert synced.exit_code == live.exit_code == 0
    assert synced.summary["status"] == "success"
    without_ids = {k: v for k, v in live.config.items() if k != "inspect"}
    assert {k: v for k, v in synced.config.items() if k != "inspect"} == without_ids
    for key, value in live.summary.items():
        if key.startswith(("flaky/", "arithmetic/")) and not key.endswith("duration_s"):
            assert synced.summary[key] == value, key
    flaky_rows = [r for r in synced.table("samples")[1] if r[0] == "flaky"]
    assert [r[4] for r in flaky_rows] == ["success", "success"]  # the retried samples replace the errors


# ============================================================================================


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "examples"))
    print(json.dumps(_scenario(sys.argv[1], Path(sys.argv[2]))))
