"""The one place the bridge talks to the user: short, prefixed, never repeated."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

PREFIX = "inspect-otel-bridge: "
logger = logging.getLogger("otel_bridge")
_said: set[str] = set()
_lock = threading.Lock()
_relay: Callable[[str], None] | None = None


def relay(to: Callable[[str], None] | None) -> None:
    """Hand every message to ``to`` instead of stderr (an exporter worker sends them to the eval's
    process, which says them in its closing line); None restores stderr."""
    global _relay
    _relay = to


def say(message: str, key: str | None = None) -> None:
    """Print ``message`` on stderr once per process (per ``key``, default the message)."""
    key = key or message
    with _lock:
        if key in _said:
            return
        _said.add(key)
    if _relay is not None:
        try:
            _relay(message)
            return
        except Exception:
            pass
    try:
        sys.stderr.write(PREFIX + message + "\n")
        sys.stderr.flush()
    except Exception:
        pass
    logger.debug(message)


def forget() -> None:
    """Tests may want to hear a message again."""
    with _lock:
        _said.clear()
