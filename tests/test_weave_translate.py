"""The pure Weave translation: spans in any order and batching → the same writes, exactly once."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.weave import (
    FinishEvaluation,
    LogPrediction,
    StartEvaluation,
    WeaveTranslator,
    log_prediction,
    object_name,
    prediction_key,
    score_value,
)

T0 = 1_800_000_000_000_000_000
MS = 1_000_000


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def span(self) -> str:
        self.n += 1
        return f"{self.n:016x}"

    def trace(self) -> str:
        self.n += 1
        return f"{self.n:032x}"


def _task_attrs(eval_id: str, model: str) -> dict[str, Any]:
    return {
        c.RUN_ID: "run1",
        c.EVAL_ID: eval_id,
        c.TASK_ID: f"task-{eval_id}",
        c.TASK_NAME: "arith",
        c.MODEL: model,
        c.TASK_ARGS: '{"n":2}',
        c.GENERATE_CONFIG: '{"temperature":0.5}',
        c.EVAL_CONFIG: '{"epochs":2}',
        c.TASK_SCORERS: ["match", "judge"],
        c.TASK_EPOCHS: 2,
        c.DATASET_NAME: "arith",
        c.DATASET_SAMPLES: 2,
        c.WANDB_DISPLAY_NAME: f"arith · {model}",
    }


def eval_spans(
    ids: Ids, eval_id: str, model: str, samples: int = 2, epochs: int = 2, status: str = "success"
) -> list[SpanRecord]:
    """A task × model as the hook records it: started marker, sample traces, task end."""
    task_trace, task_span = ids.trace(), ids.span()
    base = _task_attrs(eval_id, model)
    spans = [SpanRecord(task_trace, ids.span(), task_span, c.SPAN_TASK_STARTED, 1, T0, T0, dict(base))]
    t = T0 + 10 * MS
    for epoch in range(1, epochs + 1):
        for i in range(1, samples + 1):
            trace, root = ids.trace(), ids.span()
            sample_attrs = base | {
                c.SAMPLE_ID: f"s{i}",
                c.SAMPLE_EPOCH: epoch,
                c.SAMPLE_UUID: f"u-{eval_id}-{i}-{epoch}",
                c.SAMPLE_ATTEMPT: 1,
            }
            solvers, solver, chat, scorers, scorer = (ids.span() for _ in range(5))
            child = {k: v for k, v in sample_attrs.items() if k not in (c.TASK_SCORERS, c.WANDB_DISPLAY_NAME)}
            spans += [
                SpanRecord(trace, solvers, root, "inspect.solvers", 1, t + 1 * MS, t + 6 * MS, child | {}),
                SpanRecord(
                    trace,
                    solver,
                    solvers,
                    "inspect.solver",
                    1,
                    t + 2 * MS,
                    t + 5 * MS,
                    child
                    | {
                        c.SPAN_NAME: "generate",
                        c.SPAN_TYPE: "solver",
                        c.WANDB_DISPLAY_NAME: "solver: generate",
                    },
                ),
                SpanRecord(
                    trace,
                    chat,
                    solver,
                    f"chat {model}",
                    3,
                    t + 3 * MS,
                    t + 4 * MS,
                    child
                    | {
                        c.GEN_AI_OPERATION_NAME: "chat",
                        c.GEN_AI_REQUEST_MODEL: model,
                        c.GEN_AI_RESPONSE_MODEL: model,
                        c.GEN_AI_USAGE_INPUT_TOKENS: 10,
                        c.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
                        c.GEN_AI_INPUT_MESSAGES: json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": f"q{i}"}]}]
                        ),
                        c.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                            [{"role": "assistant", "parts": [{"type": "text", "content": f"a{i}"}]}]
                        ),
                    },
                ),
                SpanRecord(trace, scorers, root, "inspect.scorers", 1, t + 7 * MS, t + 9 * MS, dict(child)),
                SpanRecord(
                    trace,
                    scorer,
                    scorers,
                    "inspect.scorer",
                    1,
                    t + 7 * MS,
                    t + 8 * MS,
                    child | {c.SPAN_NAME: "match", c.SPAN_TYPE: "scorer"},
                ),
                SpanRecord(
                    trace,
                    root,
                    None,
                    c.SPAN_SAMPLE,
                    1,
                    t,
                    t + 10 * MS,
                    child
                    | {
                        c.SAMPLE_INPUT: f"q{i}",
                        c.SAMPLE_TARGET: f"a{i}",
                        c.SAMPLE_OUTPUT: f"a{i}",
                        c.SAMPLE_STATUS: "success",
                        c.SAMPLE_TOTAL_TIME: 0.01,
                        c.SAMPLE_SCORES: json.dumps(
                            {
                                "match": {
                                    "value": "C",
                                    "numeric": 1.0,
                                    "answer": f"a{i}",
                                    "explanation": "ok",
                                },
                                "judge": {"value": {"x": "I", "y": 2}, "numeric": {"x": 0.0, "y": 2.0}},
                            }
                        ),
                    },
                    links=((task_trace, task_span),),
                ),
            ]
            t += 20 * MS
    end_attrs = base | {
        c.TASK_STATUS: status,
        c.TASK_METRICS: '{"match":{"accuracy":1.0,"stderr":0.0},"judge":{"mean":0.5}}',
        c.TASK_USAGE: json.dumps({model: {"input_tokens": 40, "output_tokens": 12, "total_tokens": 52}}),
        c.SAMPLES_TOTAL: samples * epochs,
        c.SAMPLES_COMPLETED: samples * epochs,
        c.SAMPLES_ERRORED: 0,
        c.LOG_LOCATION: "/logs/x.eval",
    }
    if status != "success":
        end_attrs[c.TASK_ERROR] = "boom"
    spans.append(
        SpanRecord(
            task_trace,
            task_span,
            None,
            c.SPAN_TASK,
            1,
            T0,
            t,
            end_attrs,
            status="ERROR" if status != "success" else "UNSET",
        )
    )
    return spans


def _two_models() -> list[SpanRecord]:
    ids = Ids()
    return eval_spans(ids, "E1", "prov/alpha") + eval_spans(ids, "E2", "prov/beta")


def test_one_evaluation_per_task_and_model_with_every_row_once() -> None:
    writes = WeaveTranslator().feed(_two_models())
    starts = [w for w in writes if isinstance(w, StartEvaluation)]
    preds = [w for w in writes if isinstance(w, LogPrediction)]
    finishes = [w for w in writes if isinstance(w, FinishEvaluation)]
    assert [s.eval_id for s in starts] == ["E1", "E2"]
    assert [f.eval_id for f in finishes] == ["E1", "E2"]
    assert sorted(p.key for p in preds) == sorted(
        prediction_key(e, f"s{i}", ep) for e in ("E1", "E2") for i in (1, 2) for ep in (1, 2)
    )
    # every write of an eval comes after its start and before its finish
    for eval_id in ("E1", "E2"):
        order = [type(w).__name__ for w in writes if w.eval_id == eval_id]
        assert order[0] == "StartEvaluation" and order[-1] == "FinishEvaluation"


def test_start_carries_objects_attributes_and_inspect_times() -> None:
    start = next(w for w in WeaveTranslator().feed(_two_models()) if isinstance(w, StartEvaluation))
    assert start.display_name == "arith · prov/alpha"
    assert start.model.name == "prov-alpha" and start.model.generate_config == {"temperature": 0.5}
    assert start.dataset.name == "arith-dataset" and start.dataset.samples == 2
    assert start.scorers == ("match", "judge")
    assert start.attributes["inspect"]["eval_id"] == "E1"
    assert start.attributes["inspect"]["task_args"] == {"n": 2}
    assert start.attributes["_weave_eval_meta"] == {"imperative": True}
    assert start.start_ns == T0


def test_summary_is_inspects_metrics_and_status_follows_the_task() -> None:
    ids = Ids()
    ok = [w for w in WeaveTranslator().feed(eval_spans(ids, "E", "p/m")) if isinstance(w, FinishEvaluation)][
        0
    ]
    assert ok.output["match"] == {"accuracy": 1.0, "stderr": 0.0}
    assert ok.output["judge"] == {"mean": 0.5}
    assert ok.output["model_latency"] == {"mean": 0.01}
    # the metric columns are the scores: Inspect's counters and usage go to the summary
    assert set(ok.output) == {"match", "judge", "model_latency"}
    assert ok.summary["inspect"]["samples_total"] == 4
    assert ok.summary["inspect"]["usage"]["p/m"]["input_tokens"] == 40
    assert ok.usage["p/m"] == {"input_tokens": 40, "output_tokens": 12, "total_tokens": 52, "requests": 4}
    assert ok.status == "success" and ok.error is None
    for status in ("error", "cancelled"):
        bad = [
            w
            for w in WeaveTranslator().feed(eval_spans(Ids(), "E", "p/m", status=status))
            if isinstance(w, FinishEvaluation)
        ][0]
        assert bad.status == "failed" and bad.error == "boom"


def test_prediction_rows_scores_and_tree() -> None:
    preds = [w for w in WeaveTranslator().feed(_two_models()) if isinstance(w, LogPrediction)]
    p = next(x for x in preds if x.key == "E1/s1/1")
    assert p.example == {"id": "s1", "input": "q1", "target": "a1"}
    assert p.output == "a1"
    assert p.scores == {"match": 1.0, "judge": {"x": 0.0, "y": 2.0}}
    match = next(s for s in p.scorer_calls if s.name == "match")
    assert match.value == 1.0  # the call's output, as EvaluationLogger.log_score writes it
    assert match.details == {"raw": "C", "answer": "a1", "explanation": "ok"}
    assert (match.start_ns, match.end_ns) == (p.start_ns + 7 * MS, p.start_ns + 8 * MS)
    judge = next(s for s in p.scorer_calls if s.name == "judge")
    assert judge.start_ns == p.end_ns  # no scorer span: placed at the sample's end
    [solvers] = p.predict_children
    assert solvers.op == "inspect.solvers"
    [solver] = solvers.children
    [chat] = solver.children
    assert chat.op == "chat" and chat.display_name == "chat prov/alpha"
    assert chat.output["usage"] == {"input_tokens": 10, "output_tokens": 3, "total_tokens": 13}
    assert chat.output["model"] == "prov/alpha"
    assert chat.inputs["messages"] == [{"role": "user", "content": "q1"}]
    assert chat.output["choices"][0]["message"] == {"role": "assistant", "content": "a1"}
    assert (chat.start_ns, chat.end_ns) == (p.start_ns + 3 * MS, p.start_ns + 4 * MS)
    assert p.call_count() == 2 + 2 + 3


def test_same_sample_gives_the_same_row_for_every_model() -> None:
    preds = [w for w in WeaveTranslator().feed(_two_models()) if isinstance(w, LogPrediction)]
    rows = {(p.eval_id, p.sample_id, p.epoch): p.example for p in preds}
    for i in (1, 2):
        for ep in (1, 2):
            assert rows[("E1", f"s{i}", ep)] == rows[("E2", f"s{i}", 1)]


def test_content_off_keeps_scores_and_drops_every_text() -> None:
    writes = WeaveTranslator(content=False).feed(_two_models())
    preds = [w for w in writes if isinstance(w, LogPrediction)]
    text = json.dumps([repr(w) for w in writes])
    for secret in ('"q1"', "'q1'", "'a1'", "explanation", "answer"):
        assert secret not in text
    assert preds[0].example == {"id": "s1"} and preds[0].output is None
    assert preds[0].scores == {"match": 1.0, "judge": {"x": 0.0, "y": 2.0}}
    finish = [w for w in writes if isinstance(w, FinishEvaluation)][0]
    assert finish.output["match"] == {"accuracy": 1.0, "stderr": 0.0}


def test_traces_off_keeps_rows_and_scores_without_trees() -> None:
    preds = [w for w in WeaveTranslator(traces=False).feed(_two_models()) if isinstance(w, LogPrediction)]
    assert len(preds) == 8
    assert all(p.predict_children == () for p in preds)
    assert all(s.children == () for p in preds for s in p.scorer_calls)
    assert preds[0].scores["match"] == 1.0


def test_retried_and_cancelled_attempts_are_not_rows() -> None:
    spans = eval_spans(Ids(), "E", "p/m", samples=1, epochs=1)
    sample = next(s for s in spans if s.name == c.SPAN_SAMPLE)
    retried = replace(
        sample,
        trace_id="f" * 32,
        span_id="e" * 16,
        attributes=sample.attributes | {c.SAMPLE_WILL_RETRY: True, c.SAMPLE_STATUS: "retried"},
    )
    preds = [w for w in WeaveTranslator().feed([retried, *spans]) if isinstance(w, LogPrediction)]
    assert [p.key for p in preds] == ["E/s1/1"]


def test_finalize_fails_open_evaluations_once() -> None:
    spans = [s for s in eval_spans(Ids(), "E", "p/m") if s.name != c.SPAN_TASK]
    t = WeaveTranslator()
    writes = t.feed(spans)
    assert not any(isinstance(w, FinishEvaluation) for w in writes)
    assert t.open_evaluations() == ["E"]
    [fin] = t.finalize("killed")
    assert isinstance(fin, FinishEvaluation) and fin.status == "failed" and fin.error == "killed"
    assert fin.end_ns == max(s.end_ns for s in spans if s.name == c.SPAN_SAMPLE)
    assert t.finalize("again") == []


def test_rows_before_any_task_span_still_make_an_evaluation() -> None:
    spans = [s for s in eval_spans(Ids(), "E", "p/m") if s.name not in (c.SPAN_TASK, c.SPAN_TASK_STARTED)]
    t = WeaveTranslator()
    assert t.feed(spans) == []
    writes = t.finalize("cut file")
    assert [type(w).__name__ for w in writes] == ["StartEvaluation"] + ["LogPrediction"] * 4 + [
        "FinishEvaluation"
    ]


def test_error_sample_is_a_row_with_its_error() -> None:
    spans = eval_spans(Ids(), "E", "p/m", samples=1, epochs=1)
    root = next(s for s in spans if s.name == c.SPAN_SAMPLE)
    sample = replace(
        root,
        status="ERROR",
        attributes=root.attributes | {c.SAMPLE_ERROR: "RuntimeError('x')", c.SAMPLE_STATUS: "error"},
    )
    p = log_prediction(sample, [s for s in spans if s.trace_id == root.trace_id and s is not root])
    assert p.error == "RuntimeError('x')"


def test_score_values_and_object_names() -> None:
    assert score_value({"value": "C", "numeric": 1.0}) == 1.0
    assert score_value({"value": "free text", "numeric": None}) == "free text"
    assert score_value({"value": {"a": "P", "b": "x"}, "numeric": {"a": 0.5, "b": None}}) == {
        "a": 0.5,
        "b": "x",
    }
    assert object_name("openai/gpt-4o") == "openai-gpt-4o"
    assert object_name("a  b//c") == "a-b-c"


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_order_any_batching_duplicates_give_the_same_writes(data: st.DataObject) -> None:
    """Idempotent and order-tolerant, as the RecordSink contract requires.

    Any interleaving of traces, any batch cuts, duplicates; within one sample trace the root
    comes after its descendants (spans end after their children, and exporters emit on end).
    """
    spans = _two_models()
    reference = WeaveTranslator().feed(spans)
    extra = data.draw(st.integers(0, len(spans)))
    order = data.draw(st.permutations(range(len(spans) + extra)))
    pool = spans + spans[:extra]
    shuffled = [pool[i] for i in order if pool[i].name != c.SPAN_SAMPLE]
    # a span always ends after its children, so a sample root follows its own trace's spans
    for root in (s for s in spans if s.name == c.SPAN_SAMPLE):
        last = max((i for i, s in enumerate(shuffled) if s.trace_id == root.trace_id), default=-1)
        shuffled.insert(last + 1, root)
    shuffled += [s for s in spans[:extra] if s.name == c.SPAN_SAMPLE]  # replayed roots
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=6)))
    t = WeaveTranslator()
    writes = []
    prev = 0
    for cut in [*cuts, len(shuffled)]:
        writes += t.feed(shuffled[prev:cut])
        prev = cut
    writes += t.finalize("end")

    def key(w: object) -> tuple[str, str]:
        return (type(w).__name__, getattr(w, "key", ""))

    assert sorted(map(key, writes)) == sorted(map(key, reference))
    got = {key(w): w for w in writes}
    for w in reference:
        if isinstance(w, LogPrediction | StartEvaluation):
            assert got[key(w)] == w
        if isinstance(w, FinishEvaluation):
            # the summary is Inspect's; only the running latency mean may count fewer rows if
            # the task end came before some sample (it never does in a real recording)
            assert {k: v for k, v in got[key(w)].output.items() if k != "model_latency"} == {
                k: v for k, v in w.output.items() if k != "model_latency"
            }
    for eval_id in ("E1", "E2"):
        names = [type(w).__name__ for w in writes if w.eval_id == eval_id]
        assert names[0] == "StartEvaluation"


def test_evaluation_links_the_wandb_run_when_both_exporters_run() -> None:
    start = next(
        w
        for w in WeaveTranslator(wandb_project="team/models").feed(_two_models())
        if isinstance(w, StartEvaluation)
    )
    link = start.attributes["wandb"]
    assert link["run_path"] == f"team/models/{link['run_id']}"
    assert link["run_id"]
    plain = next(w for w in WeaveTranslator().feed(_two_models()) if isinstance(w, StartEvaluation))
    assert "wandb" not in plain.attributes


def test_arrival_order_does_not_change_the_writes() -> None:
    """A collector may deliver a sample's root before its children (retries, restarts)."""
    import random as _random

    from otel_bridge import conventions as conv
    from otel_bridge.records import read_span_file
    from tests.support.demo_spans import demo_span_file

    spans = list(read_span_file(demo_span_file()))
    assert all(
        isinstance(s.attributes.get(conv.SAMPLE_SPAN_COUNT), int) for s in spans if s.name == conv.SPAN_SAMPLE
    )
    in_order = WeaveTranslator().feed(spans)
    roots_first = sorted(spans, key=lambda s: (s.trace_id, s.name != conv.SPAN_SAMPLE))
    rng = _random.Random(7)
    translator = WeaveTranslator()
    shuffled: list = []  # type: ignore[type-arg]
    batch = roots_first[:]
    rng.shuffle(batch)
    while batch:
        size = rng.randint(1, 9)
        shuffled.extend(translator.feed(batch[:size]))
        batch = batch[size:]
    assert not translator.held
    assert sorted(map(repr, shuffled)) == sorted(map(repr, in_order))
    cut = WeaveTranslator()
    partial = cut.feed([s for s in roots_first if not s.name.startswith("chat ")])
    assert cut.held and not any(isinstance(w, LogPrediction) for w in partial)
    assert len([w for w in cut.finalize("end of input") if isinstance(w, LogPrediction)]) == 12
    assert not cut.held
    early_task = WeaveTranslator()  # the task's end before any of its samples: its finish waits for them
    tasks_first = sorted(spans, key=lambda s: s.name != conv.SPAN_TASK)
    first = early_task.feed(tasks_first[:6])
    assert not any(isinstance(w, FinishEvaluation) for w in first) and early_task.held
    rest = early_task.feed(tasks_first[6:])
    assert sorted(map(repr, first + rest)) == sorted(map(repr, in_order))


def test_usage_is_keyed_by_the_response_model_like_weaves_rollup() -> None:
    """Cost: weave prices usage keyed by the model the provider answered with; a grader model's
    calls count under their own key; Inspect's usage (by Inspect's model name) stays in the summary."""
    spans, n = [], 0
    for s in eval_spans(Ids(), "E", "openai/gpt-4o"):
        if s.attributes.get(c.GEN_AI_OPERATION_NAME) == "chat":
            n += 1
            answered = "gpt-4o-2024-08-06" if n % 2 else "judge-7b"
            s = replace(s, attributes={**s.attributes, c.GEN_AI_RESPONSE_MODEL: answered})
        spans.append(s)
    writes = WeaveTranslator().feed(spans)
    [fin] = [w for w in writes if isinstance(w, FinishEvaluation)]
    chats = [
        call
        for p in writes
        if isinstance(p, LogPrediction)
        for top in p.predict_children
        for call in top.walk()
        if call.op == "chat"
    ]
    by_model: dict[str, int] = {}
    for chat in chats:
        by_model[chat.output["model"]] = by_model.get(chat.output["model"], 0) + 1
    assert set(by_model) == {"gpt-4o-2024-08-06", "judge-7b"}
    assert {m: u["requests"] for m, u in fin.usage.items()} == by_model
    assert sum(u["input_tokens"] for u in fin.usage.values()) == 10 * len(chats)
    assert "openai/gpt-4o" not in fin.usage
    assert fin.summary["inspect"]["usage"]["openai/gpt-4o"]["input_tokens"] == 40  # Inspect's own
