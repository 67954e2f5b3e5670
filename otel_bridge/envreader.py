"""Parsing settings from a mapping of variables: one message per bad value, never an exception.

``config`` declares the settings and hands this reader the environment; nothing here reads it.
"""

from __future__ import annotations

from collections.abc import Mapping

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off", ""})


class Reader:
    """Collects one message per bad variable instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        raw = self.env.get(name)
        return raw.strip() if raw is not None and raw.strip() != "" else None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        low = raw.lower()
        if low in TRUE_VALUES:
            return True
        if low in FALSE_VALUES:
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")
        return default

    def number(self, name: str, default: float, minimum: float) -> float:
        return self._parsed(name, default, minimum, float, "a number")

    def integer(self, name: str, default: int, minimum: int) -> int:
        return int(self._parsed(name, default, minimum, int, "an integer"))

    def _parsed(self, name: str, default: float, minimum: float, cast: type, kind: str) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = cast(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not {kind} (using {default:g})")
            return default
        if value < minimum:
            self.problems.append(f"{name}={raw!r} must be at least {minimum:g} (using {default:g})")
            return default
        return value  # an int stays exact (byte limits)

    def words(self, name: str) -> tuple[str, ...] | None:
        raw = self.get(name)
        return None if raw is None else tuple(w.strip() for w in raw.split(",") if w.strip())
