"""The contract between span sources and the translating sinks (Weave, W&B Models, span files).

Every source — the eval's worker processes, the OTLP receiver, ``otel-bridge sync`` and the
public span exporters — hands ended spans to a ``RecordSink`` as ``SpanRecord``s, so one
translation serves them all. Like the SDK's ``SpanExporter``, every method is declared here with
its default; a sink overrides what it needs, and callers never probe for optional methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from otel_bridge.records import SpanRecord


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
