"""WeaveSink: applies the Weave translation's writes with the public weave client API.

Evaluations are written as Weave's Evals tab expects them (``Evaluation.evaluate`` →
``Evaluation.predict_and_score`` → ``Model.predict`` + one call per scorer) through
``WeaveClient.create_call`` / ``finish_call`` with explicit parents and Inspect's timestamps,
so live export and a later ``otel-bridge sync`` produce the same calls.

Idempotence: every call carries its deterministic key in ``attributes.inspect``. The first time
this sink meets an eval id it asks the server for an ``Evaluation.evaluate`` call with that
``attributes.inspect.eval_id`` and, when one exists, adopts it and loads the keys of its finished
prediction rows; only missing rows are written and an evaluation that already ended is never
ended again. A prediction row is written child-first and ended last, so an ended row on the
server is complete; a row that was started but never ended (a killed process) is deleted and
written again. An ended evaluation is compared with the input: a re-scored log (other scores on a
row, other metrics) becomes a new revision that replaces it (``weave_rescore``).

weave is imported lazily (only when a write is due); no credentials means one message and no
``weave.init`` (which would prompt); all waiting at exit is bounded by the flush timeout.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from otel_bridge import _upstream as upstream
from otel_bridge import notify
from otel_bridge.config import Settings
from otel_bridge.records import SpanRecord
from otel_bridge.sinks.base import DeliveryError, RecordSink
from otel_bridge.sinks.weave_calls import (
    EVALUATE_OP,
    FLUSH_EVERY_CALLS,
    PREDICT_AND_SCORE_OP,
    PREDICT_OP,
    SCORE_META,
    SUMMARIZE_OP,
    SYNC_HINT,
    WEAVE_SETTINGS,
    EvalHandle,
    SampleError,
    add_summary,
    bounded,
    drop_orphan_rows,
    find_evaluations,
    record_op,
    ts,
    weave_classes,
    weave_objects,
)
from otel_bridge.sinks.weave_delivery import Backoff, Ledger
from otel_bridge.sinks.weave_rescore import Revisions, row_attributes
from otel_bridge.translate.weave import (
    CallSpec,
    FinishEvaluation,
    LogPrediction,
    StartEvaluation,
    WeaveTranslator,
    Write,
    object_name,
)
from otel_bridge.wandb_env import credentials_problem, run_project_path


class WeaveSink(Revisions, RecordSink):
    """RecordSink writing Inspect evals to W&B Weave (live, behind the receiver, and in sync)."""

    name = "weave"

    def __init__(self, settings: Settings, *, connect_timeout_s: float | None = None) -> None:
        self.settings = settings
        # cross-reference the W&B Models run of the same eval
        wandb_project = run_project_path(settings) if "wandb" in settings.core.exporters else None
        self.translator = WeaveTranslator(
            traces=settings.weave.traces, content=settings.content.capture, wandb_project=wandb_project
        )
        self.connect_timeout_s = connect_timeout_s or max(20.0, settings.core.flush_timeout_s)
        #: Unconfirmed writes are written again once missing for this long (a server may lag).
        self.rewrite_after_s = max(10.0, 2 * settings.core.flush_timeout_s)
        self.ledger = Ledger()
        self._lock = threading.RLock()
        self._client: Any = None
        self._disabled: str | None = None
        self._problem: str | None = None
        self._last_error: str | None = None
        self._backoff = Backoff()
        self._connecting: threading.Thread | None = None
        self._connect_result: dict[str, Any] = {}
        self._applied_at: dict[str, float] = {}
        self._rewritten: set[str] = set()
        self._evals: dict[str, EvalHandle] = {}
        self._ops: dict[str, Any] = {}
        self._queued_calls = 0
        self.stats = {"evaluations": 0, "adopted": 0, "predictions": 0, "skipped": 0, "finished": 0}
        if not settings.weave.project:
            self._disable("no Weave project (set INSPECT_OTEL_WEAVE_PROJECT=entity/project or WANDB_PROJECT)")

    # --- RecordSink ------------------------------------------------------------------------------

    def consume(self, records: Sequence[SpanRecord]) -> None:
        with self._lock:
            self.ledger.add(self.translator.feed(records))
            self._drain()

    def finalize_incomplete(self, reason: str) -> None:
        if not self._lock.acquire(timeout=max(1.0, self.settings.core.flush_timeout_s)):
            self._note(
                "the Weave exporter was still busy at exit; open evaluations stay 'running' "
                f"until {SYNC_HINT} marks them"
            )
            return
        try:
            self.ledger.add(self.translator.finalize(reason))
            self._drain()
        except DeliveryError:
            pass  # kept as due: flush/close say what was not confirmed
        finally:
            self._lock.release()

    def flush(self, timeout_s: float) -> bool:
        """True only once the server, read back, holds every write so far."""
        if self.translator.held:
            return False  # rows wait for spans still in flight: not everything is written yet
        with self._lock:
            try:
                self._drain()
            except DeliveryError:
                return False
            if self.ledger.settled:
                return True
            client = self._client
            if client is None:
                return False
            # weave's queue can stay wedged on a batch it keeps requeuing: the server, read
            # back, is the truth either way
            bounded(client.flush, timeout_s)
            try:
                return self._confirm(client)
            except Exception as exc:  # the server went away while reading back
                self._unreachable(exc)
                return False

    def close(self) -> None:
        ok = self.flush(max(1.0, self.settings.core.flush_timeout_s))
        if not ok:
            self._note(
                f"Weave did not confirm every write within {self.settings.core.flush_timeout_s:g}s "
                f"(INSPECT_OTEL_FLUSH_TIMEOUT); {SYNC_HINT} delivers anything missing without duplicates"
            )

    def problem(self) -> str | None:
        if self._disabled is not None:
            return self._problem
        if self.ledger.settled:
            return None
        rows = self.ledger.pending_rows()
        why = f" ({self._last_error})" if self._last_error else ""
        return f"{rows} prediction row(s) not yet confirmed by Weave{why}; they are retried"

    # --- delivery ---------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Apply every due write in order; raise DeliveryError (keeping the rest due) if one fails."""
        if not self.ledger.due:
            return
        client = self._connect()
        due = self.ledger.due
        while due:
            w = due[0]
            try:
                self._apply_one(client, w)
            except Exception as exc:
                self._unreachable(exc)
                raise DeliveryError(f"a Weave write failed ({type(exc).__name__}: {str(exc)[:200]})") from exc
            due.popleft()
            self.ledger.applied(w)
            if self._queued_calls >= FLUSH_EVERY_CALLS:
                self._queued_calls = 0
                if bounded(client.flush, 60.0):  # what the server holds leaves memory (a long eval)
                    open_calls = {e: h.call_id for e, h in self._evals.items() if not h.ended}
                    for eval_id in self.ledger.release_held(client, open_calls):
                        self._applied_at.pop(eval_id, None)

    def _confirm(self, client: Any) -> bool:
        """Read back each evaluation with unconfirmed writes; write again what stays missing."""
        ok = True
        now = time.monotonic()
        for eval_id in self.ledger.unconfirmed():
            h = self._evals.get(eval_id)
            if self.ledger.confirm(client, eval_id, h.call_id if h else None):
                self._applied_at.pop(eval_id, None)  # the grace counts from the oldest unconfirmed write
                if h is not None and h.ended:  # ended and read back: drop its state (flat memory)
                    self._evals.pop(eval_id, None)
                    self.ledger.forget(eval_id)
                continue
            ok = False
            # a server may show a write a moment late: write again only once it is clearly lost
            if now - self._applied_at.get(eval_id, now) >= self.rewrite_after_s:
                self._evals.pop(eval_id, None)  # re-adopt: skips rows the server has, drops half-written
                self._rewritten.add(eval_id)
                self.ledger.rewrite(eval_id, client)
                self._applied_at.pop(eval_id, None)
        if not ok:
            with contextlib.suppress(DeliveryError):
                self._drain()
        else:
            self._last_error = None
        return ok

    def _unreachable(self, exc: BaseException) -> None:
        self._last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        self._note(
            f"cannot reach Weave ({self._last_error}); retrying — the writes are kept until it confirms"
        )

    # --- client ---------------------------------------------------------------------------------

    def _disable(self, why: str) -> None:
        self._disabled = why
        self._note(
            f"Weave export is off: {why}. The span file keeps everything; {SYNC_HINT} delivers it later"
        )

    def _note(self, message: str) -> None:
        if self._problem is None:
            self._problem = message
        notify.say(message, key=f"weave:{message[:60]}")

    def _connect(self) -> Any:
        """The weave client; DeliveryError while it cannot be had (reconnects with a backoff)."""
        if self._client is not None:
            return self._client
        if self._disabled is not None:
            raise DeliveryError(self._disabled)
        if not self._backoff.ready():
            raise DeliveryError(f"Weave is unreachable ({self._last_error}); retrying")
        why = credentials_problem(self.settings.wandb)
        if why is not None:
            self._disable(why)
            raise DeliveryError(why)
        if self._connecting is None or not self._connecting.is_alive():
            self._connect_result = {}
            self._connecting = threading.Thread(
                target=self._init_weave,
                args=(self._connect_result,),
                name="otel-bridge-weave-init",
                daemon=True,
            )
            self._connecting.start()
        self._connecting.join(self.connect_timeout_s)
        result = self._connect_result
        if "client" in result:
            self._client = result["client"]
            self._backoff.succeeded()
            return self._client
        self._backoff.failed()
        if self._connecting.is_alive():
            error: BaseException = TimeoutError(f"no answer within {self.connect_timeout_s:g}s")
        else:
            error = result.get("error") or RuntimeError("weave.init failed")
        self._unreachable(error)
        raise DeliveryError(f"could not connect to Weave ({self._last_error})")

    def _init_weave(self, result: dict[str, Any]) -> None:
        try:
            import weave

            result["client"] = weave.init(str(self.settings.weave.project), settings=WEAVE_SETTINGS)
        except BaseException as exc:  # weave raises SystemExit-like errors on auth problems
            result["error"] = exc

    def _op(self, name: str, eager: bool = False) -> Any:
        return record_op(self._ops, name, eager)

    # --- applying writes --------------------------------------------------------------------------

    def _apply_one(self, client: Any, w: Write) -> None:
        if isinstance(w, StartEvaluation):
            self._start(client, w)
        elif isinstance(w, LogPrediction):
            self._predict(client, w)
        elif isinstance(w, FinishEvaluation):
            self._finish(client, w)
        self._applied_at.setdefault(w.eval_id, time.monotonic())

    def _start(self, client: Any, w: StartEvaluation) -> None:
        if w.eval_id in self._evals:
            return
        evaluation, model = weave_objects(w)
        found = find_evaluations(client, w.eval_id)
        if found:  # adopted (an ended one is compared with the input: weave_rescore)
            self._evals[w.eval_id] = self._adopt(client, found, w, evaluation, model)
            self.stats["adopted"] += 1
            return
        handle = self._create(client, w, evaluation, model, dict(w.attributes))
        self._evals[w.eval_id] = handle
        if w.eval_id in self._rewritten:  # rows of a lost evaluate call: under the new one only
            drop_orphan_rows(client, w.eval_id, handle.call_id)

    def _create(
        self, client: Any, w: StartEvaluation, evaluation: Any, model: Any, attributes: Any
    ) -> EvalHandle:
        started = ts(w.start_ns)
        call = client.create_call(
            self._op(EVALUATE_OP, eager=True),
            inputs={"self": evaluation, "model": model},
            attributes=attributes,
            display_name=w.display_name,
            use_stack=False,
            started_at=started,
        )
        self.stats["evaluations"] += 1
        return EvalHandle(call.id, call.trace_id, call.op_name, started, evaluation, model, ended=False)

    def _proxy(self, client: Any, h: EvalHandle) -> Any:
        """A fresh parent object per row, so the evaluate call holds no live children (memory)."""
        return upstream.evaluate_call_handle(client.project_id, h.op_uri, h.trace_id, h.call_id, h.started_at)

    def _call(self, client: Any, parent: Any, op: str, inputs: dict[str, Any], **kw: Any) -> Any:
        self._queued_calls += 1
        return client.create_call(
            self._op(op),
            inputs=inputs,
            parent=parent,
            use_stack=False,
            started_at=ts(kw.pop("start_ns")),
            **kw,
        )

    def _end(self, client: Any, call: Any, output: Any, end_ns: int, error: str | None = None) -> None:
        client.finish_call(
            call, output=output, exception=SampleError(error) if error else None, ended_at=ts(end_ns)
        )

    def _span_call(self, client: Any, parent: Any, spec: CallSpec) -> None:
        call = self._call(
            client,
            parent,
            spec.op,
            dict(spec.inputs),
            start_ns=spec.start_ns,
            attributes=dict(spec.attributes),
            display_name=spec.display_name,
        )
        try:
            for child in spec.children:
                self._span_call(client, call, child)
        finally:  # an unended call would hold weave's exit flush for minutes
            self._end(client, call, spec.output, spec.end_ns, spec.error)

    def _predict(self, client: Any, w: LogPrediction) -> None:
        h = self._evals.get(w.eval_id)
        if h is None:
            return
        if h.rescore is not None:  # an ended evaluation: a row whose scores differ starts a revision
            h = self._compare_row(client, h, w)
        if w.key in h.existing:
            self.stats["skipped"] += 1
            return
        _, inspect_scorer = weave_classes()
        example = dict(w.example)
        scorers = h.scorers
        for s in w.scorer_calls:
            if s.name not in scorers:
                scorers[s.name] = inspect_scorer(name=s.name)
        pas = self._call(
            client,
            self._proxy(client, h),
            PREDICT_AND_SCORE_OP,
            {"self": h.evaluation, "model": h.model, "example": example},
            start_ns=w.start_ns,
            attributes=row_attributes(w),
            display_name=f"{w.sample_id} · epoch {w.epoch}",
        )
        output: dict[str, Any] = {"output": w.output, "scores": {}, "model_latency": w.model_latency}
        try:
            predict = self._call(
                client,
                pas,
                PREDICT_OP,
                {"self": h.model, "inputs": example},
                start_ns=w.start_ns,
                attributes={"_weave_eval_meta": dict(w.attributes.get("_weave_eval_meta", {}))},
            )
            try:
                for spec in w.predict_children:
                    self._span_call(client, predict, spec)
            finally:
                self._end(client, predict, w.output, w.predict_end_ns, w.error)
            for s in w.scorer_calls:
                scall = self._call(  # as EvaluationLogger.log_score: op = scorer, output = score
                    client,
                    pas,
                    object_name(s.name),
                    {"self": scorers[s.name], "output": w.output, "inputs": example},
                    start_ns=s.start_ns,
                    attributes={"_weave_eval_meta": SCORE_META, "inspect": {"key": s.key, **s.details}},
                    display_name=s.name,
                )
                try:
                    for spec in s.children:
                        self._span_call(client, scall, spec)
                finally:
                    self._end(client, scall, s.value, s.end_ns)
                sent = upstream.add_score_feedback(client, predict, scall, scorers[s.name], s.value)
                self.ledger.sent_feedback(w.eval_id, w.key, sent)  # unconfirmed until read back
            output["scores"] = dict(w.scores)
        finally:
            self._end(client, pas, output, w.end_ns, w.error)
        add_summary(h.rollup, pas.summary)  # weave summed the row's calls: status_counts, usage
        h.existing.add(w.key)
        self.stats["predictions"] += 1

    def _finish(self, client: Any, w: FinishEvaluation) -> None:
        h = self._evals.get(w.eval_id)
        if h is not None and h.ended and h.rescore is not None:  # metrics differ: a new revision
            h = self._compare_finish(client, h, w)
        if h is None or h.ended:
            return
        proxy = self._proxy(client, h)
        if not h.summarized:  # a process killed between the summary and the end wrote it already
            summarize = self._call(
                client,
                proxy,
                SUMMARIZE_OP,
                {"self": h.evaluation},
                start_ns=w.end_ns,
                attributes={"_weave_eval_meta": {"imperative": True}},
            )
            self._end(client, summarize, dict(w.output), w.end_ns)
            add_summary(h.rollup, summarize.summary)
            h.summarized = True
        proxy.summary = {k: dict(v) for k, v in w.summary.items()}  # Inspect's counters: not columns
        if w.usage and "usage" not in h.rollup:  # no model calls traced: Inspect's own usage
            proxy.summary["usage"] = {m: dict(u) for m, u in w.usage.items()}
        upstream.roll_up_into(proxy, h.rollup)  # status_counts and usage of every row, as the SDK's root
        if not h.owned:
            upstream.route_end_of_foreign_call(client, h.call_id)
        self._end(client, proxy, dict(w.output), w.end_ns, w.error)
        h.ended = True
        self.stats["finished"] += 1
        if h.revision:  # a re-scored revision: the ones it replaces go
            self._drop_replaced(client, w.eval_id, h, w)
