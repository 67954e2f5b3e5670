"""Where span files live and how to find the one a user means."""

from __future__ import annotations

import os
from pathlib import Path

from otel_bridge.sinks.file import SUFFIX


def default_dir() -> Path:
    return Path(os.environ.get("INSPECT_OTEL_DIR") or "otel-spans")


def latest(directory: Path | None = None) -> Path | None:
    directory = directory or default_dir()
    if not directory.is_dir():
        return None
    files = [p for p in directory.glob(f"*{SUFFIX}") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; directories become the span files inside them, oldest first."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(path.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime))
        else:
            out.append(path)
    return out
