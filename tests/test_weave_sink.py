"""Real Inspect evals → the real weave client → a real Weave trace server, checked as Weave reads it.

Every eval runs as ``inspect eval`` in a subprocess (weave.init's global state stays out of this
process) with the bridge's hook on and the ``weave`` exporter pointed at the test server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog, read_eval_log

from otel_bridge.config import Settings, WeaveSettings, load_settings
from otel_bridge.sinks.base import DeliveryError
from otel_bridge.sinks.weave import WeaveSink
from otel_bridge.wandb_env import credentials_problem
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODELS = ("offline/careful", "offline/hasty")


@dataclass
class Run:
    project: str
    logs: list[EvalLog]
    span_files: list[Path]
    proc: subprocess.CompletedProcess[str]
    seconds: float


def unique(label: str) -> str:
    """A fresh project per scenario (the session server is shared)."""
    return f"ent/{label}-{uuid.uuid4().hex[:10]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _eval_env(server: WeaveServer, project: str, span_dir: Path, **extra: str) -> dict[str, str]:
    entity, name = project.split("/")
    env = server.env(entity, name)
    env.update(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_EXPORTERS": "file,weave",
            "INSPECT_OTEL_WEAVE_PROJECT": project,
            "INSPECT_OTEL_DIR": str(span_dir),
            "INSPECT_OTEL_FLUSH_TIMEOUT": "20",
            "PYTHONPATH": str(ROOT / "examples"),
        }
    )
    env.update(extra)
    return env


def _inspect_cmd(
    log_dir: Path, *args: str, models: tuple[str, ...] = MODELS, task: str | None = None
) -> list[str]:
    return [
        str(BIN / "inspect"),
        "eval",
        task or str(ROOT / "examples" / "bridge_demo.py@arithmetic"),
        "--model",
        ",".join(models),
        "--log-dir",
        str(log_dir),
        "--display",
        "none",
        *args,
    ]


def run_eval(
    server: WeaveServer, project: str, tmp: Path, *args: str, env: dict[str, str] | None = None, **kw: Any
) -> Run:
    log_dir, span_dir = tmp / "logs", tmp / "spans"
    full_env = _eval_env(server, project, span_dir)
    full_env.update(env or {})
    t = time.monotonic()
    proc = subprocess.run(
        _inspect_cmd(log_dir, "-T", "samples=3", "--epochs", "2", *args, **kw),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp,
    )
    seconds = time.monotonic() - t
    logs = [read_eval_log(str(p)) for p in sorted(log_dir.glob("*.eval"))]
    return Run(project, logs, sorted(span_dir.glob("*.jsonl")), proc, seconds)


def sync(
    server: WeaveServer, project: str, files: list[Path], **extra: str
) -> subprocess.CompletedProcess[str]:
    entity, name = project.split("/")
    env = server.env(entity, name)
    env.update({"INSPECT_OTEL_WEAVE_PROJECT": project, **extra})
    return subprocess.run(
        [str(BIN / "otel-bridge"), "sync", *map(str, files), "--to", "weave", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


# --- reading Weave back ---------------------------------------------------------------------


def short(op_name: str) -> str:
    return op_name.rsplit("/", 1)[-1].split(":", 1)[0]


def tree(server: WeaveServer, project: str) -> dict[str | None, list[dict[str, Any]]]:
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    for call in server.calls(project):
        by_parent.setdefault(call.get("parent_id"), []).append(call)
    return by_parent


def canonical(server: WeaveServer, project: str) -> list[Any]:
    """Everything a user sees, without ids and project names (to compare two projects)."""
    kids = tree(server, project)

    def norm(value: Any) -> Any:
        # a ref's digest covers the refs inside the object, which name the project
        text = re.sub(
            r"(weave:///P/[a-z]+/[^:\"]+):[A-Za-z0-9]+",
            r"\1:D",
            json.dumps(value, default=str).replace(project, "P"),
        )
        return json.loads(text)

    def node(call: dict[str, Any]) -> Any:
        summary = {k: v for k, v in (call.get("summary") or {}).items() if k != "weave"}
        return norm(
            {
                "op": short(call["op_name"]),
                "name": call.get("display_name"),
                "start": call["started_at"],
                "end": call.get("ended_at"),
                "inputs": call.get("inputs"),
                "output": call.get("output"),
                "exception": call.get("exception"),
                "summary": summary,
                "attrs": {k: v for k, v in (call.get("attributes") or {}).items() if k != "weave"},
                "children": sorted((node(c) for c in kids.get(call["id"], [])), key=json.dumps),
            }
        )

    return sorted((node(c) for c in kids.get(None, [])), key=json.dumps)


def check_matches_inspect(server: WeaveServer, run: Run) -> None:
    """The evaluations, rows, scores and trees in Weave are Inspect's."""
    try:
        _check_matches_inspect(server, run)
    except Exception as exc:
        raise AssertionError(
            f"{exc}\n--- eval stderr\n{run.proc.stderr[-4000:]}\n--- server\n{server.log_tail()}"
        ) from exc


def _check_matches_inspect(server: WeaveServer, run: Run) -> None:
    project = run.project
    evals = server.evaluations(project)
    assert len(evals) == len(run.logs) == 2
    by_eval_id = {e["attributes"]["inspect"]["eval_id"]: e for e in evals}
    digests: dict[str, set[str]] = {}
    for log in run.logs:
        ev = by_eval_id[log.eval.eval_id]
        assert ev["display_name"] == f"arithmetic · {log.eval.model}"
        assert server.evaluation_status(project, ev["id"])["code"] == "complete"
        assert ev["exception"] is None
        # the objects: Evaluation (task, dataset, scorers) and Model
        evaluation, model = server.read_refs([ev["inputs"]["self"], ev["inputs"]["model"]])
        assert evaluation["name"] == "arithmetic"
        assert model["model"] == log.eval.model and model["name"] == log.eval.model.replace("/", "-")
        dataset, *scorers = server.read_refs([evaluation["dataset"], *evaluation["scorers"]])
        assert dataset["name"] == "arithmetic-dataset"
        assert [s["name"] for s in scorers] == ["pattern", "used_tool"]
        # summary = Inspect's metrics
        assert log.results is not None
        for score in log.results.scores:
            for metric in score.metrics.values():
                assert ev["output"][score.name][metric.name] == pytest.approx(metric.value)
        # the metric columns are the scores; Inspect's counters sit in the summary
        assert set(ev["output"]) == {s.name for s in log.results.scores} | {"model_latency"}
        assert ev["summary"]["inspect"]["samples_total"] == log.results.total_samples
        assert ev["summary"]["inspect"]["log_location"].endswith(Path(log.location).name)
        usage = log.stats.model_usage[log.eval.model]
        assert ev["summary"]["usage"][log.eval.model]["input_tokens"] == usage.input_tokens
        assert ev["summary"]["usage"][log.eval.model]["output_tokens"] == usage.output_tokens
        # rows = Inspect's samples
        kids = server.children(project, ev["id"])
        rows = [k for k in kids if short(k["op_name"]) == "Evaluation.predict_and_score"]
        assert [short(k["op_name"]) for k in kids].count("Evaluation.summarize") == 1
        assert log.samples is not None
        assert len(rows) == len(log.samples) == 6
        by_key = {
            (r["attributes"]["inspect"]["sample_id"], r["attributes"]["inspect"]["epoch"]): r for r in rows
        }
        for sample in log.samples:
            row = by_key[(str(sample.id), sample.epoch)]
            assert row["ended_at"] is not None and row["exception"] is None
            assert row["inputs"]["example"]["id"] == str(sample.id)
            assert row["inputs"]["example"]["input"] == sample.input
            assert row["output"]["output"] == sample.output.completion
            assert sample.scores is not None
            assert row["output"]["scores"]["pattern"] == (
                1.0 if sample.scores["pattern"].value == "C" else 0.0
            )
            assert row["output"]["scores"]["used_tool"] == sample.scores["used_tool"].value
            assert row["output"]["model_latency"] == pytest.approx(sample.total_time)
            digests.setdefault(str(sample.id), set()).add(
                json.dumps(row["inputs"]["example"], sort_keys=True)
            )
        check_tree(server, project, rows[0], log)
    # the same Inspect sample is the same dataset row for both models (Compare pairs them)
    assert all(len(v) == 1 for v in digests.values())


def check_tree(server: WeaveServer, project: str, row: dict[str, Any], log: EvalLog) -> None:
    """predict → init / solvers → solver → agent → chat + tool; scorers beside predict."""
    kids = server.children(project, row["id"])
    ops = [short(k["op_name"]) for k in kids]
    assert ops == ["Model.predict", "pattern", "used_tool"]
    predict, pattern, used_tool = kids
    # scorer calls: output = the score; Inspect's raw value and explanation in the attributes
    sample = next(s for s in log.samples or [] if str(s.id) == row["attributes"]["inspect"]["sample_id"])
    assert sample.scores is not None
    assert pattern["output"] == row["output"]["scores"]["pattern"]
    assert pattern["attributes"]["inspect"]["raw"] == sample.scores["pattern"].value
    assert pattern["attributes"]["inspect"]["answer"] == sample.scores["pattern"].answer
    assert used_tool["output"] == sample.scores["used_tool"].value
    assert used_tool["attributes"]["inspect"]["explanation"] == sample.scores["used_tool"].explanation
    chats: list[dict[str, Any]] = []

    def walk(call: dict[str, Any], depth: int, path: list[str]) -> None:
        for child in server.children(project, call["id"]):
            assert child["started_at"] >= call["started_at"] or depth == 0  # Inspect's init precedes
            name = short(child["op_name"])
            if name == "chat":
                chats.append(child)
                assert path[-1] in ("invoke_agent", "inspect.solver")
            walk(child, depth + 1, [*path, name])

    walk(predict, 0, ["Model.predict"])
    solvers = [short(c["op_name"]) for c in server.children(project, predict["id"])]
    assert solvers == ["inspect.init", "inspect.solvers"]
    assert len(chats) == 3
    chat = chats[0]
    assert chat["display_name"].startswith("chat ")
    assert chat["output"]["usage"]["input_tokens"] > 0
    assert chat["inputs"]["messages"][-1]["role"] == "user"
    assert chat["summary"]["usage"][log.eval.model]["requests"] == 1
    total_in = sum(c["output"]["usage"]["input_tokens"] for c in chats)
    assert row["summary"]["usage"][log.eval.model]["input_tokens"] == total_in


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_eval(weave_server, unique("live"), tmp_path_factory.mktemp("live"))
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def offline(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The same eval while Weave is unreachable (nothing listens on its port)."""
    dead = f"http://127.0.0.1:{_free_port()}"
    run = run_eval(
        weave_server,
        unique("offline"),
        tmp_path_factory.mktemp("offline"),
        env={"WF_TRACE_SERVER_URL": dead, "WANDB_BASE_URL": dead},
    )
    return run


# --- tests ------------------------------------------------------------------------------------


def test_live_eval_is_one_weave_evaluation_per_task_and_model(weave_server: WeaveServer, live: Run) -> None:
    check_matches_inspect(weave_server, live)


def test_sync_of_the_live_file_is_identical_and_sync_twice_adds_nothing(
    weave_server: WeaveServer, live: Run
) -> None:
    before = weave_server.calls(live.project)
    assert sync(weave_server, live.project, live.span_files).returncode == 0
    assert len(weave_server.calls(live.project)) == len(before)
    fresh = unique("replayed")
    assert sync(weave_server, fresh, live.span_files).returncode == 0
    assert canonical(weave_server, fresh) == canonical(weave_server, live.project)
    n = len(weave_server.calls(fresh))
    assert sync(weave_server, fresh, live.span_files).returncode == 0
    assert len(weave_server.calls(fresh)) == n
    # score feedback, as the SDK's apply_scorer: one per score on each Model.predict, also after
    # a live run plus a sync, and after two syncs
    scores = sum(len(s.scores or {}) for log in live.logs for s in log.samples or [])
    for project in (live.project, fresh):
        per_score = weave_server.wait_for(
            lambda p=project: Counter((f["weave_ref"], f["feedback_type"]) for f in weave_server.feedback(p)),
            lambda c: sum(c.values()) >= scores,
        )
        assert len(per_score) == scores == 24 and set(per_score.values()) == {1}


def test_server_down_changes_nothing_for_inspect_and_sync_delivers(
    weave_server: WeaveServer, offline: Run
) -> None:
    assert offline.proc.returncode == 0, offline.proc.stderr[-3000:]
    assert all(log.status == "success" for log in offline.logs)
    assert offline.seconds < 90
    assert "Weave" in offline.proc.stderr and "otel-bridge sync" in offline.proc.stderr
    # one line when it fails (the sink keeps retrying), one at exit naming the command that delivers
    assert offline.proc.stderr.count("cannot reach Weave") == 1, offline.proc.stderr[-3000:]
    assert offline.proc.stderr.count("Weave did not confirm every write") == 1
    assert weave_server.evaluations(offline.project) == []
    result = sync(weave_server, offline.project, offline.span_files)
    assert result.returncode == 0, result.stderr
    check_matches_inspect(weave_server, offline)


def test_sync_after_a_partial_live_upload_completes_without_duplicates(
    weave_server: WeaveServer, live: Run, tmp_path: Path
) -> None:
    """A process killed mid-task leaves a running evaluation with some rows; sync finishes it."""
    project = unique("partial")
    code = f"""
import os
import re
from dataclasses import replace
from otel_bridge.config import load_settings
from otel_bridge.records import read_span_file
from otel_bridge.sinks.weave import WeaveSink
from pathlib import Path
settings = load_settings().with_exporters(("weave",))  # the server's credentials and URL from the env
sink = WeaveSink(replace(settings, weave=replace(settings.weave, project={project!r})))
spans = [s for p in {[str(p) for p in live.span_files]!r} for s in read_span_file(Path(p))]
sample_roots = [i for i, s in enumerate(spans) if s.name == "inspect.sample"]
sink.consume([s for s in spans[: sample_roots[3] + 1] if s.name != "inspect.task"])
assert sink.flush(30)
os._exit(0)  # killed: no finalize, no task end
"""
    weave_server.run_python(code, project, extra_env={"PYTHONPATH": str(ROOT)})
    [running, *_] = weave_server.evaluations(project)
    assert weave_server.evaluation_status(project, running["id"])["code"] == "running"
    assert sync(weave_server, project, live.span_files).returncode == 0
    assert canonical(weave_server, project) == canonical(weave_server, live.project)


def test_killed_between_summary_and_end_a_replay_writes_no_second_summary(
    weave_server: WeaveServer, live: Run
) -> None:
    """The narrowest crash window: Evaluation.summarize written, the evaluate call not yet ended."""
    project = unique("summary-window")
    code = f"""
import os
from dataclasses import replace
from otel_bridge.config import load_settings
from otel_bridge.records import read_span_file
from otel_bridge.sinks.weave import WeaveSink
from pathlib import Path
settings = load_settings().with_exporters(("weave",))
sink = WeaveSink(replace(settings, weave=replace(settings.weave, project={project!r})))
real_end = sink._end
def end(client, call, output, end_ns, error=None):  # the kill, at exactly that point
    real_end(client, call, output, end_ns, error)
    if "Evaluation.summarize" in str(call.op_name):
        client.flush()
        os._exit(0)
sink._end = end
sink.consume([s for p in {[str(p) for p in live.span_files]!r} for s in read_span_file(Path(p))])
"""
    weave_server.run_python(code, project, extra_env={"PYTHONPATH": str(ROOT)})
    summaries = [c for c in weave_server.calls(project) if short(c["op_name"]) == "Evaluation.summarize"]
    assert len(summaries) == 1  # the first evaluation's summary, then the "kill"
    assert sync(weave_server, project, live.span_files).returncode == 0
    # weave's client rolls the children it ended itself into the parent's status_counts; the
    # summary the killed process wrote is counted by the server, not by the client that ends it
    assert _without_status_counts(canonical(weave_server, project)) == _without_status_counts(
        canonical(weave_server, live.project)
    )
    summaries = [c for c in weave_server.calls(project) if short(c["op_name"]) == "Evaluation.summarize"]
    assert len(summaries) == 2  # one per evaluation: the replay wrote no second one


def _without_status_counts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_status_counts(v) for k, v in value.items() if k != "status_counts"}
    if isinstance(value, list):
        return [_without_status_counts(v) for v in value]
    return value


def test_task_error_and_cancellation_show_failed(weave_server: WeaveServer, tmp_path: Path) -> None:
    project = unique("failing")
    (tmp_path / "err").mkdir()
    err = run_eval(
        weave_server, project, tmp_path / "err", "-M", "error_on=10 + 16", models=("offline/careful",)
    )
    assert err.proc.returncode != 0 or err.logs[0].status == "error"
    [ev] = weave_server.evaluations(project)
    assert weave_server.evaluation_status(project, ev["id"])["code"] == "failed"
    assert "10 + 16" in (ev["exception"] or "")
    # cancelled: Ctrl-C while the evaluation is running
    project = unique("cancelled")
    log_dir, span_dir = tmp_path / "c-logs", tmp_path / "c-spans"
    proc = subprocess.Popen(
        _inspect_cmd(log_dir, "-T", "samples=3", "-M", "latency=4", models=("offline/careful",)),
        env=_eval_env(weave_server, project, span_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        evals = weave_server.wait_for(lambda: weave_server.evaluations(project), bool, timeout=60)
        assert evals, "the evaluation should show while the task runs"
        assert weave_server.evaluation_status(project, evals[0]["id"])["code"] == "running"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    ev = weave_server.wait_for(
        lambda: weave_server.evaluations(project)[0], lambda e: e.get("ended_at") is not None, timeout=30
    )
    # Inspect's own log says whether the Ctrl-C landed while the task ran (on a loaded machine
    # the task can finish first); the evaluation must say the same
    logs = [read_eval_log(str(p)) for p in sorted(log_dir.glob("*.eval"))]
    cancelled = not logs or any(log.status != "success" for log in logs)
    expected = "failed" if cancelled else "complete"
    assert weave_server.evaluation_status(project, ev["id"])["code"] == expected, [log.status for log in logs]


def test_content_off_and_traces_off(weave_server: WeaveServer, tmp_path: Path) -> None:
    project = unique("private")
    run = run_eval(
        weave_server,
        project,
        tmp_path,
        models=("offline/careful",),
        env={"INSPECT_OTEL_CAPTURE_CONTENT": "false", "INSPECT_OTEL_WEAVE_TRACES": "false"},
    )
    assert run.proc.returncode == 0, run.proc.stderr[-2000:]
    calls = weave_server.calls(project)
    dump = json.dumps(calls)
    for text in ("What is", "ANSWER", "careful calculator"):
        assert text not in dump
    [ev] = weave_server.evaluations(project)
    assert ev["output"]["pattern"]["accuracy"] == pytest.approx(1.0)
    ops = {short(c["op_name"]) for c in calls}
    assert "chat" not in ops and "inspect.solver" not in ops
    rows = [c for c in calls if short(c["op_name"]) == "Evaluation.predict_and_score"]
    assert len(rows) == 6 and all(r["output"]["scores"]["pattern"] == 1.0 for r in rows)


def test_no_credentials_means_one_message_and_no_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"HOME": str(tmp_path), "WANDB_BASE_URL": "https://api.example.invalid"}
    assert credentials_problem(load_settings(env).wandb) is not None
    (tmp_path / ".netrc").write_text("machine api.example.invalid login user password k" + "0" * 39 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert credentials_problem(load_settings(env).wandb) is None
    for key in [k for k in os.environ if k.startswith(("WANDB", "WF_", "WEAVE"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "stdin", None)  # any prompt would crash here
    from otel_bridge import notify
    from otel_bridge.records import SpanRecord

    notify.forget()
    sink = WeaveSink(Settings(weave=WeaveSettings(project="e/p")))
    started = SpanRecord("a" * 32, "b" * 16, None, "inspect.task.started", 1, 1, 1, {"inspect.eval_id": "E"})
    t = time.monotonic()
    for _ in range(2):  # refused honestly each time (the writes are kept), said once
        with pytest.raises(DeliveryError):
            sink.consume([started])
    sink.finalize_incomplete("end")
    sink.close()
    assert time.monotonic() - t < 2
    err = capsys.readouterr().err
    assert err.count("no W&B credentials") == 1 and "otel-bridge sync" in err
    assert "no W&B credentials" in (sink.problem() or "")
    assert "no Weave project" in (WeaveSink(Settings(weave=WeaveSettings(project=None))).problem() or "")


def test_a_long_evaluation_does_not_hold_its_rows_until_it_ends(
    weave_server: WeaveServer, tmp_path: Path
) -> None:
    """A 400-sample file fed to the sink as a sync does: the rows the server already holds leave
    the sink's memory as it goes (before, every row stayed until the evaluation ended: ~3 GB of
    `sync --to weave` at 100k samples), and every row arrives. Oracle for arrival: the sample
    traces in the file, counted from its JSON here, against the server's rows."""
    from bench.scale_spans import scale
    from tests.support.demo_spans import demo_span_file

    path = tmp_path / "long.jsonl"
    scale(demo_span_file(), path, 400)
    samples = sum(
        s["name"] == "inspect.sample"
        for line in path.read_text().splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    )
    project = unique("long")
    code = f"""
from dataclasses import replace
from itertools import islice
from otel_bridge.config import load_settings
from otel_bridge.records import read_span_file
from otel_bridge.sinks.weave import WeaveSink
from pathlib import Path
settings = load_settings().with_exporters(("weave",))
sink = WeaveSink(replace(settings, weave=replace(settings.weave, project={project!r})))
spans, held = read_span_file(Path({str(path)!r})), []
while batch := list(islice(spans, 500)):
    sink.consume(batch)
    held.append(sink.ledger.pending_rows())
assert sink.flush(120)
print("HELD", max(held), sink.ledger.pending_rows())
"""
    out = weave_server.run_python(code, project, extra_env={"PYTHONPATH": str(ROOT)})
    peak, left = (int(v) for v in re.search(r"HELD (\d+) (\d+)", out.stdout).groups())  # type: ignore[union-attr]
    rows = [c for c in weave_server.calls(project) if short(c["op_name"]) == "Evaluation.predict_and_score"]
    assert samples >= 400 and len(rows) == samples
    assert left == 0
    assert peak < samples / 2, f"{peak} of {samples} rows held at once"
