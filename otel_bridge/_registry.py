"""Inspect entry point (``[project.entry-points.inspect_ai]``): importing registers the hook.

Kept tiny: Inspect imports this in every process, enabled or not.
"""

from otel_bridge.hook.hooks import OtelBridgeHooks  # noqa: F401
