"""Builds the translating sinks by name; heavy SDKs are imported only here, only when chosen."""

from __future__ import annotations

from otel_bridge.config import Settings
from otel_bridge.sinks.base import RecordSink

#: The sinks ``make_record_sink`` builds (the receiver adds ``file`` and ``module:factory``).
TRANSLATING_SINKS = ("weave", "wandb")


def make_record_sink(name: str, settings: Settings) -> RecordSink | None:
    """The RecordSink for ``weave`` or ``wandb`` (shared by the workers, the receiver and sync)."""
    if name == "weave":
        from otel_bridge.sinks.weave import WeaveSink

        return WeaveSink(settings)
    if name == "wandb":
        from otel_bridge.sinks.wandb import WandbSink

        return WandbSink(settings)
    return None
