"""The contract between span sources and the translating sinks (Weave, W&B Models, span files).

Every source — the eval's worker processes, the OTLP receiver, ``otel-bridge sync`` and the
public span exporters — hands ended spans to a ``RecordSink`` as ``SpanRecord``s, so one
translation serves them all. Like the SDK's ``SpanExporter``, every method is declared here with
its default; a sink overrides what it needs, and callers never probe for optional methods.

A sink tells the truth (``tests/test_sink_contract.py`` holds every real sink to it):

- ``consume`` raises ``DeliveryError`` when what the records make due could not be written. The
  sink keeps those writes and retries them on its next ``consume``, ``flush`` or ``close``, so a
  caller retries by calling again (with the same records or new ones) and never loses a write by
  retrying; a source that gives up keeps the records (the receiver's spool, the span file).
- ``flush`` returns True only when every write so far is confirmed by the backend (read back, not
  just queued); False means "not yet": nothing given to the sink may be considered delivered.
- A sink that could not reach its backend retries the connection with a bounded backoff; it never
  disables itself for the rest of the process because of a transient failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from otel_bridge.records import SpanRecord


class DeliveryError(RuntimeError):
    """The sink could not write what is due now; it keeps it and retries it (see the contract)."""


class RecordSink:
    """Consumes ended spans. ``consume`` must be idempotent (a span seen twice changes nothing)
    and must tolerate any arrival order and batch boundary."""

    #: Short name used in messages and reports (``weave``, ``wandb``, ``file``, ...).
    name: str = "sink"
    #: Whether ``finalize_tasks`` can end single tasks (else only ``finalize_incomplete`` ends any).
    finalizes_per_task: bool = False

    def consume(self, records: Sequence[SpanRecord]) -> None:
        """Apply these ended spans. Idempotent; called from one worker thread at a time."""
        raise NotImplementedError

    def validate(self, records: Sequence[SpanRecord]) -> Mapping[tuple[str, str], str]:
        """Spans this sink can never translate, ``(trace_id, span_id) → reason`` (default: none).

        The receiver counts them in partial_success, so the sender learns without retrying.
        """
        return {}

    def flush(self, timeout_s: float) -> bool:
        """Finish outstanding writes; True when everything was written."""
        return True

    def finalize_incomplete(self, reason: str) -> None:
        """Nothing more will arrive for tasks still open: end them as failed with ``reason``.

        Called by ``sync`` at the end of a file and by the eval's worker when its input ends; the
        receiver calls it only for tasks it considers abandoned. Default: nothing to end.
        """

    def finalize_tasks(self, task_ids: Sequence[str], reason: str) -> None:
        """End just these tasks as failed (sinks with ``finalizes_per_task``; default: nothing).

        The receiver uses it for tasks that went silent while others still send spans.
        """

    def close(self) -> None:
        """Flush and release resources (does not finalise anything)."""

    def problem(self) -> str | None:
        """One line for the user when something could not be delivered, else None."""
        return None
