"""The pure W&B Models translation: span records in, typed writes out (no wandb involved)."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from otel_bridge import conventions as c
from otel_bridge.config import load_settings
from otel_bridge.records import SpanRecord
from otel_bridge.sinks.wandb import wandb_options
from otel_bridge.translate.wandb import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_OK,
    SCORER_METRICS_HINT,
    DefineMetric,
    FinishRun,
    LogFiles,
    LogRow,
    LogTable,
    Options,
    SetName,
    SetTags,
    StartRun,
    UpdateConfig,
    UpdateSummary,
    WandbTranslator,
    Write,
    run_key,
)

_ids = itertools.count(1)
_clock = itertools.count(1_800_000_000_000_000_000, 1_000_000_000)


def span(
    name: str,
    attrs: dict[str, Any],
    *,
    status: str = "UNSET",
    message: str = "",
    start: int | None = None,
    end: int | None = None,
) -> SpanRecord:
    n = next(_ids)
    t0 = next(_clock) if start is None else start
    return SpanRecord(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        parent_id=None,
        name=name,
        kind=1,
        start_ns=t0,
        end_ns=end if end is not None else t0 + 500_000_000,
        attributes=attrs,
        status=status,
        status_message=message,
    )


class Eval:
    """Builds the spans the hook emits for one Inspect run (optionally inside an eval set)."""

    def __init__(self, run_id: str = "run1", eval_set_id: str | None = None) -> None:
        self.run_id = run_id
        self.eval_set_id = eval_set_id

    def base(self, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {c.RUN_ID: self.run_id, **extra}
        if self.eval_set_id:
            out[c.EVAL_SET_ID] = self.eval_set_id
        return out

    def task_attrs(self, task: str, model: str, eval_id: str, task_id: str | None = None) -> dict[str, Any]:
        return self.base(
            **{
                c.EVAL_ID: eval_id,
                c.TASK_ID: task_id or f"{task}-{model}",
                c.TASK_NAME: task,
                c.MODEL: model,
                c.TASK_ARGS: json.dumps({"samples": 3}),
                c.MODEL_ARGS: "{}",
                c.GENERATE_CONFIG: json.dumps({"temperature": 0.5}),
                c.EVAL_CONFIG: json.dumps({"epochs": 2, "limit": 3}),
                c.DATASET_NAME: f"{task}-data",
                c.DATASET_SAMPLES: 3,
                c.TASK_SCORERS: ["match"],
                c.GIT_COMMIT: "abc123",
                c.GIT_ORIGIN: "https://example.com/repo",
                c.GIT_DIRTY: False,
                c.PACKAGES: json.dumps({"inspect_ai": "0.3.285"}),
                c.INSPECT_VERSION: "0.3.285",
                c.COMMAND_LINE: "inspect eval x.py",
            }
        )

    def started(self, task: str, model: str, eval_id: str, **kw: Any) -> SpanRecord:
        attrs = self.task_attrs(task, model, eval_id, kw.pop("task_id", None))
        attrs.update(kw.pop("extra", {}))
        return span(c.SPAN_TASK_STARTED, attrs, **kw)

    def sample(
        self,
        task: str,
        model: str,
        eval_id: str,
        sid: str,
        epoch: int,
        value: Any,
        *,
        status: str = "success",
        tokens: int = 10,
        task_id: str | None = None,
        **attrs: Any,
    ) -> SpanRecord:
        numeric = {"C": 1.0, "I": 0.0}.get(value, value) if not isinstance(value, bool) else float(value)
        scores = {} if value is None else {"match": {"value": value, "numeric": numeric}}
        return span(
            c.SPAN_SAMPLE,
            self.base(
                **{
                    c.EVAL_ID: eval_id,
                    c.TASK_ID: task_id or f"{task}-{model}",
                    c.TASK_NAME: task,
                    c.MODEL: model,
                    c.SAMPLE_ID: sid,
                    c.SAMPLE_EPOCH: epoch,
                    c.SAMPLE_UUID: f"{eval_id}-{sid}-{epoch}",
                    c.SAMPLE_ATTEMPT: 1,
                    c.SAMPLE_STATUS: status,
                    c.SAMPLE_SCORES: json.dumps(scores),
                    c.SAMPLE_INPUT: f"question {sid}",
                    c.SAMPLE_TARGET: "42",
                    c.SAMPLE_OUTPUT: "ANSWER: 42",
                    c.USAGE_INPUT_TOKENS: tokens - 2,
                    c.USAGE_OUTPUT_TOKENS: 2,
                    c.USAGE_TOTAL_TOKENS: tokens,
                    c.SAMPLE_TOTAL_TIME: 1.5,
                    **attrs,
                }
            ),
        )

    def task_end(
        self,
        task: str,
        model: str,
        eval_id: str,
        *,
        status: str = "success",
        metrics: dict[str, dict[str, float]] | None = None,
        completed: int = 0,
        errored: int = 0,
        tokens: int = 0,
        task_id: str | None = None,
        start: int | None = None,
    ) -> SpanRecord:
        attrs = self.task_attrs(task, model, eval_id, task_id)
        attrs.update(
            {
                c.TASK_STATUS: status,
                c.TASK_METRICS: json.dumps(metrics or {}),
                c.TASK_USAGE: json.dumps(
                    {model: {"input_tokens": tokens - 1, "output_tokens": 1, "total_tokens": tokens}}
                ),
                c.USAGE_TOTAL_TOKENS: tokens,
                c.SAMPLES_TOTAL: completed + errored,
                c.SAMPLES_COMPLETED: completed,
                c.SAMPLES_ERRORED: errored,
                c.LOG_LOCATION: f"/logs/{eval_id}.eval",
            }
        )
        return span(c.SPAN_TASK, attrs, status="ERROR" if status != "success" else "UNSET", start=start)

    def run_end(self, status: str = "success", **kw: Any) -> SpanRecord:
        return span(c.SPAN_RUN, self.base(**{c.RUN_STATUS: status, c.RUN_TASK_NAMES: ["t"]}), **kw)

    def eval_set_end(self, **kw: Any) -> SpanRecord:
        return span(c.SPAN_EVAL_SET, {c.EVAL_SET_ID: self.eval_set_id}, **kw)


def of(writes: list[Write], kind: type) -> list[Any]:
    return [w for w in writes if isinstance(w, kind)]


def rows_for(writes: list[Write], label: str) -> list[dict[str, Any]]:
    return [w.values for w in of(writes, LogRow) if f"{label}/samples" in w.values]


def two_pair_run() -> list[SpanRecord]:
    """Two task × model pairs interleaved, as concurrent tasks produce them."""
    e = Eval()
    return [
        e.started("t", "m/a", "e1"),
        e.started("t", "m/b", "e2"),
        e.sample("t", "m/a", "e1", "1", 1, "C"),
        e.sample("t", "m/b", "e2", "1", 1, "I"),
        e.sample("t", "m/a", "e1", "2", 1, "I"),
        e.sample("t", "m/b", "e2", "2", 1, "I"),
        e.sample("t", "m/a", "e1", "3", 1, "C"),
        e.task_end(
            "t", "m/a", "e1", metrics={"match": {"accuracy": 0.6667, "stderr": 0.33}}, completed=3, tokens=30
        ),
        e.task_end("t", "m/b", "e2", metrics={"match": {"accuracy": 0.0}}, completed=2, tokens=20),
        e.run_end(),
    ]


# --------------------------------------------------------------------------------------------


def test_run_identity_and_config() -> None:
    writes = WandbTranslator(Options(tags=("nightly",))).translate(two_pair_run())
    start = writes[0]
    assert isinstance(start, StartRun)
    assert (start.run, start.job_type, start.group, start.resume) == ("run1", "eval", "t", False)
    assert start.name == "t · m/a"
    assert start.tags == ("task:t", "model:m/a", "dataset:t-data", "nightly")
    cfg = start.config["t/m/a"]
    assert cfg["task_args"] == {"samples": 3}
    assert cfg["generate_config"] == {"temperature": 0.5}
    assert cfg["eval_config"] == {"epochs": 2, "limit": 3}
    assert cfg["dataset"] == {"name": "t-data", "samples": 3}
    assert start.config["git"] == {"origin": "https://example.com/repo", "commit": "abc123", "dirty": False}
    assert start.config["packages"] == {"inspect_ai": "0.3.285"}
    assert start.config["inspect"]["run_ids"] == ["run1"]
    # the second model arrives later: name, tags and config follow
    assert of(writes, SetName)[0].name == "t · m/a, m/b"
    assert "model:m/b" in of(writes, SetTags)[0].tags
    assert "t/m/b" in of(writes, UpdateConfig)[0].values


def test_running_metrics_per_pair_never_mix() -> None:
    writes = WandbTranslator().translate(two_pair_run())
    a = rows_for(writes, "t/m/a")
    b = rows_for(writes, "t/m/b")
    assert [r["t/m/a/samples"] for r in a] == [1, 2, 3, 3]
    assert [r["t/m/a/match/accuracy"] for r in a[:3]] == pytest.approx([1.0, 0.5, 2 / 3])
    assert a[-1]["t/m/a/match/accuracy"] == 0.6667  # Inspect's own value at task end
    assert a[-1]["t/m/a/match/stderr"] == 0.33
    assert [r["t/m/b/samples"] for r in b] == [1, 2, 2]
    assert [r["t/m/b/match/accuracy"] for r in b] == [0.0, 0.0, 0.0]
    assert [r["t/m/a/tokens"] for r in a] == [10, 20, 30, 30]
    for row in (w.values for w in of(writes, LogRow)):
        assert not (any(k.startswith("t/m/a/") for k in row) and any(k.startswith("t/m/b/") for k in row))
    axes = {d.name: d.step_metric for d in of(writes, DefineMetric)}
    assert axes["t/m/a/match/accuracy"] == "t/m/a/samples"
    assert axes["t/m/b/errors"] == "t/m/b/samples"
    steps = [w.step for w in writes if isinstance(w, LogRow | LogTable)]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_numeric_scores_default_to_mean_and_hint_selects_metrics() -> None:
    e = Eval()
    hint = {SCORER_METRICS_HINT: json.dumps({"match": ["mean", "stderr", "bootstrap_stderr"]})}
    writes = WandbTranslator().translate(
        [
            e.started("t", "m", "e1"),
            e.sample("t", "m", "e1", "1", 1, 0.2),
            e.sample("t", "m", "e1", "2", 1, 0.6),
            e.started("u", "m", "e2", extra=hint),
            e.sample("u", "m", "e2", "1", 1, 1.0),
            e.sample("u", "m", "e2", "2", 1, 0.0),
        ]
    )
    t = rows_for(writes, "t/m")
    assert t[-1]["t/m/match/mean"] == pytest.approx(0.4) and "t/m/match/accuracy" not in t[-1]
    u = rows_for(writes, "u/m")
    assert u[-1]["u/m/match/mean"] == 0.5
    assert u[-1]["u/m/match/stderr"] == pytest.approx(0.5)  # std (ddof=1) 0.7071 / sqrt(2)
    assert "u/m/match/bootstrap_stderr" not in u[-1]  # not computable incrementally


def test_summary_holds_inspect_values_and_totals() -> None:
    writes = WandbTranslator().translate(two_pair_run())
    final = of(writes, UpdateSummary)[-1].values
    assert final["t/m/a/match/accuracy"] == 0.6667
    assert final["t/m/a/match/stderr"] == 0.33
    assert final["t/m/b/match/accuracy"] == 0.0
    assert (
        final["t/m/a/samples_total"],
        final["t/m/a/samples_completed"],
        final["t/m/a/samples_errored"],
    ) == (3, 3, 0)
    assert final["tokens/m/a/total_tokens"] == 30 and final["tokens/m/b/total_tokens"] == 20
    assert final["t/m/a/status"] == "success" and final["status"] == "success"
    assert final["logs"] == ["/logs/e1.eval", "/logs/e2.eval"]
    assert final["t/m/a/duration_s"] == 0.5
    assert final["duration_s"] > 0
    finish = writes[-1]
    assert isinstance(finish, FinishRun) and finish.exit_code == EXIT_OK
    files = of(writes, LogFiles)[0]
    assert files.eval_logs == ("/logs/e1.eval", "/logs/e2.eval")


def test_table_rows_content_and_cap() -> None:
    writes = WandbTranslator().translate(two_pair_run())
    table = of(writes, LogTable)[0]
    assert table.key == "samples"
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["task"] == "t" and row["model"] == "m/a" and row["sample_id"] == "1" and row["epoch"] == 1
    assert (row["input"], row["target"], row["output"]) == ("question 1", "42", "ANSWER: 42")
    assert row["score/match"] == "C" and row["total_tokens"] == 10 and row["total_time"] == 1.5
    assert len(table.rows) == 5

    capped = WandbTranslator(Options(table_max_rows=2, capture_content=False)).translate(two_pair_run())
    table = of(capped, LogTable)[0]
    assert len(table.rows) == 2
    for values in table.rows:
        row = dict(zip(table.columns, values, strict=True))
        assert (row["input"], row["target"], row["output"]) == (None, None, None)
    assert of(capped, UpdateSummary)[-1].values["table/rows_dropped"] == 3

    none = WandbTranslator(Options(table_max_rows=0, log_artifact=False)).translate(two_pair_run())
    assert not of(none, LogTable) and not of(none, LogFiles)


def test_same_spans_twice_change_nothing() -> None:
    records = two_pair_run()
    t = WandbTranslator()
    first = t.translate(records)
    assert t.translate(records) == []
    assert t.translate(list(reversed(records))) == []
    assert of(first, FinishRun)


def test_batch_boundaries_do_not_matter() -> None:
    records = two_pair_run()
    whole = WandbTranslator().translate(records)
    for seed in range(5):
        rng = random.Random(seed)
        t = WandbTranslator()
        pieces: list[Write] = []
        i = 0
        while i < len(records):
            n = rng.randint(1, 4)
            pieces.extend(t.translate(records[i : i + n]))
            i += n
        assert pieces == whole


def test_a_resent_sample_replaces_its_earlier_values() -> None:
    e = Eval()
    writes = WandbTranslator().translate(
        [
            e.sample("t", "m", "e1", "1", 1, "I"),
            e.sample("t", "m", "e1", "1", 1, "C"),  # same sample and epoch, another span
            e.sample("t", "m", "e1", "2", 1, "C"),
        ]
    )
    assert [r["t/m/samples"] for r in rows_for(writes, "t/m")] == [1, 1, 2]
    assert rows_for(writes, "t/m")[-1]["t/m/match/accuracy"] == 1.0


def test_retried_and_cancelled_attempts_are_not_results() -> None:
    e = Eval()
    writes = WandbTranslator().translate(
        [
            e.sample("t", "m", "e1", "1", 1, None, status="retried", **{c.SAMPLE_WILL_RETRY: True}),
            e.sample("t", "m", "e1", "2", 1, None, status="cancelled"),
            e.sample("t", "m", "e1", "3", 1, None, status="error", **{c.SAMPLE_ERROR: "boom"}),
        ]
    )
    rows = rows_for(writes, "t/m")
    assert len(rows) == 1 and rows[0]["t/m/samples"] == 1 and rows[0]["t/m/errors"] == 1


def test_two_runs_in_one_translator_are_separate() -> None:
    t = WandbTranslator()
    first, second = Eval("r1"), Eval("r2")
    w1 = t.translate(
        [
            first.started("t", "m", "a"),
            first.sample("t", "m", "a", "1", 1, "C"),
            first.sample("t", "m", "a", "2", 1, "C"),
        ]
    )
    w1 += t.translate([first.task_end("t", "m", "a", completed=2), first.run_end()])
    w2 = t.translate(
        [second.started("t", "m", "b"), second.sample("t", "m", "b", "1", 1, "I"), second.run_end()]
    )
    assert {w.run for w in w1} == {"r1"} and {w.run for w in w2} == {"r2"}
    assert [r["t/m/samples"] for r in rows_for(w2, "t/m")] == [1]
    assert rows_for(w2, "t/m")[0]["t/m/match/accuracy"] == 0.0


@pytest.mark.parametrize(
    ("run_status", "task_status", "exit_code", "status"),
    [
        ("success", "success", EXIT_OK, "success"),
        ("error", "error", EXIT_ERROR, "error"),
        ("success", "error", EXIT_ERROR, "error"),
        ("cancelled", "cancelled", EXIT_CANCELLED, "cancelled"),
    ],
)
def test_exit_codes(run_status: str, task_status: str, exit_code: int, status: str) -> None:
    e = Eval()
    writes = WandbTranslator().translate(
        [e.started("t", "m", "e1"), e.task_end("t", "m", "e1", status=task_status), e.run_end(run_status)]
    )
    finish = writes[-1]
    assert isinstance(finish, FinishRun) and (finish.exit_code, finish.status) == (exit_code, status)
    assert of(writes, UpdateSummary)[-1].values["status"] == status


def test_killed_run_is_finished_failed_by_finalize() -> None:
    e = Eval()
    t = WandbTranslator()
    writes = t.translate([e.started("t", "m", "e1"), e.sample("t", "m", "e1", "1", 1, "C")])
    assert not of(writes, FinishRun) and t.open_runs == ["run1"]
    assert t.finish_pending() == []  # its end was never seen: flush does not finish it
    final = t.finalize_incomplete("the process was killed")
    finish = final[-1]
    assert isinstance(finish, FinishRun) and finish.exit_code == EXIT_INCOMPLETE
    summary = of(final, UpdateSummary)[-1].values
    assert summary["status"] == "incomplete" and summary["status_reason"] == "the process was killed"
    assert summary["t/m/status"] == "incomplete"
    assert t.open_runs == [] and t.finalize_incomplete("again") == []


def test_run_end_before_its_task_waits_for_the_task() -> None:
    e = Eval()
    t = WandbTranslator()
    early = t.translate([e.started("t", "m", "e1"), e.run_end()])
    assert not of(early, FinishRun)
    late = t.translate([e.sample("t", "m", "e1", "1", 1, "C"), e.task_end("t", "m", "e1", completed=1)])
    assert isinstance(late[-1], FinishRun) and late[-1].exit_code == EXIT_OK
    assert rows_for(late, "t/m")[0]["t/m/samples"] == 1


def test_eval_set_is_one_run_with_retries_and_resumes() -> None:
    t = WandbTranslator()
    first, retry = Eval("r1", "set1"), Eval("r2", "set1")
    t0 = 1_900_000_000_000_000_000
    writes = t.translate(
        [
            first.started("t", "m", "e1", start=t0),
            first.sample("t", "m", "e1", "1", 1, "C"),
            retry.started("t", "m", "e2", start=t0 + 10),  # task-level retry: same task_id, new eval_id
            retry.task_end(
                "t",
                "m",
                "e2",
                status="success",
                metrics={"match": {"accuracy": 1.0}},
                completed=2,
                start=t0 + 10,
            ),
            first.task_end("t", "m", "e1", status="cancelled", start=t0),  # the earlier attempt, ended late
            first.run_end("cancelled"),
            retry.run_end("success"),
        ]
    )
    start = of(writes, StartRun)[0]
    assert (start.run, start.group, start.resume) == ("set1", "set1", True)
    assert not of(writes, FinishRun), "an eval set's run ends with the eval set"
    assert rows_for(writes, "t/m")[-1]["t/m/match/accuracy"] == 1.0
    done = t.translate([first.eval_set_end()])
    assert isinstance(done[-1], FinishRun) and done[-1].exit_code == EXIT_OK
    assert of(done, UpdateSummary)[-1].values["t/m/status"] == "success"
    assert of(done, UpdateSummary)[-1].values["t/m/eval_id"] == "e2"
    # a second invocation of the same eval set continues the same W&B run
    again = Eval("r3", "set1")
    more = t.translate([again.started("u", "m", "e3"), again.task_end("u", "m", "e3", status="error")])
    assert of(more, StartRun)[0].run == "set1" and of(more, StartRun)[0].resume
    final = t.translate([again.run_end("error"), again.eval_set_end()])
    assert isinstance(final[-1], FinishRun) and final[-1].exit_code == EXIT_ERROR


def test_run_name_template() -> None:
    e = Eval("abc")
    opts = Options(run_name="{tasks} on {models} ({run_id}) {unknown}")
    start = WandbTranslator(opts).translate([e.started("t", "m", "e1")])[0]
    assert isinstance(start, StartRun) and start.name == "t on m (abc) {unknown}"
    bad = WandbTranslator(Options(run_name="{tasks"))
    start = bad.translate([e.started("t", "m", "e1")])[0]
    assert isinstance(start, StartRun) and start.name == "t · m"
    assert bad.problems and "INSPECT_OTEL_WANDB_RUN_NAME" in bad.problems[0]


def test_run_key_and_settings() -> None:
    assert run_key(span(c.SPAN_RUN, {c.RUN_ID: "a/b:c"})) == "a-b-c"
    assert run_key(span(c.SPAN_RUN, {c.RUN_ID: "r", c.EVAL_SET_ID: "s"})) == "s"
    assert run_key(span("chat x", {})) is None
    env = {
        "INSPECT_OTEL_WANDB_RUN_NAME": "{tasks}",
        "INSPECT_OTEL_WANDB_TAGS": "a, b",
        "INSPECT_OTEL_WANDB_TABLE_MAX_ROWS": "7",
        "INSPECT_OTEL_WANDB_LOG_ARTIFACT": "false",
        "INSPECT_OTEL_WANDB_FILES": "x.txt,y/*.log",
        "INSPECT_OTEL_CAPTURE_CONTENT": "false",
    }
    assert wandb_options(load_settings(env)) == Options(
        "{tasks}", ("a", "b"), 7, False, ("x.txt", "y/*.log"), False
    )


def test_weave_cross_reference_when_both_exporters_run() -> None:
    """With the Weave exporter on too, the run summary points at the Weave evaluations."""
    from otel_bridge.translate.wandb import weave_evaluations_url

    assert (
        weave_evaluations_url("team/proj", "https://api.wandb.ai")
        == "https://wandb.ai/team/proj/weave/evaluations"
    )
    assert weave_evaluations_url("team/proj", "https://wandb.example.com") == (
        "https://wandb.example.com/team/proj/weave/evaluations"
    )


def test_summary_points_at_the_weave_evaluations_when_weave_runs_too() -> None:
    from otel_bridge.translate.wandb import Options

    merged: dict[str, Any] = {}
    for write in of(
        WandbTranslator(Options(weave_project="team/evals")).translate(two_pair_run()), UpdateSummary
    ):
        merged.update(write.values)
    assert merged["weave/project"] == "team/evals"
    assert merged["weave/evaluations_url"].endswith("/team/evals/weave/evaluations")
    assert {merged["t/m/a/weave_eval_id"], merged["t/m/b/weave_eval_id"]} == {"e1", "e2"}
    plain: dict[str, Any] = {}
    for write in of(WandbTranslator().translate(two_pair_run()), UpdateSummary):
        plain.update(write.values)
    assert not any(k.startswith("weave/") or k.endswith("weave_eval_id") for k in plain)
