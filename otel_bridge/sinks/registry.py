"""Builds the translating sinks by name; heavy SDKs are imported only here, only when chosen."""

from __future__ import annotations

from otel_bridge.config import Settings
from otel_bridge.pipeline import Sink
from otel_bridge.sinks.base import RecordSink


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
    """The in-process pipeline's sink: the translation runs in a worker process it feeds."""
    from otel_bridge.sinks.process import ProcessSinkProcessor

    # finishing runs may take the flush timeout plus the SDKs' own bounded waits (docs/wandb.md)
    exit_wait = settings.flush_timeout_s + 30.0
    if name == "wandb":
        from otel_bridge.translate.wandb import RELEVANT_SPANS

        return Sink(name, ProcessSinkProcessor(name, RELEVANT_SPANS, exit_wait_s=exit_wait))
    if name == "weave":
        return Sink(name, ProcessSinkProcessor(name, None, exit_wait_s=exit_wait))
    return None
