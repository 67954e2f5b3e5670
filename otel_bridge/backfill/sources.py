"""Finding Inspect logs, reading their headers, and grouping them into runs as they ran live.

Paths are whatever Inspect's own log reading accepts: a file, a directory (searched
recursively by ``list_eval_logs``), or a URL such as ``s3://…`` when fsspec's extra is
installed. Samples are streamed a small batch at a time; only a ``.json`` log, or one too old to
list its sample ids, is read whole. Every file that cannot be read becomes one problem line
naming it; the others still import.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from inspect_ai.log import (
    EvalLog,
    EvalSample,
    list_eval_logs,
    read_eval_log,
    read_eval_log_sample_summaries,
    read_eval_log_samples_by_id,
)

from otel_bridge.backfill.replay import RunLogs, TaskLog

LOG_SUFFIXES = (".eval", ".json")
BATCH = 64  # samples held at once
INSPECT_FILES = {"logs.json", "eval-set.json"}  # Inspect's own listings in a log dir: not logs


@dataclass
class Found:
    """The log files found under the given paths, and what could not be read."""

    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files in a directory that are not logs


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'unreadable'}"


def find_logs(paths: list[str]) -> Found:
    """Every log under ``paths`` (files as given, directories recursively), in a stable order."""
    found = Found()
    for raw in paths:
        local = Path(raw)
        is_url = "://" in raw
        try:
            if not is_url and not local.exists():
                found.problems.append(f"{raw}: no such file or directory")
            elif is_url and not raw.endswith(LOG_SUFFIXES) or not is_url and local.is_dir():
                listed = sorted(_local(info.name) for info in list_eval_logs(raw, recursive=True))
                if not is_url:
                    found.skipped.extend(_non_logs(local, set(listed)))
                    found.problems.extend(_unreadable(local))
                if not listed:
                    found.problems.append(f"{raw}: no Inspect logs (.eval, .json) found")
                found.files.extend(listed)
            else:
                found.files.append(raw if is_url else str(local.resolve()))
        except Exception as exc:  # permissions, a missing fsspec extra, a bad URL
            found.problems.append(f"{raw}: cannot list ({_describe(exc)})")
    return found


def _local(name: str) -> str:
    """Inspect lists local logs as ``file://`` URIs; the hook saw (and records) plain paths."""
    return urllib.parse.unquote(name.removeprefix("file://")) if name.startswith("file://") else name


def _unreadable(directory: Path) -> list[str]:
    """Log names in ``directory`` that are no readable file (a link to a log moved away): Inspect's
    listing passes over them, and a log that cannot be read must be named, not left out."""
    return [
        f"{p}: cannot read (not a readable file: a broken link?)"
        for p in sorted(directory.rglob("*"))
        if p.name.endswith(LOG_SUFFIXES) and not p.is_file() and not p.is_dir()
    ]


def _non_logs(directory: Path, logs: set[str]) -> list[str]:
    """The files in ``directory`` Inspect does not list as logs (a ``.json`` may be something else)."""
    return sorted(
        str(p)
        for p in directory.rglob("*")
        if p.is_file() and str(p) not in logs and p.name not in INSPECT_FILES and not p.name.startswith(".")
    )


def read_header(location: str) -> EvalLog:
    """The log without its samples; raises a ValueError naming the file when it is no Inspect log."""
    try:
        header = read_eval_log(location, header_only=True)
    except Exception as exc:
        hint = ", corrupt or cut short?" if Path(location).is_file() else ""
        raise ValueError(f"{location}: not a readable Inspect log{hint} ({_describe(exc)})") from exc
    if not header.eval.run_id or not header.eval.eval_id:
        raise ValueError(f"{location}: the log has no run or eval id (written by a very old Inspect?)")
    return header


def stream_samples(location: str, header: EvalLog) -> Iterator[EvalSample]:
    """The log's samples a batch at a time, attachments resolved to the content the hook saw live.

    An ``.eval`` log is read ``BATCH`` samples per call (each call parses the zip's directory once;
    a call per sample would parse it once per sample), in the order Inspect logged them. A
    ``.json`` log, or one too old to list its sample ids, can only be read whole.
    """
    if location.endswith(".json") or header.eval.dataset.sample_ids is None:
        yield from read_eval_log(location, resolve_attachments=True).samples or []
        return
    keys = [(s.id, s.epoch) for s in read_eval_log_sample_summaries(location)]
    for start in range(0, len(keys), BATCH):
        yield from read_eval_log_samples_by_id(
            location, keys[start : start + BATCH], resolve_attachments=True
        )


def group_runs(headers: list[tuple[str, EvalLog]]) -> list[RunLogs]:
    """One RunLogs per Inspect run id, tasks in creation order (an eval-set retry after its attempt)."""
    runs: dict[str, RunLogs] = {}
    for location, header in headers:
        spec = header.eval
        run = runs.setdefault(spec.run_id, RunLogs(spec.run_id, spec.eval_set_id))
        run.tasks.append(TaskLog(location, header, _streamer(location, header)))
    for run in runs.values():
        run.tasks.sort(key=lambda t: (t.created, t.location))
    return sorted(runs.values(), key=lambda r: (r.tasks[0].created, r.run_id))


def _streamer(location: str, header: EvalLog) -> Callable[[], Iterator[EvalSample]]:
    return lambda: stream_samples(location, header)
