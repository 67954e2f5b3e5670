"""Span files: how they are named and grouped, and how to find the one a user means.

One rule for every writer (the hook's span-file exporter, the receiver's file sink): a file per
Inspect run (else per eval set, else ``misc``), named ``<prefix><UTC stamp>_<key>.jsonl``, and a
run resumed later appends to its newest existing file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.config import default_span_dir

SUFFIX = ".jsonl"
METRICS_SUFFIX = ".metrics.jsonl"  # a run's metric lines, beside its span file (otel_bridge.metrics)


def file_key(attributes: Mapping[str, Any]) -> str:
    """The group a span's file is chosen by: its run, else its eval set, else ``misc``."""
    run_id = attributes.get(c.RUN_ID)
    if run_id:
        return str(run_id)
    eval_set = attributes.get(c.EVAL_SET_ID)
    return f"eval-set-{eval_set}" if eval_set else "misc"


def path_for(directory: Path, prefix: str, key: str) -> Path:
    """The file of ``key``: its newest existing one (a resumed run), else a new stamped name."""
    existing = sorted(directory.glob(f"{prefix}*_{key}{SUFFIX}"))
    if existing:
        return existing[-1]
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return directory / f"{prefix}{stamp}_{key}{SUFFIX}"


def metrics_path(span_file: Path) -> Path:
    """``<span file stem>.metrics.jsonl``: the run's metric lines."""
    return span_file.with_name(span_file.name.removesuffix(SUFFIX) + METRICS_SUFFIX)


def _span_files(directory: Path) -> list[Path]:
    return [p for p in directory.glob(f"*{SUFFIX}") if p.is_file() and not p.name.endswith(METRICS_SUFFIX)]


def default_dir() -> Path:
    return default_span_dir()


def latest(directory: Path | None = None) -> Path | None:
    directory = directory or default_dir()
    if not directory.is_dir():
        return None
    files = _span_files(directory)
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; directories become the span files inside them, oldest first."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(_span_files(path), key=lambda p: p.stat().st_mtime))
        else:
            out.append(path)
    return out
