"""Span records → W&B Models writes, statefully (still no I/O, no wandb import).

One W&B run per Inspect run (``inspect.run_id``) or per eval set (``inspect.eval_set_id``, so
retries and later invocations resume the same run). The translator keeps every number keyed by
run and by task × model, so concurrent pairs and several ``eval()`` calls never share a counter;
what a span means is in ``mapping``. The same writes come out whether spans arrive live,
through the receiver or from ``otel-bridge sync``.

Idempotent: a span seen twice (same trace and span id) is ignored, and a sample seen again for
the same task × model, id and epoch replaces its earlier values instead of adding to them.

Bounded: O(1) work per sample (running sums, ``running``), and per-sample state only for the
last ``RECENT_SAMPLES`` samples of each task × model (a sample re-sent after that many others
counts again); a run's state is dropped when it finishes, leaving its ids in bounded memories
of what ended (``ENDED_IDS``), so a late replay of an ended run writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.common import RecentKeys, run_key
from otel_bridge.translate.wandb import ops
from otel_bridge.translate.wandb.mapping import (
    RELEVANT_SPANS,
    inspect_info,
    metric_hint,
    row_size,
    run_name,
    run_outcome,
    run_tags,
    sample_scores,
    samples_table,
    shared_config,
    table_row,
    task_config,
    task_numbers,
    token_totals,
    weave_links,
)
from otel_bridge.translate.wandb.ops import Write
from otel_bridge.translate.wandb.options import Options
from otel_bridge.translate.wandb.state import Pair, Run, samples_missing

ENDED_IDS = 100_000  # ended runs, evals and non-sample spans remembered for idempotence


class WandbTranslator:
    """Stateful, pure translation; one instance per sink (shared by every run it sees)."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._runs: dict[str, Run] = {}  # open runs only
        self._seen = RecentKeys(ENDED_IDS)  # non-sample spans (a few per task)
        self._ended_runs: dict[str, bool] = {}  # run key → is an eval set (bounded, oldest first)
        self._ended = RecentKeys(ENDED_IDS)  # eval ids and Inspect run ids of finished runs
        self.late_spans = 0
        self.problems: list[str] = []

    # ---------------------------------------------------------------- public
    def translate(self, records: Iterable[SpanRecord]) -> list[Write]:
        """Writes for these ended spans (applied in order); spans already seen add nothing."""
        out: list[Write] = []
        for record in records:
            out.extend(self._one(record))
        return out

    def finish_pending(self) -> list[Write]:
        """Finish runs whose end was seen but which still wait for a task span or samples (close)."""
        out: list[Write] = []
        for run in list(self._runs.values()):
            if run.started and not run.finished and run.end_status is not None:
                out.extend(self._finish(run, force=True))
        return out

    @property
    def waiting(self) -> bool:
        """A run's end was seen, but some of its spans have not arrived yet (any arrival order)."""
        return any(r.started and not r.finished and r.end_status is not None for r in self._runs.values())

    def finalize_incomplete(self, reason: str) -> list[Write]:
        """Nothing more will arrive: finish every open run, failed when its end was never seen."""
        out = self.finish_pending()
        for run in list(self._runs.values()):
            if run.started and not run.finished:
                ended = set(run.run_order) >= set(run.run_ids) and run.run_order
                if run.eval_set_id and ended and not any(p.open_evals for p in run.pairs.values()):
                    # every Inspect run of this eval-set invocation ended; only the eval-set
                    # span is missing (sync read it earlier, with another invocation's)
                    run.end_status = "success"
                else:
                    run.end_status = "incomplete"
                    run.end_message = reason
                out.extend(self._finish(run, force=True))
        return out

    @property
    def open_runs(self) -> list[str]:
        return [r.key for r in self._runs.values() if r.started and not r.finished]

    # ---------------------------------------------------------------- dispatch
    def _one(self, r: SpanRecord) -> list[Write]:
        if r.name not in RELEVANT_SPANS:
            return []
        ident = (r.trace_id, r.span_id)
        if r.name != c.SPAN_SAMPLE and ident in self._seen:
            return []
        key = run_key(r)
        if key is None:
            return []
        run = self._runs.get(key)
        if run is None and key in self._ended_runs:
            late = r.attr(c.EVAL_ID) in self._ended or (
                r.name == c.SPAN_RUN and r.attr(c.RUN_ID) in self._ended
            )
            if not self._ended_runs[key] or r.name == c.SPAN_EVAL_SET or late:
                if r.name != c.SPAN_EVAL_SET:  # another invocation's eval-set end: harmless
                    self.late_spans += 1
                return []
            # else the eval set was invoked again (a retry): continue the same W&B run
        if r.name != c.SPAN_SAMPLE:
            self._seen.add(ident)
        if run is None:
            eval_set = r.attr(c.EVAL_SET_ID)
            run = self._runs[key] = Run(key, str(eval_set) if eval_set else None, group=eval_set)
        if run.start_ns is None or (r.start_ns and r.start_ns < run.start_ns):
            run.start_ns = r.start_ns or run.start_ns
        body: list[Write]
        if r.name == c.SPAN_SAMPLE:
            body = self._sample(run, r)
        elif r.name == c.SPAN_TASK_STARTED:
            self._task_seen(run, r)
            body = []
        elif r.name == c.SPAN_TASK:
            body = self._task_end(run, r)
        elif r.name == c.SPAN_RUN:
            body = self._run_end(run, r)
        else:
            body = self._eval_set_end(run, r)
        head = self._identity(run)
        tail = self._finish(run) if run.end_status is not None and not run.finished else []
        return head + body + tail

    # ---------------------------------------------------------------- identity and config
    def _identity(self, run: Run) -> list[Write]:
        name = self._name(run)
        tags = run_tags(run.tasks, run.models, run.datasets, self.options.tags)
        out: list[Write] = []
        if not run.started:
            run.started = True
            run.name, run.tags = name, tags
            run.config_sent = json.loads(json.dumps(run.config, default=str))
            resume = run.eval_set_id is not None  # eval sets: later invocations continue the run
            out.append(
                ops.StartRun(run.key, name, run.group, ops.JOB_TYPE, tags, dict(run.config_sent), resume)
            )
            return out
        if name != run.name:
            run.name = name
            out.append(ops.SetName(run.key, name))
        if tags != run.tags:
            run.tags = tags
            out.append(ops.SetTags(run.key, tags))
        current = json.loads(json.dumps(run.config, default=str))
        changed = {k: v for k, v in current.items() if run.config_sent.get(k) != v}
        if changed:
            run.config_sent.update(changed)
            out.append(ops.UpdateConfig(run.key, changed))
        return out

    def _name(self, run: Run) -> str:
        ids = {
            "run_id": run.run_ids[0] if run.run_ids else run.key,
            "eval_set_id": run.eval_set_id or "",
            "id": run.key,
        }
        name, problem = run_name(self.options.run_name, run.tasks, run.models, ids, run.start_ns)
        if problem and problem not in self.problems:
            self.problems.append(problem)
        return name

    def _note_run(self, run: Run, r: SpanRecord) -> None:
        inspect_run = r.attr(c.RUN_ID)
        if inspect_run and inspect_run not in run.run_ids:
            run.run_ids.append(str(inspect_run))
        run.config.setdefault("inspect", {}).update(inspect_info(r, run.run_ids, run.eval_set_id))

    def _pair(self, run: Run, r: SpanRecord) -> Pair:
        task = str(r.attr(c.TASK_NAME) or "task")
        model = str(r.attr(c.MODEL) or "model")
        pair_id = str(r.attr(c.TASK_ID) or r.attr(c.EVAL_ID) or f"{task}/{model}")
        pair = run.pairs.get(pair_id)
        if pair is not None:
            return pair
        label, n = f"{task}/{model}", 1
        while label in run.labels:  # the same task twice with other arguments: keep them apart
            n += 1
            label = f"{task}-{n}/{model}"
        run.labels[label] = pair_id
        pair = run.pairs[pair_id] = Pair(label, task, model)
        if task not in run.tasks:
            run.tasks.append(task)
        if model not in run.models:
            run.models.append(model)
        if run.group is None and not run.started:
            run.group = run.eval_set_id or task
        return pair

    def _task_seen(self, run: Run, r: SpanRecord) -> Pair:
        """A task × model started (or ended without its start marker): identity and config."""
        self._note_run(run, r)
        pair = self._pair(run, r)
        eval_id = str(r.attr(c.EVAL_ID) or "")
        if eval_id and eval_id not in pair.ended_evals and eval_id not in pair.open_evals:
            pair.open_evals.add(eval_id)
            pair.final = False
        if eval_id and eval_id not in pair.attempts:
            pair.attempts[eval_id] = (r.start_ns, None)
        dataset = r.attr(c.DATASET_NAME)
        if dataset and dataset not in run.datasets:
            run.datasets.append(str(dataset))
        pair.metric_names.update(metric_hint(r))
        cfg = task_config(r, pair.task, pair.model)
        if len(cfg) > 2 or pair.label not in run.config:
            run.config[pair.label] = cfg
        run.config.update(shared_config(r))
        return pair

    # ---------------------------------------------------------------- history
    def _step(self, run: Run, end_ns: int) -> int:
        run.last_step = max(run.last_step + 1, end_ns // 1000)
        return run.last_step

    def _define(self, run: Run, pair: Pair, keys: Iterable[str]) -> list[Write]:
        axis = f"{pair.label}/samples"
        out: list[Write] = []
        for key in keys:
            if key != axis and key not in run.defined:
                run.defined.add(key)
                out.append(ops.DefineMetric(run.key, key, axis))
        return out

    def _sample(self, run: Run, r: SpanRecord) -> list[Write]:
        status = str(r.attr(c.SAMPLE_STATUS) or "")
        final_trace = not r.attr(c.SAMPLE_WILL_RETRY) and status != "retried"
        if final_trace:  # what the task span's inspect.samples.traced counts
            pair = self._pair(run, r)
            eval_id = str(r.attr(c.EVAL_ID) or "")
            pair.traced[eval_id] = pair.traced.get(eval_id, 0) + 1
        if not final_trace or status in {"cancelled", ""}:
            return []  # not a final result (a retry follows, or the run was cancelled)
        self._note_run(run, r)
        pair = self._pair(run, r)
        sample = (str(r.attr(c.SAMPLE_ID)), int(r.attr(c.SAMPLE_EPOCH) or 0))
        numeric, values, categorical = sample_scores(r.json_attr(c.SAMPLE_SCORES) or {})
        counts = pair.counts
        if not counts.record(sample, (r.trace_id, r.span_id), numeric, status == "error"):
            return []  # the same span again
        pair.categorical |= categorical
        counts.tokens += int(r.attr(c.USAGE_TOTAL_TOKENS) or 0)
        self._table_row(run, pair, r, sample, status, values)
        row: dict[str, Any] = {
            f"{pair.label}/samples": counts.samples,
            f"{pair.label}/errors": counts.errors,
            f"{pair.label}/tokens": counts.tokens,
        }
        if not pair.final:
            row.update(counts.running.row(pair.label, pair.metric_names, pair.categorical))
        return [*self._define(run, pair, row), ops.LogRow(run.key, row, self._step(run, r.end_ns))]

    def _table_row(
        self, run: Run, pair: Pair, r: SpanRecord, sample: tuple[str, int], status: str, values: Any
    ) -> None:
        """The sample's row of the samples table, while the table is under its rows and bytes caps."""
        key = (pair.label, *sample)
        opts = self.options
        row = table_row(
            r, pair.task, pair.model, sample, status, values, opts.capture_content, opts.table_cell_chars
        )
        size = row_size(row)
        earlier = run.row_bytes.get(key)
        if earlier is None and len(run.rows) >= opts.table_max_rows:
            run.dropped_rows += 1
        elif run.table_bytes - (earlier or 0) + size > opts.table_max_bytes:
            run.dropped_rows += earlier is None
        else:
            run.rows[key], run.row_bytes[key] = row, size
            run.table_bytes += size - (earlier or 0)

    # ---------------------------------------------------------------- task / run / eval-set ends
    def _task_end(self, run: Run, r: SpanRecord) -> list[Write]:
        pair = self._task_seen(run, r)
        eval_id = str(r.attr(c.EVAL_ID) or "")
        pair.open_evals.discard(eval_id)
        pair.ended_evals.add(eval_id)
        expected = r.attr(c.SAMPLES_TRACED)
        if isinstance(expected, int) and not isinstance(expected, bool):
            pair.expected[eval_id] = expected
        status = str(r.attr(c.TASK_STATUS) or ("error" if r.status == "ERROR" else "success"))
        started = min(pair.attempts.get(eval_id, (r.start_ns, None))[0], r.start_ns)
        pair.attempts[eval_id] = (started, status)
        latest = max(pair.attempts, key=lambda e: pair.attempts[e][0])
        pair.status = pair.attempts[latest][1] or pair.status
        pair.final = not pair.open_evals
        if latest != eval_id:
            return []  # an earlier attempt ending late (eval-set retry): the latest one counts
        usage = r.json_attr(c.TASK_USAGE)
        pair.usage = usage if isinstance(usage, dict) else {}
        label = pair.label
        row, summary = task_numbers(r, label, pair.status, *pair.counts.totals())
        location = r.attr(c.LOG_LOCATION)
        if location and location not in run.logs:
            run.logs.append(str(location))
        if location and (copy := r.attr(c.LOG_REDACTED_COPY)):
            run.log_copies[str(location)] = str(copy)
        if self.options.weave_project:
            # the Weave evaluation of this task × model carries attributes.inspect.eval_id = this id
            summary[f"{label}/weave_eval_id"] = str(r.attr(c.EVAL_ID))
        pair.summary = summary
        out: list[Write] = [
            *self._define(run, pair, row),
            ops.LogRow(run.key, row, self._step(run, r.end_ns)),
        ]
        out.append(ops.UpdateSummary(run.key, {**summary, **self._run_summary(run)}))
        return out

    def _run_summary(self, run: Run) -> dict[str, Any]:
        tokens = token_totals(pair.usage for pair in run.pairs.values())
        weave = weave_links(self.options.weave_project, self.options.wandb_base_url)
        return {**tokens, "logs": list(run.logs), **weave}

    def _run_end(self, run: Run, r: SpanRecord) -> list[Write]:
        self._note_run(run, r)
        inspect_run = str(r.attr(c.RUN_ID))
        status = r.attr(c.RUN_STATUS)
        if status is None:
            status = "incomplete" if r.status == "ERROR" else "success"
        run.run_status[inspect_run] = str(status)
        run.run_order.append(inspect_run)
        evals = r.attr(c.RUN_EVAL_IDS)
        if isinstance(evals, list):
            run.expected_evals.update(str(e) for e in evals)
        if run.eval_set_id is None:
            run.end_ns = r.end_ns
            run.end_status = str(status)
            run.end_message = r.status_message
        return []

    def _eval_set_end(self, run: Run, r: SpanRecord) -> list[Write]:
        self._note_run(run, r)
        run.end_ns = r.end_ns
        # an eval set's outcome is that of each task's latest attempt (see _finish), not of the
        # Inspect runs: a retried task leaves an earlier run marked failed
        run.end_status = "incomplete" if r.status == "ERROR" else "success"
        run.end_message = r.status_message
        return []

    def _finish(self, run: Run, force: bool = False) -> list[Write]:
        ended = {e for p in run.pairs.values() for e in p.ended_evals}
        waiting = any(p.open_evals or samples_missing(p) for p in run.pairs.values())
        if not force and (waiting or not run.expected_evals <= ended):
            return []  # a task span or a sample of this run has not arrived yet: wait for it
        run.finished = True
        status, exit_code = run_outcome(run.end_status, {p.status for p in run.pairs.values()})
        summary: dict[str, Any] = {}
        for pair in run.pairs.values():
            summary.update(pair.summary)
            if pair.open_evals:
                summary[f"{pair.label}/status"] = "incomplete"
        summary.update(self._run_summary(run))
        summary["status"] = status
        if run.end_message and status != "success":
            summary["status_reason"] = run.end_message
        end = run.end_ns or max([run.start_ns or 0, run.last_step * 1000])
        if run.start_ns:
            summary["duration_s"] = round(max(0, end - run.start_ns) / 1e9, 3)
        summary["table/rows_logged"] = len(run.rows)
        summary["table/rows_dropped"] = run.dropped_rows
        out: list[Write] = [*self._identity(run)]
        if run.rows and self.options.table_max_rows > 0:
            columns, rows = samples_table(run.rows)
            out.append(ops.LogTable(run.key, ops.TABLE_KEY, columns, rows, self._step(run, end)))
        out.append(ops.UpdateSummary(run.key, summary))
        logs = tuple(run.logs) if self.options.log_artifact else ()
        if logs or self.options.files:
            out.append(ops.LogFiles(run.key, logs, self.options.files, dict(run.log_copies)))
        out.append(ops.FinishRun(run.key, exit_code, status))
        self._forget(run)
        return out

    def _forget(self, run: Run) -> None:
        """A finished run: drop its state, remember only its ids (bounded), for late replays."""
        del self._runs[run.key]
        self._ended_runs.pop(run.key, None)
        self._ended_runs[run.key] = run.eval_set_id is not None
        if len(self._ended_runs) > ENDED_IDS:
            del self._ended_runs[next(iter(self._ended_runs))]
        for pair in run.pairs.values():
            for eval_id in (*pair.ended_evals, *pair.open_evals, *pair.attempts):
                self._ended.add(eval_id)
        for inspect_run in run.run_ids:
            self._ended.add(inspect_run)

    @property
    def held_samples(self) -> int:
        """Per-sample entries held (recent samples and table rows): 0 once every run has ended."""
        return sum(len(p.counts.recent) for r in self._runs.values() for p in r.pairs.values()) + sum(
            len(r.rows) for r in self._runs.values()
        )
