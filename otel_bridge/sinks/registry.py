"""Builds the translating sinks by name; heavy SDKs are imported only here, only when chosen."""

from __future__ import annotations

from otel_bridge.config import Settings
from otel_bridge.pipeline import Sink
from otel_bridge.sinks.base import RecordSink, RecordSinkProcessor


def make_record_sink(name: str, settings: Settings) -> RecordSink | None:
    """The RecordSink for ``weave`` or ``wandb`` (shared by in-process, receiver and sync)."""
    if name == "weave":
        from otel_bridge.sinks.weave import WeaveSink

        return WeaveSink(settings)
    if name == "wandb":
        from otel_bridge.sinks.wandb import WandbSink

        return WandbSink(settings)
    return None


def make(name: str, settings: Settings) -> Sink | None:
    sink = make_record_sink(name, settings)
    if sink is None:
        return None
    return Sink(name, RecordSinkProcessor(sink))
