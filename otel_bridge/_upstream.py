"""The one place the bridge reaches past a public API of an upstream library.

Keep every such access here, each with a test in ``tests/test_upstream_private.py`` that fails
loudly (naming the upstream version) when the upstream changes.

- OpenTelemetry SDK: a ``TracerProvider`` has no public accessor for its span processors. The
  hook builds its spans directly as ``ReadableSpan``s with ids that preserve Inspect's nesting, so
  they cannot be re-created through the provider's tracer (that would give them new ids); to hand
  them to a provider the user supplies, the bridge calls that provider's composite processor.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


def provider_processor(provider: TracerProvider) -> SpanProcessor:
    """The processor that fans a provider's ended spans out to everything added to it."""
    processor = getattr(provider, "_active_span_processor", None)
    if not isinstance(processor, SpanProcessor):
        raise RuntimeError(
            "this opentelemetry-sdk's TracerProvider has no _active_span_processor: "
            "otel_bridge.configure(tracer_provider=...) needs updating for it "
            "(pass span_processors=... instead)"
        )
    return processor
