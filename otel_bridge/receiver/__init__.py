"""``otel-bridge serve``: an OTLP receiver that feeds received spans to the same RecordSinks as in-process.

Layering: this package sits beside ``otel_bridge.pipeline`` and reuses ``sinks`` and ``records``;
it never imports ``otel_bridge.hook``.
"""

from __future__ import annotations

from otel_bridge.receiver.core import Receiver
from otel_bridge.receiver.requests import Outcome, ReceiverOptions
from otel_bridge.receiver.server import ReceiverConfigError, ReceiverServer, build_sinks, serve

__all__ = [
    "Outcome",
    "Receiver",
    "ReceiverConfigError",
    "ReceiverOptions",
    "ReceiverServer",
    "build_sinks",
    "serve",
]
