"""The one wrapper around everything the bridge does inside an eval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_bridge import notify


def guard(where: str, action: Callable[[], Any]) -> None:
    """Run ``action``; any exception becomes one message, never an exception in Inspect."""
    try:
        action()
    except Exception as exc:  # the eval must never notice the bridge
        notify.say(
            f"internal error in {where} ({type(exc).__name__}: {exc}); the eval is unaffected.",
            key=f"internal:{where}",
        )
        notify.logger.debug("bridge error", exc_info=True)
