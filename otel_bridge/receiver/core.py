"""What both transports share: auth, validation, the spool-before-ack rule and the sink worker.

A request is answered 200 only after its new spans are fsynced into the spool (as the protobuf
bytes received, concurrent requests sharing one fsync); a worker thread then decodes them and
feeds them to the sinks, flushes them and only then advances the committed offset. So a
crash at any point either replays an entry (sinks are idempotent) or the client never got its 200
(and retries). Spans already spooled (a collector retry) are dropped before spooling, so a retried
request is never fed twice by one receiver.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_bridge import conventions as c
from otel_bridge import notify
from otel_bridge.otlp_json import json_to_request, request_to_json
from otel_bridge.receiver.memory import fix_mmap_threshold, release_free_memory
from otel_bridge.receiver.requests import (
    BadRequest,
    Outcome,
    ReceiverOptions,
    Unavailable,
    span_problem,
    subset,
    summarise,
)
from otel_bridge.receiver.spool import Entry, Position, Spool, SpoolFull, decode_entry, encode_entry
from otel_bridge.records import SpanRecord, from_request, records_from_line
from otel_bridge.redact_records import scrub_request
from otel_bridge.sinks.base import RecordSink


class Receiver:
    """Accepts decoded requests into the spool and runs the worker that feeds the sinks."""

    def __init__(self, sinks: Sequence[RecordSink], spool: Spool, options: ReceiverOptions) -> None:
        self.sinks = list(sinks)
        self.spool = spool
        self.options = options
        self.delivered_spans = 0
        self.dead_lettered = 0
        self.internal_errors = 0
        self.finalized_tasks: list[str] = []
        self._closing = False
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self._drain = threading.Event()
        self._abort = threading.Event()
        self._uncommitted: Position | None = None
        self._delivered_to: Position | None = None
        self._failing: tuple[str, str, float] | None = None  # sink, error, since (monotonic)
        self._unconfirmed_since: float | None = None
        self._open_tasks: dict[str, float] = {}
        self._ended: deque[str] = deque(maxlen=10_000)
        self._ended_set: set[str] = set()
        self._last_stale_check = 0.0
        self._trim_ticks = 0
        self._worker = threading.Thread(target=self._run, name="otel-bridge-receiver", daemon=True)
        # records are built on the accept path only for sinks that look at them there
        self._validators = [s for s in self.sinks if type(s).validate is not RecordSink.validate]

    # -- requests (any thread) -------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        """No token configured: anything goes (loopback only). Else ``Bearer <token>``, constant time."""
        token = self.options.token
        if token is None:
            return True
        scheme, _, given = (header or "").strip().partition(" ")
        ok = hmac.compare_digest(given.strip().encode(), token.encode())
        return ok and scheme.lower() == "bearer"

    def accept(self, request: ExportTraceServiceRequest, body: bytes | None = None) -> Outcome:
        """Validate, drop spans already spooled, fsync the rest into the spool; then it may be acked.

        ``body``: the protobuf bytes ``request`` was parsed from; spooled as they are when every
        span is valid and new (no re-encoding on the accept path).
        """
        with self._inflight_lock:
            if self._closing:
                raise Unavailable("the receiver is shutting down; retry shortly")
            self._inflight += 1
        try:
            return self._accept(request, body)
        finally:
            with self._inflight_lock:
                self._inflight -= 1
                self._inflight_lock.notify_all()

    def _accept(self, request: ExportTraceServiceRequest, body: bytes | None) -> Outcome:
        """Only what the id rules and de-duplication need is looked at here (two byte fields a span).

        Spans are decoded into records on the worker's side (``_decode``), so a request costs a
        protobuf parse, one id loop and one fsync shared with concurrent requests.
        """
        reasons: list[str] = []
        rejected = total = 0
        valid: set[bytes] = set()
        order: list[bytes] = []
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    total += 1
                    problem = span_problem(span)
                    if problem is not None:
                        rejected += 1
                        reasons.append(f"span {span.name!r}: {problem}")
                        continue
                    key = span.trace_id + span.span_id
                    if key not in valid:
                        valid.add(key)
                        order.append(key)
        if not order:
            return Outcome(rejected_spans=rejected, error_message=self._message(rejected, reasons))
        # the bytes received are spooled as they are when nothing is cut or redacted (records for
        # the sinks are built in ``_decode``)
        whole = body is not None and len(order) == total  # nothing rejected, no span twice
        candidate = request if whole else subset(request, valid)
        try:
            if scrub_request(candidate):  # any sender's spans, redacted as the hook's are, before the spool
                whole = False
            if self._validators:
                rejected += self._sink_rejections(from_request(candidate), reasons)
        except RecursionError as exc:
            raise BadRequest("attribute values are nested too deeply") from exc
        fresh = [k for k in order if not self.spool.seen(k)]
        duplicates = len(order) - len(fresh)
        if not fresh:
            self.spool.sync_all()  # the copy another request spooled is fsynced before this 200
        while fresh:
            if len(fresh) < len(order):
                encoded = subset(candidate, set(fresh)).SerializeToString()
            else:
                encoded = body if whole and body is not None else candidate.SerializeToString()
            try:
                raced = self.spool.append(encode_entry(encoded), fresh)
            except SpoolFull as exc:
                raise Unavailable(str(exc)) from exc
            if raced is None:
                break
            duplicates += len(fresh) - len(raced)
            fresh = raced
        return Outcome(
            spooled_spans=len(fresh),
            duplicate_spans=duplicates,
            rejected_spans=rejected,
            error_message=self._message(rejected, reasons),
        )

    @staticmethod
    def _message(rejected: int, reasons: list[str]) -> str:
        if not reasons:
            return ""
        return f"{rejected} span(s) rejected: {summarise(reasons)}"

    def _sink_rejections(self, records: list[SpanRecord], reasons: list[str]) -> int:
        """Spans some sink says it can never translate (``RecordSink.validate``).

        They still go to the other sinks (a sink skips what it cannot translate), and are counted
        in partial_success so the sender learns about them without retrying.
        """
        bad: set[tuple[str, str]] = set()
        for sink in self._validators:
            try:
                found = sink.validate(records) or {}
            except Exception as exc:
                notify.say(f"the {sink.name} sink could not validate spans ({type(exc).__name__}: {exc}).")
                continue
            for key, reason in dict(found).items():
                bad.add((str(key[0]), str(key[1])))
                reasons.append(f"{sink.name} cannot translate span {key[1]}: {reason}")
        return len(bad)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> int:
        """Remember the keys of unprocessed spool entries (so retries stay deduplicated), start the worker.

        Returns how many entries will be replayed.
        """
        pending = 0
        for entry in self.spool.iter_unread():
            pending += 1
            try:
                request = _request(entry.line)
            except Exception:
                continue
            self.spool.remember_pending(
                s.trace_id + s.span_id
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for s in ss.spans
            )
        fix_mmap_threshold()  # large buffers freed go back to the OS: RSS stays flat over many evals
        self._worker.start()
        return pending

    def stop(self, timeout_s: float) -> bool:
        """Refuse new requests, deliver what is spooled (up to ``timeout_s``), flush and close the sinks.

        Returns True when everything spooled reached the sinks; the rest is replayed on next start.
        """
        with self._inflight_lock:  # requests being spooled right now finish first
            self._closing = True
            self._inflight_lock.wait_for(lambda: self._inflight == 0, timeout=max(timeout_s, 1.0))
        self._drain.set()
        self.spool.wake()
        self._worker.join(timeout_s)
        if self._worker.is_alive():
            self._abort.set()
            self.spool.wake()
            self._worker.join(10)
        drained = not self._worker.is_alive() and not self._abort.is_set()
        if self._worker.is_alive():
            # still inside a sink call: closing the sinks under it would race; the process ends,
            # and everything not committed is replayed on the next start
            notify.say("the receiver's worker did not stop in time; undelivered spans stay in the spool.")
            self.spool.close()
            return False
        if self._uncommitted is not None:
            self._flush_and_commit(self._uncommitted)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                notify.say(f"the {sink.name} sink could not close ({type(exc).__name__}: {exc}).")
        self.spool.close()
        return drained and self._uncommitted is None

    def note_internal_error(self, exc: BaseException) -> None:
        """A transport hit a bug: counted, shown once, answered as a retryable 500."""
        self.internal_errors += 1
        notify.say(f"receiver internal error ({type(exc).__name__}: {exc}).", key="receiver-internal")

    @property
    def worker_alive(self) -> bool:
        return self._worker.is_alive()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Liveness plus what is not delivered yet; ``ok`` is False only when delivery stopped."""
        ok = self.worker_alive and not self._closing
        problems: dict[str, str | None] = {}
        for sink in self.sinks:
            try:
                problems[sink.name] = sink.problem()
            except Exception as exc:
                problems[sink.name] = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        status = "ok" if ok else ("stopping" if self._closing else "worker stopped")
        doc: dict[str, Any] = {
            "status": status,
            "pending_bytes": self.spool.pending_bytes(),
            "delivered_spans": self.delivered_spans,
            "dead_lettered_entries": self.dead_lettered,
            "open_tasks": len(self._open_tasks),
            "sinks": problems,
        }
        if ok and self._failing is not None:
            name, why, since = self._failing
            doc["status"] = "degraded"
            doc["failing"] = {"sink": name, "error": why, "for_s": round(now - since, 1)}
        if ok and self._unconfirmed_since is not None:
            doc["status"] = "degraded"
            doc["unconfirmed_for_s"] = round(now - self._unconfirmed_since, 1)
        if self.dead_lettered:
            path = self.spool.directory / "dead-letter.jsonl"
            names = ",".join(s.name for s in self.sinks if s.name in ("weave", "wandb")) or "weave,wandb"
            doc["dead_letter"] = {"path": str(path), "deliver_with": f"otel-bridge sync {path} --to {names}"}
        return ok, doc

    # -- worker ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                entries = self.spool.read(64, 16 * 1024 * 1024)
                if not entries:
                    if self._drain.is_set():
                        return
                    if self._uncommitted is not None:
                        self._flush_and_commit(self._uncommitted)
                    self._check_stale()
                    if self._trim_ticks and self._uncommitted is None:
                        self._trim_ticks -= 1  # idle and all confirmed: what the evals freed goes back
                        release_free_memory()
                    self.spool.wait(0.5)
                    continue
                for entry in entries:
                    if not self._deliver(entry):
                        return  # aborted while a sink kept failing: replayed on next start
                    self._delivered_to = entry.end
                self._flush_and_commit(entries[-1].end)
                self._trim_ticks = 3  # sinks finish in the background: trim a few idle ticks later
                self._check_stale()
            except Exception as exc:  # a bug must not silently stop delivery, nor skip entries
                notify.say(f"receiver worker error ({type(exc).__name__}: {exc}); continuing.")
                self.spool.rewind(self._delivered_to or self.spool.committed)
                self._abort.wait(0.5)

    def _deliver(self, entry: Entry) -> bool:
        try:
            records = self._decode(entry.line)
        except Exception as exc:
            path = self.spool.dead_letter(entry.line)
            self.dead_lettered += 1
            notify.say(f"an unreadable spool entry was moved to {path} ({exc}).")
            return True
        self._track(records)
        pending = list(self.sinks)
        delay = 0.2
        deadline = time.monotonic() + self.options.retry_for_s
        while pending:
            failed: list[tuple[RecordSink, Exception]] = []
            for sink in pending:
                try:
                    sink.consume(records)
                except Exception as exc:
                    failed.append((sink, exc))
            if not failed:
                self._failing = None
                break
            pending = [s for s, _ in failed]
            sink, error = failed[0]
            why = f"{type(error).__name__}: {error}"
            since = self._failing[2] if self._failing is not None else time.monotonic()
            self._failing = (sink.name, why, since)
            if self._abort.is_set():
                return False
            if time.monotonic() >= deadline:
                path = self.spool.dead_letter(_span_file_line(entry.line))
                self.dead_lettered += 1
                notify.say(
                    f"the {sink.name} sink kept failing ({why}); {len(records)} span(s) were moved to "
                    f"{path} — deliver them later with `otel-bridge sync {path} --to {sink.name}`.",
                    key=f"dead-letter:{sink.name}",
                )
                return True
            notify.say(
                f"the {sink.name} sink failed ({why}); retrying — the spool keeps the spans.",
                key=f"receiver-retry:{sink.name}",
            )
            self._abort.wait(delay)
            delay = min(delay * 2, 30.0)
        self.delivered_spans += len(records)
        return True

    @staticmethod
    def _decode(line: bytes) -> list[SpanRecord]:
        """A spool entry's spans as records: the one place the worker decodes a batch."""
        encoded = decode_entry(line)
        if encoded is None:  # OTLP/JSON (a spool of an older version): straight to records
            return records_from_line(line)
        return from_request(ExportTraceServiceRequest.FromString(encoded))

    def _flush_and_commit(self, position: Position) -> None:
        """Advance the durable offset only once every sink says its writes are done."""
        ok = True
        for sink in self.sinks:
            try:
                ok = sink.flush(self.options.flush_timeout_s) and ok
            except Exception as exc:
                ok = False
                notify.say(f"the {sink.name} sink could not flush ({type(exc).__name__}: {exc}).")
        if ok:
            self.spool.commit(position)
            self._uncommitted = None
            self._unconfirmed_since = None
        else:
            self._uncommitted = position
            if self._unconfirmed_since is None:
                self._unconfirmed_since = time.monotonic()

    # -- stale tasks -----------------------------------------------------------------------------
    def _track(self, records: Iterable[SpanRecord]) -> None:
        now = time.monotonic()
        for r in records:
            # one attempt of a task: eval-set retries share the task id, not the eval id
            task = r.attributes.get(c.EVAL_ID) or r.attributes.get(c.TASK_ID)
            if not isinstance(task, str) or not task:
                continue
            if r.name == c.SPAN_TASK:
                self._open_tasks.pop(task, None)
                if task not in self._ended_set:
                    if len(self._ended) == self._ended.maxlen:
                        self._ended_set.discard(self._ended[0])
                    self._ended.append(task)
                    self._ended_set.add(task)
            elif task not in self._ended_set:
                self._open_tasks[task] = now

    def _check_stale(self) -> None:
        """Tasks silent for ``stale_after_s`` are ended as failed.

        When every sink ``finalizes_per_task``, each gets exactly the stale tasks; otherwise
        ``finalize_incomplete`` ends *every* open task, so it is called only once all open tasks
        are stale (it must never end a task that is still sending spans).
        """
        after = self.options.stale_after_s
        now = time.monotonic()
        if after <= 0 or not self._open_tasks or now - self._last_stale_check < min(after / 4, 30.0):
            return
        self._last_stale_check = now
        stale = [t for t, seen in self._open_tasks.items() if now - seen >= after]
        if not stale:
            return
        reason = (
            f"no spans for this task reached the receiver for {after:g} s "
            "(INSPECT_OTEL_RECEIVER_STALE_AFTER); it was probably interrupted"
        )
        per_task = all(s.finalizes_per_task for s in self.sinks)
        if not per_task and len(stale) != len(self._open_tasks):
            return
        for sink in self.sinks:
            try:
                if per_task:
                    sink.finalize_tasks(stale, reason)
                else:
                    sink.finalize_incomplete(reason)
            except Exception as exc:
                notify.say(f"the {sink.name} sink could not finalise tasks ({type(exc).__name__}: {exc}).")
        for task in stale:
            self._open_tasks.pop(task, None)
        self.finalized_tasks.extend(stale)
        if self._uncommitted is None:
            self._flush_and_commit(self.spool.committed)


def _request(line: bytes) -> ExportTraceServiceRequest:
    encoded = decode_entry(line)
    return json_to_request(line) if encoded is None else ExportTraceServiceRequest.FromString(encoded)


def _span_file_line(line: bytes) -> bytes:
    """A spool entry as a span-file line (OTLP/JSON) for the dead letter, which ``sync`` reads."""
    return line if decode_entry(line) is None else request_to_json(_request(line)).encode()


def health_json(receiver: Receiver) -> tuple[bool, bytes]:
    ok, doc = receiver.health()
    return ok, json.dumps(doc).encode()
