"""A trace-sampled eval ends complete in Weave and W&B, with exactly the sample rows kept.

A real eval recorded with ``OTEL_TRACES_SAMPLER=traceidratio`` (ratio 0.5, seeded ids so some
traces are kept and others dropped) exports live to the local Weave trace server (the worker
must not wait for rows that were sampled out), and its span file is then sent with
``otel-bridge sync`` to a second Weave project and to W&B offline. The oracle is independent of
the translators: the sample roots actually in the span file say which rows were kept, Inspect's
log gives their scores.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from bridge_demo import arithmetic
from inspect_ai import eval

from otel_bridge import conventions as c
from tests.support.bridge import BridgeEnv, full_log, seed_span_ids, subprocess_env
from tests.support.spantree import SpanTree
from tests.support.wandb_log import find_run_dirs, wait_for_run
from tests.weave_server.harness import WeaveServer

OTEL_BRIDGE = str(Path(sys.executable).parent / "otel-bridge")
MODELS = ["offline/careful", "offline/hasty"]


def _sync(files: list[Path], to: str, env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(
        [OTEL_BRIDGE, "sync", *map(str, files), "--to", to, "--quiet"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _short(op_name: str) -> str:
    return op_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _check_weave(
    server: WeaveServer,
    project: str,
    kept: dict[str, set[tuple[str, int]]],
    scores: dict[tuple[str, str, int], object],
) -> None:
    """Every evaluation complete (not running, not finished as incomplete), with the kept rows."""
    evaluations = server.evaluations(project)
    assert len(evaluations) == len(kept)
    for ev in evaluations:
        eval_id = ev["attributes"]["inspect"]["eval_id"]
        assert server.evaluation_status(project, ev["id"])["code"] == "complete"
        assert ev["summary"]["inspect"].get("status") != "incomplete", ev["summary"]
        kids = server.children(project, ev["id"])
        assert [_short(k["op_name"]) for k in kids].count("Evaluation.summarize") == 1
        rows = [k for k in kids if _short(k["op_name"]) == "Evaluation.predict_and_score"]
        got = {(r["attributes"]["inspect"]["sample_id"], r["attributes"]["inspect"]["epoch"]) for r in rows}
        assert got == kept[eval_id] and len(rows) == len(got)
        for row in rows:
            ids = row["attributes"]["inspect"]
            expected = scores[(eval_id, str(ids["sample_id"]), int(ids["epoch"]))]
            assert row["output"]["scores"]["pattern"] == (1.0 if expected == "C" else 0.0)


def _weave_env(server: WeaveServer, label: str) -> tuple[str, dict[str, str]]:
    project = f"ent/{label}-{uuid.uuid4().hex[:10]}"
    entity, name = project.split("/")
    return project, server.env(entity, name) | {"INSPECT_OTEL_WEAVE_PROJECT": project}


def test_sampled_eval_ends_complete_in_weave_and_wandb_with_the_kept_rows(
    bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch, weave_server: WeaveServer, tmp_path: Path
) -> None:
    live_project, live_env = _weave_env(weave_server, "sampled-live")
    for key in ("WF_TRACE_SERVER_URL", "WANDB_BASE_URL", "WANDB_API_KEY", "WANDB_CONFIG_DIR", "WANDB_ENTITY"):
        monkeypatch.setenv(key, live_env[key])
    monkeypatch.setenv("INSPECT_OTEL_WEAVE_PROJECT", live_project)
    monkeypatch.setenv("INSPECT_OTEL_EXPORTERS", "file,weave")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    seed_span_ids(monkeypatch)
    logs = [full_log(log) for log in eval(arithmetic(samples=8), model=MODELS, display="none")]
    assert all(log.status == "success" for log in logs)
    files = bridge.files()
    roots = SpanTree(bridge.spans()).named(c.SPAN_SAMPLE)
    kept: dict[str, set[tuple[str, int]]] = {log.eval.eval_id: set() for log in logs}
    for root in roots:
        kept[root.attr(c.EVAL_ID)].add((root.attr(c.SAMPLE_ID), root.attr(c.SAMPLE_EPOCH)))
    assert 0 < len(roots) < 16, "the sampler kept some sample traces and dropped others"
    scores: dict[tuple[str, str, int], object] = {
        (log.eval.eval_id, str(s.id), s.epoch): s.scores["pattern"].value
        for log in logs
        for s in log.samples or []
        if s.scores
    }

    # live: the eval's own Weave worker finishes each evaluation once its kept rows are in
    deadline = time.monotonic() + 60
    while True:
        try:
            _check_weave(weave_server, live_project, kept, scores)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

    # sync: the same span file into a new project
    sync_project, sync_env = _weave_env(weave_server, "sampled-sync")
    _sync(files, "weave", sync_env, tmp_path)
    _check_weave(weave_server, sync_project, kept, scores)

    # W&B (offline): the run finished as a success, its samples table holds the kept rows
    wandb_dir = tmp_path / "wandb-sync"
    wandb_env = subprocess_env({"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(wandb_dir)})
    _sync(files, "wandb", wandb_env, tmp_path)
    (run_dir,) = find_run_dirs(wandb_dir / "wandb")
    run = wait_for_run(run_dir)
    assert run.exit_code == 0 and run.summary["status"] == "success", run.summary
    columns, table = run.table("samples")
    by_model = {log.eval.model: log.eval.eval_id for log in logs}
    # the table's first columns are task, model, sample id, epoch (tests/test_wandb_sink.py)
    got_rows = {(by_model[r[1]], str(r[2]), r[3]): dict(zip(columns, r, strict=True)) for r in table}
    assert got_rows.keys() == {(e, sid, ep) for e, keys in kept.items() for sid, ep in keys}
    assert len(table) == len(roots)
    for key, row in got_rows.items():
        assert row["score/pattern"] == scores[key]
