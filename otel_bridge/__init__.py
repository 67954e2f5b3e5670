"""OpenTelemetry observability for Inspect AI evaluations.

The public API is ``__all__``; every other module and name is private and may change.
Names load on first use: Inspect imports this package in every process, traced or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "SpanFileExporter",
    "WandbSpanExporter",
    "WeaveSpanExporter",
    "__version__",
    "configure",
    "reset",
]

_WHERE = {
    "SpanFileExporter": "otel_bridge.exporters.span_file",
    "WandbSpanExporter": "otel_bridge.exporters.translating",
    "WeaveSpanExporter": "otel_bridge.exporters.translating",
    "configure": "otel_bridge.api",
    "reset": "otel_bridge.api",
}

if TYPE_CHECKING:
    from otel_bridge.api import configure, reset
    from otel_bridge.exporters.span_file import SpanFileExporter
    from otel_bridge.exporters.translating import WandbSpanExporter, WeaveSpanExporter


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_bridge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
