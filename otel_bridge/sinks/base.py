"""The contract between span sources and the translating sinks (Weave, W&B Models).

Every source — the eval's worker processes, the OTLP receiver, ``otel-bridge sync`` — hands ended
spans to a ``RecordSink`` as ``SpanRecord``s, so one translation serves all three. A sink's
``consume`` must be idempotent (a span seen twice changes nothing) and must tolerate any
arrival order and batch boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from otel_bridge.records import SpanRecord


class RecordSink(Protocol):
    name: str

    def consume(self, records: Sequence[SpanRecord]) -> None:
        """Apply these ended spans. Idempotent; called from one worker thread at a time."""

    def flush(self, timeout_s: float) -> bool:
        """Finish outstanding writes; True when everything was written."""

    def finalize_incomplete(self, reason: str) -> None:
        """Nothing more will arrive for tasks still open: end them as failed with ``reason``.

        Called by ``sync`` at the end of a file and by the eval's worker when its input ends; the
        receiver calls it only for tasks it considers abandoned.
        """

    def close(self) -> None:
        """Flush and release resources (does not finalise anything)."""

    def problem(self) -> str | None:
        """One line for the user when something could not be delivered, else None."""
