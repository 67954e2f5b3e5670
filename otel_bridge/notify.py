"""The one place the bridge talks to the user: short, prefixed, never repeated."""

from __future__ import annotations

import logging
import sys
import threading

PREFIX = "inspect-otel-bridge: "
logger = logging.getLogger("otel_bridge")
_said: set[str] = set()
_lock = threading.Lock()


def say(message: str, key: str | None = None) -> None:
    """Print ``message`` on stderr once per process (per ``key``, default the message)."""
    key = key or message
    with _lock:
        if key in _said:
            return
        _said.add(key)
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
