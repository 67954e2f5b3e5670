"""Re-scoring: ``inspect score LOG`` then ``otel-bridge import`` of the re-scored log updates what
the live run wrote — the Weave evaluation (local trace server) and the W&B Models run (offline).

A real ``inspect eval`` runs with the bridge on (``file,weave,wandb``): two tasks, so two Weave
evaluations. Then ``inspect score`` re-scores each log two ways: ``arithmetic`` gets a new scorer
appended (``answer_value``, from examples/bridge_examples/scorers.py: every row's scores change);
``arithmetic_quick`` has its scorer run again with other metrics (``--action overwrite --metric
mean``: every row's score is the same, only the task's metrics change). The oracle is Inspect's
re-scored log (``read_eval_log``): every row's scores, the metrics, the scorer list.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog, read_eval_log

from otel_bridge import conventions as c
from otel_bridge.otlp_json import request_to_json
from otel_bridge.records import read_span_file, to_request
from tests.support.bridge import ROOT, subprocess_env
from tests.support.wandb_log import WandbRun, load_runs, wait_for_run
from tests.test_weave_sink import canonical, short, unique
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]

BIN = Path(sys.executable).parent
DEMO = str(ROOT / "examples" / "bridge_demo.py")
SCORER = str(ROOT / "examples" / "bridge_examples" / "scorers.py") + "@answer_value"
WANDB_PROJECT = "rescore-tests"


@dataclass
class Rescored:
    project: str
    root: Path
    live: list[EvalLog]  # the logs the eval wrote
    scored: list[EvalLog]  # the same logs after `inspect score`
    scored_paths: list[Path]
    calls_before_import: list[dict[str, Any]]  # the project after `inspect score`, before any import
    first: list[Any]  # canonical() after the first import
    first_ids: list[str]


def _env(server: WeaveServer, project: str, root: Path, **extra: str) -> dict[str, str]:
    env = subprocess_env()
    weave_env = server.env(*project.split("/"))
    env.update({k: v for k, v in weave_env.items() if k.startswith(("WANDB_", "WF_", "WEAVE_"))})
    env.update(
        {
            "INSPECT_OTEL_WEAVE_PROJECT": project,
            "INSPECT_OTEL_WANDB_PROJECT": WANDB_PROJECT,
            "INSPECT_OTEL_FLUSH_TIMEOUT": "20",
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(root),
            "WANDB_DATA_DIR": str(root / "data"),
            "WANDB_CACHE_DIR": str(root / "cache"),
            **extra,
        }
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _tree(directory: Path) -> dict[str, bytes]:
    """Every file under the span directory (span files and the eval's redacted log copies)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _import(server: WeaveServer, project: str, root: Path, to: str, paths: list[Path]) -> None:
    env = _env(server, project, root, INSPECT_OTEL_DIR=str(root / "import-spans"))
    _run([str(BIN / "otel-bridge"), "import", *map(str, paths), "--to", to, "--quiet"], env)


@pytest.fixture(scope="module")
def rescored(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> Rescored:
    root = tmp_path_factory.mktemp("rescore")
    project = unique("rescore")
    spans, logs, scored = root / "spans", root / "logs", root / "scored"
    hook = {
        "INSPECT_OTEL_ENABLED": "1",
        "INSPECT_OTEL_EXPORTERS": "file,weave,wandb",
        "INSPECT_OTEL_DIR": str(spans),
        "INSPECT_REQUIRED_HOOKS": "otel_bridge",
    }
    live_env = _env(weave_server, project, root / "live-wandb", **hook)
    _run(
        [str(BIN / "inspect"), "eval", f"{DEMO}@arithmetic", f"{DEMO}@arithmetic_quick"]
        + ["--model", "offline/careful", "-T", "samples=3", "--epochs", "2"]
        + ["--log-dir", str(logs), "--display", "none"],
        live_env,
    )
    live = {read_eval_log(str(p)).eval.task: p for p in sorted(logs.glob("*.eval"))}
    assert sorted(live) == ["arithmetic", "arithmetic_quick"]
    files_before = _tree(spans)
    calls_before = weave_server.calls(project)
    scored.mkdir()
    score = [str(BIN / "inspect"), "score", "--display", "none"]
    out = {task: scored / path.name for task, path in live.items()}
    # the bridge's hook is on here too: Inspect fires no hook during `inspect score` (checked below)
    _run(
        [*score, str(live["arithmetic"]), "--scorer", SCORER, "--action", "append"]
        + ["--output-file", str(out["arithmetic"])],
        live_env,
    )
    _run(
        [*score, str(live["arithmetic_quick"]), "--scorer", "pattern", "-S", r"pattern=ANSWER:\s*(-?\d+)"]
        + ["--action", "overwrite", "--metric", "mean", "--output-file", str(out["arithmetic_quick"])],
        live_env,
    )
    assert _tree(spans) == files_before  # no span (nor log copy) from `inspect score`
    after_score = weave_server.calls(project)
    _import(weave_server, project, root / "import-wandb", "weave,wandb", list(out.values()))
    first = canonical(weave_server, project)
    ids = sorted(c["id"] for c in weave_server.calls(project))
    return Rescored(
        project,
        root,
        [read_eval_log(str(p)) for p in live.values()],
        [read_eval_log(str(p)) for p in out.values()],
        list(out.values()),
        after_score if after_score == calls_before else [],
        first,
        ids,
    )


def _by_task(logs: list[EvalLog]) -> dict[str, EvalLog]:
    return {log.eval.task: log for log in logs}


def test_inspect_score_fires_no_hook_so_the_live_path_writes_nothing(rescored: Rescored) -> None:
    # the span files were compared in the fixture; the Weave project did not change either
    assert rescored.calls_before_import, "`inspect score` changed the Weave project"
    live = _by_task(rescored.live)
    scored = _by_task(rescored.scored)
    # the re-score is real: Inspect's log has another scorer set / other metrics for the same eval
    assert [s.name for s in scored["arithmetic"].eval.scorers] == ["pattern", "used_tool", "answer_value"]
    assert scored["arithmetic"].eval.eval_id == live["arithmetic"].eval.eval_id
    quick_live, quick_scored = live["arithmetic_quick"].results, scored["arithmetic_quick"].results
    assert quick_live is not None and quick_scored is not None
    assert {m for s in quick_scored.scores for m in s.metrics} == {"mean"}
    assert {m for s in quick_live.scores for m in s.metrics} != {"mean"}
    # ... while every row keeps its score: only the end differs (every row goes through the spool)
    assert {(x.id, x.epoch): x.scores for x in live["arithmetic_quick"].samples or []} == {
        (x.id, x.epoch): x.scores for x in scored["arithmetic_quick"].samples or []
    }


def test_reimport_shows_the_rescored_evaluation_once(weave_server: WeaveServer, rescored: Rescored) -> None:
    project = rescored.project
    evals = weave_server.evaluations(project)
    assert len(evals) == 2  # the old revisions are gone: one evaluation per task × model
    by_eval_id = {e["attributes"]["inspect"]["eval_id"]: e for e in evals}
    feedback = weave_server.feedback(project)
    for log in rescored.scored:
        ev = by_eval_id[log.eval.eval_id]
        assert ev["attributes"]["inspect"]["revision"] == 1
        assert weave_server.evaluation_status(project, ev["id"])["code"] == "complete"
        assert log.results is not None and log.samples is not None
        # the metric columns: Inspect's re-scored metrics, and nothing else but the latency
        assert set(ev["output"]) == {s.name for s in log.results.scores} | {"model_latency"}
        for score in log.results.scores:
            assert set(ev["output"][score.name]) == set(score.metrics)
            for metric in score.metrics.values():
                assert ev["output"][score.name][metric.name] == pytest.approx(metric.value)
        # the Evaluation object names the re-scored log's scorers
        (evaluation,) = weave_server.read_refs([ev["inputs"]["self"]])
        scorers = weave_server.read_refs(evaluation["scorers"])
        assert [s["name"] for s in scorers] == [s.name for s in log.eval.scorers or []]
        kids = weave_server.children(project, ev["id"])
        assert Counter(short(k["op_name"]) for k in kids) == {
            "Evaluation.predict_and_score": len(log.samples),
            "Evaluation.summarize": 1,
        }
        rows = {
            (r["attributes"]["inspect"]["sample_id"], r["attributes"]["inspect"]["epoch"]): r
            for r in kids
            if short(r["op_name"]) == "Evaluation.predict_and_score"
        }
        assert len(rows) == len(log.samples)
        for sample in log.samples:
            row = rows[(str(sample.id), sample.epoch)]
            assert sample.scores is not None
            assert set(row["output"]["scores"]) == set(sample.scores)
            calls = {short(k["op_name"]): k for k in weave_server.children(project, row["id"])}
            assert set(calls) == {"Model.predict", *sample.scores}
            predict_ref = f"weave:///{project}/call/{calls['Model.predict']['id']}"
            on_predict = {
                f["feedback_type"]: f["payload"]["output"] for f in feedback if f["weave_ref"] == predict_ref
            }
            for name, score in sample.scores.items():
                expected = (1.0 if score.value == "C" else 0.0) if name == "pattern" else score.value
                assert row["output"]["scores"][name] == expected, (name, sample.id)
                assert calls[name]["output"] == expected  # the scorer call: Compare's column
                assert on_predict[f"wandb.runnable.{name}"] == expected  # the SDK's score feedback
            assert len(on_predict) == len(sample.scores)
    # no feedback left on calls of the replaced revisions
    live_calls = {f"weave:///{project}/call/{c['id']}" for c in weave_server.calls(project)}
    assert feedback and all(f["weave_ref"] in live_calls for f in feedback)
    assert len(feedback) == sum(len(s.scores or {}) for log in rescored.scored for s in log.samples or [])


def test_importing_the_rescored_log_again_changes_nothing(
    weave_server: WeaveServer, rescored: Rescored
) -> None:
    _import(weave_server, rescored.project, rescored.root / "again-wandb", "weave", rescored.scored_paths)
    assert sorted(c["id"] for c in weave_server.calls(rescored.project)) == rescored.first_ids
    assert canonical(weave_server, rescored.project) == rescored.first


def test_syncing_the_older_live_span_file_afterwards_changes_nothing(
    weave_server: WeaveServer, rescored: Rescored
) -> None:
    """The live run's span file holds the scores from before `inspect score`: delivering it again
    (as `otel-bridge sync` after a delivery problem would) must not undo the re-score."""
    files = sorted((rescored.root / "spans").glob("*.jsonl"))
    assert files
    env = _env(weave_server, rescored.project, rescored.root / "sync-wandb")
    _run([str(BIN / "otel-bridge"), "sync", *map(str, files), "--to", "weave", "--quiet"], env)
    assert sorted(c["id"] for c in weave_server.calls(rescored.project)) == rescored.first_ids
    assert canonical(weave_server, rescored.project) == rescored.first


def test_import_into_the_live_span_file_keeps_it_and_still_rescores_weave(
    weave_server: WeaveServer, rescored: Rescored
) -> None:
    """``--to file,weave`` with the live run's span file in INSPECT_OTEL_DIR: the file (appended
    to, never rewritten) keeps the old scores and says so; Weave still gets the re-scored run."""
    spans = rescored.root / "spans"
    files = sorted(spans.glob("*.jsonl"))
    before = _tree(spans)
    project = unique("rescore-file")
    env = _env(weave_server, project, rescored.root / "file-wandb", INSPECT_OTEL_DIR=str(spans))
    _run([str(BIN / "otel-bridge"), "sync", *map(str, files), "--to", "weave", "--quiet"], env)
    assert {e["attributes"]["inspect"].get("revision", 0) for e in weave_server.evaluations(project)} == {0}
    args = [str(BIN / "otel-bridge"), "import", *map(str, rescored.scored_paths), "--to", "file,weave"]
    proc = _run([*args, "--quiet"], env)
    assert _tree(spans) == before
    assert "hold other scores than the log" in proc.stderr
    expected = {e["attributes"]["inspect"]["eval_id"]: e for e in weave_server.evaluations(rescored.project)}
    got = weave_server.evaluations(project)
    assert len(got) == 2
    for ev in got:
        twin = expected[ev["attributes"]["inspect"]["eval_id"]]
        assert ev["attributes"]["inspect"]["revision"] == 1
        assert ev["output"] == twin["output"]  # Inspect's re-scored metrics (checked above)
        rows = [k for k in weave_server.children(project, ev["id"]) if "predict_and_score" in k["op_name"]]
        twin_rows = [
            k
            for k in weave_server.children(rescored.project, twin["id"])
            if "predict_and_score" in k["op_name"]
        ]
        assert sorted(json.dumps(r["output"]["scores"], sort_keys=True) for r in rows) == sorted(
            json.dumps(r["output"]["scores"], sort_keys=True) for r in twin_rows
        )


def test_a_rescored_span_file_cut_short_never_takes_the_complete_evaluation_away(
    weave_server: WeaveServer, rescored: Rescored
) -> None:
    """The re-scored run's span file without its task and run ends (a killed process): the
    evaluations with the old scores stay complete; a revision it started is ended as failed."""
    project = unique("rescore-cut")
    env = _env(weave_server, project, rescored.root / "cut-wandb")
    sync = [str(BIN / "otel-bridge"), "sync", "--to", "weave", "--quiet"]
    _run([*sync, *map(str, sorted((rescored.root / "spans").glob("*.jsonl")))], env)
    old = {e["attributes"]["inspect"]["eval_id"]: e for e in weave_server.evaluations(project)}
    whole = rescored.root / "cut-whole"
    _run(
        [
            str(BIN / "otel-bridge"),
            "import",
            *map(str, rescored.scored_paths),
            "--dir",
            str(whole),
            "--quiet",
        ],
        env,
    )
    (path,) = whole.glob("*.jsonl")
    ends = {c.SPAN_TASK, c.SPAN_RUN, c.SPAN_EVAL_SET}
    kept = [r for r in read_span_file(path) if r.name not in ends]
    cut = rescored.root / "cut" / path.name
    cut.parent.mkdir()
    cut.write_text(request_to_json(to_request(kept)) + "\n")
    _run([*sync, str(cut)], env)
    after: dict[str, list[dict[str, Any]]] = {}
    for ev in weave_server.evaluations(project):
        after.setdefault(ev["attributes"]["inspect"]["eval_id"], []).append(ev)
    scored = _by_task(rescored.scored)
    appended, quick = scored["arithmetic"].eval.eval_id, scored["arithmetic_quick"].eval.eval_id
    # every row differs (a new scorer): a revision started, ended failed; the complete one stays
    by_revision = {e["attributes"]["inspect"].get("revision", 0): e for e in after[appended]}
    assert sorted(by_revision) == [0, 1]
    assert by_revision[0]["id"] == old[appended]["id"] and by_revision[0]["output"] == old[appended]["output"]
    assert weave_server.evaluation_status(project, by_revision[0]["id"])["code"] == "complete"
    assert by_revision[1]["exception"]
    # rows the same, only the (missing) end would differ: nothing changes
    assert [e["id"] for e in after[quick]] == [old[quick]["id"]]
    assert after[quick][0]["output"] == old[quick]["output"]


def _only_run(root: Path) -> WandbRun:
    runs = load_runs(root)
    assert len(runs) == 1, sorted(runs)
    (segments,) = runs.values()
    return wait_for_run(segments[-1].run_dir)


def test_wandb_run_of_the_rescored_log_has_the_new_metrics_and_no_row_twice(rescored: Rescored) -> None:
    live, imported = _only_run(rescored.root / "live-wandb"), _only_run(rescored.root / "import-wandb")
    assert imported.run_id == live.run_id == rescored.scored[0].eval.run_id
    for log in rescored.scored:
        label = f"{log.eval.task}/{log.eval.model}"
        assert log.results is not None
        expected = {
            f"{label}/{s.name}/{m.name}": m.value for s in log.results.scores for m in s.metrics.values()
        }
        got = {k: v for k, v in imported.summary.items() if k in expected}
        assert got == pytest.approx(expected)
        # no metric of a scorer or metric the re-scored log no longer has
        live_log = _by_task(rescored.live)[log.eval.task]
        names = {s.name for s in log.results.scores} | {s.name for s in live_log.results.scores}  # type: ignore[union-attr]
        metric_keys = {
            k
            for k in imported.summary
            if k.startswith(label + "/")
            and len(parts := k[len(label) + 1 :].split("/")) == 2
            and parts[0] in names
        }
        assert metric_keys == set(expected)
    assert "arithmetic/offline/careful/answer_value/mean" not in live.summary
    # no history row twice: each sample counted once per task × model, as many rows as live
    assert len(imported.history) == len(live.history)
    for log in rescored.scored:
        counted = f"{log.eval.task}/{log.eval.model}/samples"
        seen = sorted(h[counted] for h in imported.history if counted in h)
        assert seen == sorted(h[counted] for h in live.history if counted in h)
        assert max(seen) == len(log.samples or []) and len(set(seen)) == len(log.samples or [])
    # the new scorer's running metric is charted from the sample rows
    assert any("arithmetic/offline/careful/answer_value/mean" in h for h in imported.history)
