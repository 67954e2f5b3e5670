"""Weave's own SDK is the oracle: the bridge writes what ``weave.EvaluationLogger`` writes.

On one local Weave server the same Inspect eval is logged twice: once through the bridge (a real
``inspect eval`` with the weave exporter, two models, two scorers) and once by weave's own
``EvaluationLogger`` in a subprocess, fed the values of Inspect's log (examples, completions,
scores as Inspect's ``value_to_float`` makes them, metrics, and each model call's response model
and usage as a nested op). Then both projects are read back over the server's query API and
compared, call by call, on what Weave's UI reads. Nothing here imports the translator.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog
from inspect_ai.scorer import value_to_float

from tests.test_weave_sink import Run, run_eval, short, unique
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]

SCORE_META = {"imperative": True, "score": True}

#: Differences that are Weave's logger's own quirks, not something the bridge should copy.
ALLOWED = {
    # EvaluationLogger.log_summary repeats the summary it is given under "output"
    "root metric columns: the SDK's `output.*` copies",
    # ScoreLogger.finish writes model_latency None; the bridge writes Inspect's sample total_time
    "row output.model_latency",
    # the bridge's Model.predict holds Inspect's solver / model / tool trace; the SDK's holds the
    # model calls this test logs under it: only their usage rollup is compared
    "calls under Model.predict",
}

SDK_SCRIPT = r"""
import json, os, sys
import weave
from weave import EvaluationLogger

data = json.loads(sys.stdin.read())
weave.init(os.environ["WEAVE_PROJECT"], settings={"print_call_link": False})


@weave.op(name="chat", enable_code_capture=False)
def chat(model, usage):
    return {"model": model, "usage": usage}


for ev in data:
    logger = EvaluationLogger(
        name=ev["name"], model=ev["model"], dataset=ev["dataset"], scorers=ev["scorers"]
    )
    for row in ev["rows"]:
        with logger.log_prediction(inputs=row["example"], output=row["output"]) as pred:
            for model, usage in row["chats"]:
                chat(model, usage)
            for name, value in row["scores"].items():
                pred.log_score(name, value)
    logger.log_summary(ev["summary"], auto_summarize=False)
weave.get_client().flush()
"""


def _score(value: Any) -> Any:
    """What a user of the SDK logs for an Inspect score: Inspect's own numeric conversion."""
    to_float = value_to_float()
    if isinstance(value, dict):
        return {k: to_float(v) for k, v in value.items()}
    return to_float(value)


def sdk_input(logs: list[EvalLog]) -> list[dict[str, Any]]:
    """The values of Inspect's logs, as an EvaluationLogger user would pass them."""
    out = []
    for log in logs:
        assert log.results is not None and log.samples is not None
        summary: dict[str, Any] = {
            s.name: {m.name: m.value for m in s.metrics.values()} for s in log.results.scores
        }
        times = [s.total_time for s in log.samples if s.total_time is not None]
        summary["model_latency"] = {"mean": sum(times) / len(times)}
        rows = []
        for sample in log.samples:
            chats = [
                (e.output.model, e.output.usage.model_dump(exclude_none=True))
                for e in sample.events
                if e.event == "model" and e.output.usage is not None
            ]
            rows.append(
                {
                    "example": {
                        "id": str(sample.id),
                        "input": sample.input,
                        "target": sample.target,
                        "metadata": sample.metadata,
                    },
                    "output": sample.output.completion,
                    "scores": {k: _score(v.value) for k, v in (sample.scores or {}).items()},
                    "chats": chats,
                }
            )
        out.append(
            {
                "name": f"{log.eval.task} · {log.eval.model}",
                "model": log.eval.model.replace("/", "-"),
                "dataset": f"{log.eval.task}-dataset",
                "scorers": [s.name for s in log.results.scores],
                "summary": summary,
                "rows": rows,
            }
        )
    return out


# --- what the UI reads ----------------------------------------------------------------------


def numeric_leaves(value: Any, prefix: str = "") -> dict[str, float]:
    """The Evals tab's metric columns: every numeric leaf of the root output."""
    if isinstance(value, bool):
        return {prefix: float(value)}
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for k, v in value.items():
            out.update(numeric_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {}


def meta(call: dict[str, Any]) -> Any:
    return (call.get("attributes") or {}).get("_weave_eval_meta")


class View:
    """One project's evaluations as the UI reads them."""

    def __init__(self, server: WeaveServer, project: str) -> None:
        self.server, self.project = server, project
        self.calls = server.calls(project)
        self.kids: dict[str | None, list[dict[str, Any]]] = {}
        for call in self.calls:
            self.kids.setdefault(call.get("parent_id"), []).append(call)
        self.evals = {e["display_name"]: e for e in server.evaluations(project)}
        self.feedback = server.feedback(project)

    def subtree(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        out = [call]
        for kid in self.kids.get(call["id"], []):
            out.extend(self.subtree(kid))
        return out

    def root(self, name: str) -> dict[str, Any]:
        ev = self.evals[name]
        tree = self.subtree(ev)
        counts = (ev.get("summary") or {}).get("status_counts") or {}
        errors = sum(1 for c in tree if c.get("exception"))
        usage = (ev.get("summary") or {}).get("usage") or {}
        return {
            "op": short(ev["op_name"]),
            "meta": meta(ev),
            "status": self.server.evaluation_status(self.project, ev["id"])["code"],
            # the SDK's rollup: every call of the tree, by outcome
            "status_counts": counts == {"success": len(tree) - errors, "error": errors},
            "usage": {
                m: {k: u.get(k) for k in ("requests", "input_tokens", "output_tokens", "total_tokens")}
                for m, u in usage.items()
            },
        }

    def metrics(self, name: str) -> dict[str, float]:
        return numeric_leaves(self.evals[name].get("output"))

    def rows(self, name: str) -> list[str]:
        """Each row as JSON (a multiset: epochs of one sample are alike)."""
        out = []
        for pas in self.kids.get(self.evals[name]["id"], []):
            if short(pas["op_name"]) != "Evaluation.predict_and_score":
                continue
            children = []
            for kid in self.kids.get(pas["id"], []):
                scorer = meta(kid) == SCORE_META
                children.append(
                    {
                        "op": short(kid["op_name"]),
                        "meta": meta(kid),
                        "output": kid.get("output") if scorer else None,
                        "feedback": self.feedback_on(kid),
                    }
                )
            out.append(
                json.dumps(
                    {
                        "op": short(pas["op_name"]),
                        "meta": meta(pas),
                        "example": pas["inputs"]["example"],
                        "output": (pas.get("output") or {}).get("output"),
                        "scores": (pas.get("output") or {}).get("scores"),
                        "children": sorted(children, key=json.dumps),
                    },
                    sort_keys=True,
                )
            )
        return sorted(out)

    def feedback_on(self, call: dict[str, Any]) -> list[Any]:
        """Feedback rows on a call, as the call view and ``scored_by`` read them: type, payload,
        the kind and name of the runnable ref, and the op of the call the ref points to."""
        ref = f"weave:///{self.project}/call/{call['id']}"
        by_id = {c["id"]: c for c in self.calls}
        out = []
        for f in self.feedback:
            if f["weave_ref"] != ref:
                continue
            kind, name = f["runnable_ref"].rsplit("/", 2)[-2:]
            scorer_call = by_id.get(str(f.get("call_ref") or "").rsplit("/", 1)[-1])
            scorer_op = short(scorer_call["op_name"]) if scorer_call else None
            out.append([f["feedback_type"], f["payload"], kind, name.split(":")[0], scorer_op])
        return sorted(out, key=json.dumps)


# --- the test -------------------------------------------------------------------------------


GRADED_TASK = """
import bridge_examples.offline_model  # noqa: F401
from bridge_demo import arithmetic_dataset
from inspect_ai import Task, task
from inspect_ai.model import get_model
from inspect_ai.scorer import Score, Target, mean, scorer
from inspect_ai.solver import TaskState, generate


@scorer(metrics={"exact": [mean()], "long": [mean()]})
def checks():
    async def score(state: TaskState, target: Target) -> Score:
        text = state.output.completion
        return Score(value={"exact": float(target.text in text), "long": float(len(text) > 9)})
    return score


@scorer(metrics=[mean()])
def judged():
    async def score(state: TaskState, target: Target) -> Score:
        verdict = await get_model("offline/judge").generate(f"Is {state.output.completion} right?")
        return Score(value=float("ANSWER" in verdict.completion), explanation=verdict.completion)
    return score


@task
def graded(samples: int = 3):
    return Task(
        dataset=arithmetic_dataset(samples, name="graded"), solver=generate(), scorer=[checks(), judged()]
    )
"""


@pytest.fixture(scope="module", params=["arithmetic", "graded"])
def both(
    request: pytest.FixtureRequest, weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, str]:
    """The demo (two models, two scorers, tools), and a task with a dict scorer and a grader model."""
    tmp = tmp_path_factory.mktemp(f"oracle-{request.param}")
    if request.param == "arithmetic":
        run = run_eval(weave_server, unique("oracle-bridge"), tmp)
    else:
        (tmp / "graded_task.py").write_text(GRADED_TASK)
        run = run_eval(weave_server, unique("oracle-graded"), tmp, task=f"{tmp / 'graded_task.py'}@graded")
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    return run, log_with_sdk(weave_server, run.logs, unique("oracle-sdk"))


def log_with_sdk(server: WeaveServer, logs: list[EvalLog], project: str) -> str:
    """Inspect's logs written to ``project`` by weave's own EvaluationLogger (a subprocess)."""
    data = json.dumps(json.dumps(sdk_input(logs)))
    proc = server.run_python(f"import sys, io; sys.stdin = io.StringIO({data})\n" + SDK_SCRIPT, project)
    assert proc.returncode == 0
    return project


def _diff(label: str, bridge: Any, sdk: Any) -> list[str]:
    return [] if bridge == sdk else [f"{label}:\n  bridge: {bridge}\n  sdk:    {sdk}"]


def test_the_bridge_writes_what_weaves_evaluation_logger_writes(
    weave_server: WeaveServer, both: tuple[Run, str]
) -> None:
    run, sdk_project = both
    bridge, sdk = View(weave_server, run.project), View(weave_server, sdk_project)
    assert sorted(bridge.evals) == sorted(sdk.evals) and len(sdk.evals) == 2
    diffs: list[str] = []
    for name in sorted(sdk.evals):
        sdk_root = sdk.root(name)
        assert sdk_root["status_counts"], "the SDK's status_counts should count its whole tree"
        diffs += _diff(f"{name} root", bridge.root(name), sdk_root)
        # metric columns: the SDK's own, minus its `output.*` copies (ALLOWED)
        sdk_metrics = {k: v for k, v in sdk.metrics(name).items() if not k.startswith("output.")}
        bridge_metrics = bridge.metrics(name)
        diffs += _diff(f"{name} metric columns", sorted(bridge_metrics), sorted(sdk_metrics))
        for key, value in sdk_metrics.items():
            if key in bridge_metrics:
                assert bridge_metrics[key] == pytest.approx(value), key
        b_rows, s_rows = bridge.rows(name), sdk.rows(name)
        assert len(s_rows) == len(run.logs[0].samples or []) == 6
        for b, s in zip(b_rows, s_rows, strict=True):
            diffs += _diff(f"{name} row", json.loads(b), json.loads(s))
    counts = Counter(f["feedback_type"] for f in sdk.feedback)
    scores = sum(len(s.scores or {}) for log in run.logs for s in log.samples or [])
    assert sum(counts.values()) == scores == 24  # one per score: 2 models × 6 rows × 2 scorers
    diffs += _diff("feedback types", Counter(f["feedback_type"] for f in bridge.feedback), counts)
    assert not diffs, "\n".join(diffs[:12]) + f"\n({len(diffs)} differences)"


def test_the_views_compared_are_not_vacuous(weave_server: WeaveServer, both: tuple[Run, str]) -> None:
    """What the comparison reads holds Inspect's numbers: the test above cannot pass on empty views."""
    run, sdk_project = both
    sdk = View(weave_server, sdk_project)
    for log in run.logs:
        name = f"{log.eval.task} · {log.eval.model}"
        assert log.results is not None and log.samples is not None
        metrics = sdk.metrics(name)
        for score in log.results.scores:
            for metric in score.metrics.values():
                assert metrics[f"{score.name}.{metric.name}"] == pytest.approx(metric.value)
        root = sdk.root(name)
        assert root["status"] == "complete" and root["status_counts"]
        usage = log.stats.model_usage[log.eval.model]
        assert root["usage"][log.eval.model]["input_tokens"] == usage.input_tokens
        # every model that answered (a grader too) has its own usage key
        answered = {e.output.model for s in log.samples for e in s.events if e.event == "model"}
        assert set(root["usage"]) == answered and len(answered) == (2 if log.eval.task == "graded" else 1)
        rows = [json.loads(r) for r in sdk.rows(name)]
        assert len(rows) == len(log.samples)
        for row in rows:
            [predict] = [c for c in row["children"] if c["op"] == "Model.predict"]
            scorers = set(log.samples[0].scores or {})
            assert len(predict["feedback"]) == len(scorers)
            assert {c["op"] for c in row["children"]} == {"Model.predict"} | scorers
    assert Path(run.span_files[0]).exists()


# --- an evaluation written in the old shape, then synced with this one ------------------------

OLD_SHAPE_COMMIT = "c639cfd"  # the last commit writing `<scorer>.score` calls with dict outputs
OLD_WRITER = """
import os
from dataclasses import replace
from pathlib import Path
import otel_bridge
assert otel_bridge.__file__.startswith({old!r}), otel_bridge.__file__  # the old code, not this tree
from otel_bridge.config import load_settings
from otel_bridge.records import read_span_file
from otel_bridge.sinks.weave import WeaveSink
settings = load_settings().with_exporters(("weave",))
sink = WeaveSink(replace(settings, weave=replace(settings.weave, project={project!r})))
spans = [s for p in {files!r} for s in read_span_file(Path(p))]
roots = [i for i, s in enumerate(spans) if s.name == "inspect.sample"]
if {partial!r}:  # killed after a few rows: no task end
    spans = [s for s in spans[: roots[3] + 1] if s.name != "inspect.task"]
sink.consume(spans)
assert sink.flush(30)
os._exit(0)
"""


def test_sync_into_an_evaluation_of_the_old_shape_adds_no_duplicates(
    weave_server: WeaveServer, both: tuple[Run, str], tmp_path: Path
) -> None:
    """What docs/weave.md says: an ended old-shape evaluation is left as it is; one left running
    gets only its missing rows (new shape) and its end — never a second copy of a row."""
    run, _ = both
    root = Path(__file__).resolve().parents[1]
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", OLD_SHAPE_COMMIT, "otel_bridge"], capture_output=True
    )
    if archive.returncode != 0:
        shallow = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
        )
        if shallow.returncode == 0 and shallow.stdout.strip() == "false":  # a full clone holds it
            pytest.fail(f"commit {OLD_SHAPE_COMMIT} (the old writer) not found: {archive.stderr.decode()}")
        pytest.skip("no full git history here: the old writer, a commit of this repository, is absent")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    files = [str(p) for p in run.span_files]
    for partial in (False, True):
        project = unique("old-shape")
        code = OLD_WRITER.format(old=str(old), project=project, files=files, partial=partial)
        weave_server.run_python(code, project, extra_env={"PYTHONPATH": str(old)})
        scorer = next(iter((run.logs[0].samples or [])[0].scores or {}))
        ops = Counter(short(c["op_name"]) for c in weave_server.calls(project))
        assert ops[f"{scorer}.score"] > 0 and ops[scorer] == 0  # really the old shape
        before = weave_server.calls(project)
        result = subprocess.run(
            [str(Path(sys.executable).parent / "otel-bridge"), "sync", *files, "--to", "weave", "--quiet"],
            env=weave_server.env(*project.split("/")) | {"INSPECT_OTEL_WEAVE_PROJECT": project},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stderr
        view = View(weave_server, project)
        assert len(view.evals) == 2
        for ev in view.evals.values():
            rows = [
                c["attributes"]["inspect"]["key"]
                for c in view.kids.get(ev["id"], [])
                if short(c["op_name"]) == "Evaluation.predict_and_score"
            ]
            assert len(rows) == len(set(rows)) == 6
            assert weave_server.evaluation_status(project, ev["id"])["code"] == "complete"
        if not partial:  # already complete: nothing written
            assert len(view.calls) == len(before)
        else:  # the missing rows in the new shape, beside the old ones
            ops = Counter(short(c["op_name"]) for c in view.calls)
            assert ops[f"{scorer}.score"] + ops[scorer] == 12
            assert ops[scorer] > 0


def test_errored_samples_show_as_descendant_errors_like_the_sdks_rollup(
    weave_server: WeaveServer, tmp_path: Path
) -> None:
    """An eval that succeeds with an errored sample: the root's status_counts count the errored
    calls of the row (the SDK's rule, checked on the SDK's own tree above), so Weave warns."""
    run = run_eval(
        weave_server,
        unique("oracle-errored"),
        tmp_path,
        "-M",
        "error_on=10 + 16",
        "--no-fail-on-error",
        models=("offline/careful",),
    )
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    [log] = run.logs
    assert log.status == "success" and log.samples is not None
    errored = [s for s in log.samples if s.error is not None]
    assert errored, "Inspect should have recorded the refused prompt as a sample error"
    view = View(weave_server, run.project)
    [name] = view.evals
    root = view.root(name)
    assert root["status_counts"], view.evals[name].get("summary")
    counts = view.evals[name]["summary"]["status_counts"]
    rows = [c for c in view.kids[view.evals[name]["id"]] if c.get("exception")]
    assert len(rows) == len(errored) and counts["error"] >= len(errored)
    assert view.evals[name].get("exception") is None  # the task itself succeeded


PRICED = "gpt-4o-2024-08-06"  # a dated name in Weave's default cost table
COST_FIELDS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_total_cost",
    "completion_tokens_total_cost",
)


def test_cost_equals_the_sdks_for_a_priced_response_model(weave_server: WeaveServer, tmp_path: Path) -> None:
    """The offline models answering as a priced response model: with ``include_costs`` the server
    prices both sides' root usage, and the bridge's evaluations cost what the SDK's cost (> $0)."""
    run = run_eval(weave_server, unique("oracle-priced"), tmp_path, "-M", f"response_model={PRICED}")
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    events = [e for log in run.logs for s in log.samples or [] for e in s.events]
    answered = {e.output.model for e in events if e.event == "model"}
    assert answered == {PRICED}  # Inspect's log: the provider's name for the model, as a real one reports
    sdk_project = log_with_sdk(weave_server, run.logs, unique("oracle-priced-sdk"))

    def costs(project: str) -> dict[str, dict[str, dict[str, Any]]]:
        evals = weave_server.calls(
            project, {"op_names": [f"weave:///{project}/op/Evaluation.evaluate:*"]}, include_costs=True
        )
        return {
            e["display_name"]: {
                model: {k: cost[k] for k in COST_FIELDS}
                for model, cost in ((e.get("summary") or {}).get("weave") or {}).get("costs", {}).items()
            }
            for e in evals
        }

    bridge, sdk = costs(run.project), costs(sdk_project)
    assert len(sdk) == 2 and sorted(bridge) == sorted(sdk)
    for name, by_model in sdk.items():
        assert set(by_model) == {PRICED}, by_model
        cost = by_model[PRICED]
        assert cost["prompt_tokens_total_cost"] > 0 and cost["completion_tokens_total_cost"] > 0
        log = next(log for log in run.logs if name.endswith(log.eval.model))
        assert cost["prompt_tokens"] == log.stats.model_usage[log.eval.model].input_tokens
        assert set(bridge[name]) == {PRICED}, bridge[name]
        assert bridge[name][PRICED] == pytest.approx(cost), name
