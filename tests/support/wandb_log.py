"""Read wandb's offline transaction log (``run-<id>.wandb``) in tests.

Why this exists: in offline mode wandb 0.31 keeps config, history, summary, metric definitions and
artifact manifests *only* in the binary ``.wandb`` log (there is no ``wandb-summary.json`` and
``run.summary`` is empty after ``finish()``), and the SDK no longer ships a Python reader for it.
Tests of the W&B Models sink therefore need this small, dependency-free reader to check what a run
really recorded.

File format (learned from wandb's public ``core/pkg/leveldb`` and ``core/internal/transactionlog``
sources and checked against files written by wandb 0.31.0):

* A 7-byte file header: ident ``b":W&B"``, magic ``0xBEE1`` (uint16 little-endian), version byte
  (0 for wandb 0.31.0). The header sits inside the first 32 KiB block, so block boundaries are at
  multiples of 32768 from the start of the file.
* LevelDB-log framing: each record is one FULL chunk or FIRST, MIDDLE*, LAST chunks. A chunk has a
  7-byte header -- CRC32 (uint32 LE), payload length (uint16 LE), chunk type (uint8) -- and never
  crosses a block boundary; when fewer than 7 bytes remain in a block they are zero padding.
* Unlike upstream LevelDB (masked CRC32C), wandb uses plain IEEE CRC32 (``zlib.crc32``) over the
  chunk-type byte followed by the payload.
* Each reassembled record is a serialized ``wandb.proto.wandb_internal_pb2.Record``.

Corruption policy: ``read_records`` raises :class:`WandbLogError` (with byte offset and reason) by
default, because a test reading a half-written log should fail loudly rather than silently assert on
partial data. ``strict=False`` (also on ``load_run``/``load_runs``) instead returns every record that
precedes the damage and reports it (``LogReadResult.error`` / ``WandbRun.damage``), which is what a
test of crash behaviour wants. wandb itself skips to the next 32 KiB block after damage; we do not,
since records after a gap would give a misleading picture of the run.

``wandb`` is imported lazily (only to decode protobufs) so importing this module stays cheap.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from wandb.proto.wandb_internal_pb2 import Record  # type: ignore[attr-defined]  # star-import shim

__all__ = [
    "ArtifactEntry",
    "ArtifactInfo",
    "LogReadResult",
    "MetricDef",
    "WandbLogError",
    "WandbRun",
    "find_run_dirs",
    "iter_payloads",
    "load_run",
    "load_runs",
    "merge_runs",
    "read_log",
    "read_records",
    "wait_for_run",
]

FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
FILE_HEADER_LEN = 7
#: Header versions this reader has been checked against. wandb's sources say a version bump means a
#: format change old readers must refuse, so an unknown version is an error, not a guess.
SUPPORTED_VERSIONS = frozenset({0})
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CHUNK_NAMES = {FULL: "FULL", FIRST: "FIRST", MIDDLE: "MIDDLE", LAST: "LAST"}
#: Summary/history values whose ``_type`` marks a logged ``wandb.Table`` stored as a JSON file.
TABLE_TYPES = frozenset({"table-file"})
#: wandb's own bookkeeping key in config and summary; kept apart so tests compare user data exactly.
WANDB_INTERNAL_KEY = "_wandb"


class WandbLogError(ValueError):
    """A ``.wandb`` file is not a readable transaction log (bad header, checksum, framing, protobuf).

    Carries ``path``, ``offset`` (byte offset of the offending chunk/record) and ``reason`` so a
    failing test points straight at the damage.
    """

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{self.path}: corrupt wandb transaction log at byte {offset}: {reason}")


@dataclass(frozen=True)
class LogReadResult:
    """Records read from a log plus the damage that stopped reading (``None`` when the log is intact)."""

    records: list[Record]
    error: WandbLogError | None = None


class ArtifactEntry(TypedDict):
    """One manifest entry of a logged artifact (``local_path`` points into wandb's staging dir)."""

    path: str
    digest: str
    size: int
    ref: str
    local_path: str


class ArtifactInfo(TypedDict):
    """An artifact as recorded by ``run.log_artifact`` (and the implicit ``run_table`` artifacts)."""

    name: str
    type: str
    digest: str
    aliases: list[str]
    paths: list[str]
    entries: list[ArtifactEntry]


@dataclass(frozen=True)
class MetricDef:
    """A ``run.define_metric`` record: the metric (or glob) and the x-axis metric it is plotted against."""

    name: str
    step_metric: str = ""
    glob_name: str = ""
    hidden: bool = False
    step_sync: bool = False
    summary: tuple[str, ...] = ()
    goal: str | None = None


@dataclass
class WandbRun:
    """What one offline run (or a merge of resumed segments) recorded, decoded into plain Python.

    ``config``/``summary`` have wandb's ``_wandb`` bookkeeping removed (see ``wandb_config`` and
    ``wandb_summary``); nested keys become nested dicts, mirroring what the user passed to wandb.
    ``history`` has one dict per history record, including ``_step``, ``_runtime``, ``_timestamp``.
    """

    path: Path
    run_dir: Path
    run_id: str = ""
    entity: str = ""
    project: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    start_time: float | None = None
    #: ``RunRecord.resume``: the init asked to resume (``resume="allow"|"must"``). Offline, this does
    #: NOT mean any earlier data was picked up -- each offline init writes a fresh directory.
    resume_requested: bool = False
    #: ``RunRecord.resumed``: the backend actually resumed an existing run (never true offline).
    resumed: bool = False
    starting_step: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    wandb_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    wandb_summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    file_policies: dict[str, str] = field(default_factory=dict)
    artifacts: list[ArtifactInfo] = field(default_factory=list)
    metrics: list[MetricDef] = field(default_factory=list)
    exit_code: int | None = None
    record_count: int = 0
    record_types: dict[str, int] = field(default_factory=dict)
    #: Number of ``.wandb`` files folded into this object (``merge_runs`` of resumed segments).
    segments: int = 1
    #: Where ``table()`` looks for media files, newest segment last.
    files_dirs: list[Path] = field(default_factory=list)
    #: Description of the damage that cut reading short (only with ``strict=False``).
    damage: str | None = None
    records: list[Record] = field(default_factory=list, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True when the log holds an exit record, i.e. ``finish()`` got as far as writing it."""
        return self.exit_code is not None

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        """Latest ``wandb.Table`` per logged key (dotted for nested keys), as summary entries."""
        return dict(_find_tables(self.summary))

    def metric(self, name: str) -> MetricDef | None:
        """The last ``define_metric`` record for ``name`` (later definitions override earlier ones)."""
        found = [m for m in self.metrics if name in (m.name, m.glob_name)]
        return found[-1] if found else None

    def table(self, name: str, *, step: int | None = None) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows of the ``wandb.Table`` logged under ``name`` (dotted for nested keys).

        Without ``step`` the summary's (latest) table is used; with ``step`` the one in the history
        row whose ``_step`` matches. The table JSON is read from the run's ``files/`` directory
        (``media/table/<key>_<step>_<hash>.table.json``), where wandb writes it even offline.
        """
        entry: dict[str, Any] | None
        if step is None:
            entry = self.tables.get(name)
        else:
            entry = next(
                (dict(_find_tables(row)).get(name) for row in self.history if row.get("_step") == step),
                None,
            )
        if entry is None:
            where = f" at step {step}" if step is not None else ""
            raise KeyError(f"run {self.run_id!r} has no table {name!r}{where}")
        rel = entry.get("path")
        if not isinstance(rel, str):
            raise KeyError(f"table {name!r} of run {self.run_id!r} has no file path: {entry!r}")
        for files_dir in reversed(self.files_dirs):
            candidate = files_dir / rel
            if candidate.exists():
                doc = json.loads(candidate.read_text(encoding="utf-8"))
                return list(doc.get("columns", [])), [list(r) for r in doc.get("data", [])]
        raise FileNotFoundError(f"table file {rel!r} for {name!r} not found under {self.files_dirs}")


# --------------------------------------------------------------------------------------------------
# Framing


def _check_header(data: bytes, path: Path) -> None:
    if len(data) < FILE_HEADER_LEN:
        raise WandbLogError(path, 0, f"file is {len(data)} bytes, shorter than the 7-byte header")
    ident, magic, version = struct.unpack("<4sHB", data[:FILE_HEADER_LEN])
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise WandbLogError(path, 0, f"not a wandb transaction log (header {data[:FILE_HEADER_LEN]!r})")
    if version not in SUPPORTED_VERSIONS:
        raise WandbLogError(
            path, 6, f"unsupported log version {version} (reader knows {sorted(SUPPORTED_VERSIONS)})"
        )


def iter_payloads(data: bytes, path: Path | str = "<bytes>") -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, payload)`` for every record in a whole ``.wandb`` file's bytes.

    Validates header, block trailers, chunk lengths, CRCs and the FULL/FIRST/MIDDLE/LAST sequence;
    raises :class:`WandbLogError` at the first problem (after yielding everything before it).
    """
    path = Path(path)
    _check_header(data, path)
    pos = FILE_HEADER_LEN
    end = len(data)
    pending: bytearray | None = None
    pending_at = 0
    while True:
        block_left = BLOCK_SIZE - pos % BLOCK_SIZE
        if block_left < CHUNK_HEADER_LEN:
            # No room for a chunk header: the writer zero-fills the block's tail.
            stop = min(pos + block_left, end)
            if any(data[pos:stop]):
                raise WandbLogError(path, pos, "non-zero bytes in block trailer")
            pos = stop
            continue
        if pos >= end:
            if pending is not None:
                raise WandbLogError(path, pending_at, "truncated: file ends inside a multi-chunk record")
            return
        if end - pos < CHUNK_HEADER_LEN:
            raise WandbLogError(path, pos, f"truncated: {end - pos} bytes left, chunk header needs 7")
        crc, length, ctype = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER_LEN])
        if crc == 0 and length == 0 and ctype == 0:
            # A zero-filled (e.g. preallocated) remainder of a block is tolerated between records.
            stop = min(pos + block_left, end)
            if pending is None and not any(data[pos:stop]):
                pos = stop
                continue
            raise WandbLogError(path, pos, "zero chunk header inside data")
        if length > block_left - CHUNK_HEADER_LEN:
            raise WandbLogError(path, pos, f"chunk length {length} overflows its 32 KiB block")
        body_start = pos + CHUNK_HEADER_LEN
        if body_start + length > end:
            raise WandbLogError(
                path, pos, f"truncated: chunk needs {length} payload bytes, file has {end - body_start}"
            )
        payload = data[body_start : body_start + length]
        actual = zlib.crc32(bytes([ctype]) + payload) & 0xFFFFFFFF
        if actual != crc:
            raise WandbLogError(path, pos, f"checksum mismatch (stored {crc:#010x}, computed {actual:#010x})")
        if ctype == FULL:
            if pending is not None:
                raise WandbLogError(path, pos, "FULL chunk while a FIRST..LAST record is open")
            yield pos, bytes(payload)
        elif ctype == FIRST:
            if pending is not None:
                raise WandbLogError(path, pos, "FIRST chunk while a FIRST..LAST record is open")
            pending, pending_at = bytearray(payload), pos
        elif ctype in (MIDDLE, LAST):
            if pending is None:
                raise WandbLogError(path, pos, f"{_CHUNK_NAMES[ctype]} chunk without a FIRST chunk")
            pending += payload
            if ctype == LAST:
                yield pending_at, bytes(pending)
                pending = None
        else:
            raise WandbLogError(path, pos, f"unknown chunk type {ctype}")
        pos = body_start + length


def read_log(path: Path | str) -> LogReadResult:
    """Read every intact record of a ``.wandb`` file, stopping (not raising) at the first damage."""
    from wandb.proto.wandb_internal_pb2 import Record  # type: ignore[attr-defined]  # star-import shim

    path = Path(path)
    records: list[Record] = []
    try:
        for offset, payload in iter_payloads(path.read_bytes(), path):
            record = Record()
            try:
                record.ParseFromString(payload)
            except Exception as exc:  # protobuf raises DecodeError; keep the reader's single error type
                raise WandbLogError(path, offset, f"record is not a wandb Record protobuf: {exc}") from exc
            records.append(record)
    except WandbLogError as err:
        return LogReadResult(records, err)
    return LogReadResult(records, None)


def read_records(path: Path | str, *, strict: bool = True) -> list[Record]:
    """All ``Record`` messages of a ``.wandb`` file, in write order.

    ``strict=True`` raises :class:`WandbLogError` on any damage; ``strict=False`` returns the
    records before the damage (use :func:`read_log` to also learn what went wrong).
    """
    result = read_log(path)
    if strict and result.error is not None:
        raise result.error
    return result.records


# --------------------------------------------------------------------------------------------------
# Decoding records into a WandbRun


def _decode_json(text: str) -> Any:
    # wandb's encoder emits NaN/Infinity tokens, which json.loads accepts by default.
    return json.loads(text) if text else None


def _item_path(item: Any) -> list[str]:
    return list(item.nested_key) or [item.key]


def _item_value(item: Any) -> Any:
    """Value of a config/summary/history item: a typed oneof (newer history items) or ``value_json``."""
    which = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if which is None:
        return _decode_json(item.value_json)
    if which == "none":
        return None
    if which == "json":
        return _decode_json(item.json)
    return getattr(item, which)


def _set_path(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _del_path(target: dict[str, Any], path: Sequence[str]) -> None:
    node: Any = target
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _deep_update(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value)) if isinstance(value, Mapping | list) else value


def _apply_updates(target: dict[str, Any], updates: Iterable[Any], removes: Iterable[Any] = ()) -> None:
    for item in updates:
        _set_path(target, _item_path(item), _item_value(item))
    for item in removes:
        _del_path(target, _item_path(item))


def _find_tables(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key, value in tree.items():
        if not isinstance(value, dict):
            continue
        dotted = f"{prefix}{key}"
        if value.get("_type") in TABLE_TYPES:
            yield dotted, value
        else:
            yield from _find_tables(value, f"{dotted}.")


def _split_internal(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    user = dict(tree)
    internal = user.pop(WANDB_INTERNAL_KEY, {})
    return user, internal if isinstance(internal, dict) else {"value": internal}


def _metric_def(metric: Any) -> MetricDef:
    from wandb.proto.wandb_internal_pb2 import MetricRecord  # type: ignore[attr-defined]  # star-import shim

    aggs = tuple(f.name for f, v in metric.summary.ListFields() if v is True)
    return MetricDef(
        name=metric.name,
        step_metric=metric.step_metric,
        glob_name=metric.glob_name,
        hidden=metric.options.hidden,
        step_sync=metric.options.step_sync,
        summary=aggs,
        goal=MetricRecord.MetricGoal.Name(metric.goal) if metric.goal else None,
    )


def _artifact_info(art: Any) -> ArtifactInfo:
    entries: list[ArtifactEntry] = [
        ArtifactEntry(path=e.path, digest=e.digest, size=e.size, ref=e.ref, local_path=e.local_path)
        for e in art.manifest.contents
    ]
    return ArtifactInfo(
        name=art.name,
        type=art.type,
        digest=art.digest,
        aliases=list(art.aliases),
        paths=[e["path"] for e in entries],
        entries=entries,
    )


def _resolve_log_file(target: Path | str) -> Path:
    target = Path(target)
    if target.is_file():
        return target
    if target.is_dir():
        logs = sorted(target.glob("run-*.wandb"))
        if len(logs) == 1:
            return logs[0]
        names = [p.name for p in logs]
        raise FileNotFoundError(f"expected exactly one run-*.wandb in {target}, found {names}")
    raise FileNotFoundError(f"no such run directory or .wandb file: {target}")


def load_run(target: Path | str, *, strict: bool = True) -> WandbRun:
    """Decode one offline run from its ``offline-run-*`` directory or its ``run-<id>.wandb`` file.

    Config is the init config merged with every later config record; summary is the result of
    applying every summary record in order (so ``run.summary[...] = ...`` after the last log wins);
    history keeps one dict per history record. Raises :class:`WandbLogError` on damage unless
    ``strict=False``, in which case ``damage`` describes it and the run holds what came before.
    """
    log_file = _resolve_log_file(target)
    result = read_log(log_file)
    if strict and result.error is not None:
        raise result.error
    run = WandbRun(path=log_file, run_dir=log_file.parent, files_dirs=[log_file.parent / "files"])
    run.damage = str(result.error) if result.error is not None else None
    run.records = result.records
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    types: Counter[str] = Counter()
    saw_run = False
    for record in result.records:
        kind = record.WhichOneof("record_type") or "<none>"
        types[kind] += 1
        if kind == "run":
            rr = record.run
            saw_run = True
            # Later run records (e.g. a rename) only carry what changed, so keep non-empty values.
            for attr, value in (
                ("run_id", rr.run_id),
                ("entity", rr.entity),
                ("project", rr.project),
                ("name", rr.display_name),
                ("group", rr.run_group),
                ("job_type", rr.job_type),
                ("notes", rr.notes),
            ):
                if value:
                    setattr(run, attr, value)
            if rr.tags:
                run.tags = list(rr.tags)
            if rr.HasField("start_time"):
                run.start_time = rr.start_time.seconds + rr.start_time.nanos / 1e9
            run.resume_requested = run.resume_requested or rr.resume
            run.resumed = run.resumed or rr.resumed
            run.starting_step = rr.starting_step or run.starting_step
            _apply_updates(config, rr.config.update, rr.config.remove)
            _apply_updates(summary, rr.summary.update, rr.summary.remove)
        elif kind == "config":
            _apply_updates(config, record.config.update, record.config.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply_updates(row, record.history.item)
            run.history.append(row)
        elif kind == "summary":
            _apply_updates(summary, record.summary.update, record.summary.remove)
        elif kind == "files":
            from wandb.proto.wandb_internal_pb2 import FilesItem  # type: ignore[attr-defined]  # star-import shim

            for item in record.files.files:
                if item.path not in run.file_policies:
                    run.files.append(item.path)
                run.file_policies[item.path] = FilesItem.PolicyType.Name(item.policy)
        elif kind == "artifact":
            run.artifacts.append(_artifact_info(record.artifact))
        elif kind == "metric":
            run.metrics.append(_metric_def(record.metric))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    if not saw_run:
        reason = f"; {result.error}" if result.error else ""
        raise ValueError(f"{log_file}: no run record among {len(result.records)} records{reason}")
    run.config, run.wandb_config = _split_internal(config)
    run.summary, run.wandb_summary = _split_internal(summary)
    run.record_count = len(result.records)
    run.record_types = dict(types)
    return run


def wait_for_run(target: Path | str, *, timeout: float = 30.0, interval: float = 0.05) -> WandbRun:
    """``load_run`` once the log is complete: it holds an exit record and no damage.

    Why: ``run.finish()`` returns before ``wandb-core`` has finished writing the ``.wandb`` file. Read
    in-process straight after ``finish()``, about one log in ten (wandb 0.31.0) still ended
    mid-record without its exit record; it was complete ~60 ms later. Reading after the wandb process
    exited, or after ``wandb.teardown()``, was always complete. Raises ``TimeoutError`` (with the
    last problem seen) if the log is not complete within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = load_run(target, strict=False)
        except (FileNotFoundError, ValueError) as exc:  # no log yet, or no run record yet
            problem = str(exc)
        else:
            if run.finished and run.damage is None:
                return run
            problem = run.damage or "no exit record yet"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"wandb log {target} not complete after {timeout}s: {problem}")
        time.sleep(interval)


def find_run_dirs(wandb_dir: Path | str, pattern: str = "offline-run-*") -> list[Path]:
    """``offline-run-*`` directories under ``wandb_dir`` (a ``WANDB_DIR`` or its ``wandb/`` child).

    Names look like ``offline-run-<YYYYmmdd_HHMMSS>-<id>``, with ``-1``, ``-2``... appended when the
    same id starts twice within one second, so do not parse the id from the name; read the log.
    """
    root = Path(wandb_dir)
    found = {p for base in (root, root / "wandb") if base.is_dir() for p in base.glob(pattern)}
    return sorted(p for p in found if p.is_dir() and not p.is_symlink())


def load_runs(wandb_dir: Path | str, *, strict: bool = True) -> dict[str, list[WandbRun]]:
    """All offline runs under ``wandb_dir`` grouped by run id, each group in start order.

    Offline "resume" (same ``id=``, any ``resume=`` value) never continues an earlier directory: it
    writes a new ``offline-run-*`` dir whose log starts again at ``_step`` 0, so one id can map to
    several segments. Use :func:`merge_runs` to see them as one run.
    """
    groups: dict[str, list[WandbRun]] = {}
    for run_dir in find_run_dirs(wandb_dir):
        if not any(run_dir.glob("run-*.wandb")):
            continue
        run = load_run(run_dir, strict=strict)
        groups.setdefault(run.run_id, []).append(run)
    for runs in groups.values():
        runs.sort(key=lambda r: (r.start_time or 0.0, r.run_dir.name))
    return groups


def merge_runs(segments: Sequence[WandbRun]) -> WandbRun:
    """Fold segments of one run id (oldest first) into a single view, like ``wandb sync`` would.

    Identity fields, exit code and ``damage`` come from the newest segment that sets them; config and
    summary are deep-merged with later segments winning; history, artifacts, metrics, records and
    files are concatenated (history ``_step`` values restart per offline segment and are left as-is).
    """
    if not segments:
        raise ValueError("merge_runs needs at least one segment")
    ids = {s.run_id for s in segments}
    if len(ids) != 1:
        raise ValueError(f"segments belong to different runs: {sorted(ids)}")
    last = segments[-1]
    merged = WandbRun(path=last.path, run_dir=last.run_dir, run_id=last.run_id)
    merged.segments = len(segments)
    merged.start_time = segments[0].start_time
    types: Counter[str] = Counter()
    for seg in segments:
        for attr in ("entity", "project", "name", "group", "job_type", "notes"):
            if getattr(seg, attr):
                setattr(merged, attr, getattr(seg, attr))
        if seg.tags:
            merged.tags = list(seg.tags)
        merged.resume_requested = merged.resume_requested or seg.resume_requested
        merged.resumed = merged.resumed or seg.resumed
        _deep_update(merged.config, seg.config)
        _deep_update(merged.wandb_config, seg.wandb_config)
        _deep_update(merged.summary, seg.summary)
        _deep_update(merged.wandb_summary, seg.wandb_summary)
        merged.history.extend(dict(row) for row in seg.history)
        for path in seg.files:
            if path not in merged.file_policies:
                merged.files.append(path)
        merged.file_policies.update(seg.file_policies)
        merged.artifacts.extend(seg.artifacts)
        merged.metrics.extend(seg.metrics)
        if seg.exit_code is not None:
            merged.exit_code = seg.exit_code
        merged.damage = seg.damage or merged.damage
        merged.records.extend(seg.records)
        merged.files_dirs.extend(seg.files_dirs)
        types.update(seg.record_types)
        merged.record_count += seg.record_count
    merged.starting_step = segments[0].starting_step
    merged.record_types = dict(types)
    return merged
