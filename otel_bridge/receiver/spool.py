"""The receiver's write-ahead spool: accepted requests survive a crash before they reach the sinks.

Layout of a spool directory (one receiver process owns it, enforced with a lock file):

- ``spool-<seq>.jsonl``: segments of lines, one ``ExportTraceServiceRequest`` per line: the request's
  protobuf bytes behind a record separator with newlines escaped (``encode_entry``: no per-span
  work on the accept path; strings stay verbatim), or an OTLP/JSON line (spools of older
  versions, still replayed). A line is fsynced before the client gets its 200; concurrent
  appends share one fsync (group commit), and the reader sees only fsynced lines.
- ``offset.json``: ``{"segment": n, "offset": bytes}``, how far the sinks have consumed *and flushed*.
  Written atomically; everything after it is replayed on start.
- ``seen.keys``: 24-byte (trace_id + span_id) records of spooled spans, the receiver's dedup window
  across restarts (not fsynced: losing its tail only lets a retried span through to idempotent sinks).
- ``dead-letter.jsonl``: entries the sinks kept failing on, in span-file format for a later ``sync``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SEGMENT_PREFIX = "spool-"
SEGMENT_SUFFIX = ".jsonl"
KEY_BYTES = 24  # 16-byte trace id + 8-byte span id
ENTRY_MARK = b"\x1e"  # starts a protobuf entry; an OTLP/JSON line starts with "{"


def encode_entry(protobuf: bytes) -> bytes:
    """A serialized request as one spool line: NUL → NUL 1, LF → NUL 2, CR → NUL 3 (C-speed passes).

    CR is escaped too so that any line splitter (``bytes.splitlines`` included) sees one line.
    """
    escaped = protobuf.replace(b"\0", b"\0\1").replace(b"\n", b"\0\2").replace(b"\r", b"\0\3")
    return ENTRY_MARK + escaped


def decode_entry(line: bytes) -> bytes | None:
    """The protobuf bytes of an ``encode_entry`` line; None for an OTLP/JSON line.

    Every NUL of an encoded line starts a two-byte token, so replacing the LF and CR tokens first
    cannot match across tokens, and what remains are exactly the NUL tokens.
    """
    if not line.startswith(ENTRY_MARK):
        return None
    return line[1:].replace(b"\0\3", b"\r").replace(b"\0\2", b"\n").replace(b"\0\1", b"\0")


class SpoolInUse(RuntimeError):
    """Another live receiver owns this spool directory."""


class SpoolFull(RuntimeError):
    """Too many bytes are waiting for the sinks; the client should retry later."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class Entry:
    """One spooled line and the position just after it."""

    line: bytes
    end: Position


def _segment_name(seq: int) -> str:
    return f"{SEGMENT_PREFIX}{seq:012d}{SEGMENT_SUFFIX}"


def _fsync_path(path: Path) -> None:
    """fsync a file or directory by path (read-only descriptor; Linux syncs it all the same)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Spool:
    """Append-only segments plus a committed read offset; thread-safe."""

    def __init__(
        self,
        directory: Path,
        max_pending_bytes: int,
        dedup_keys: int,
        segment_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self.max_pending_bytes = max_pending_bytes
        self.segment_bytes = segment_bytes
        self.dedup_keys = max(0, dedup_keys)
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fh = self._take_lock()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.torn_tail_bytes = 0
        self.committed = self._read_offset()
        self._sizes: dict[int, int] = {}
        for seq in self._segments():
            if seq < self.committed.segment:
                (directory / _segment_name(seq)).unlink(missing_ok=True)
            else:
                self._sizes[seq] = (directory / _segment_name(seq)).stat().st_size
        if not self._sizes:
            self._sizes[self.committed.segment] = 0
        self._current = max(self._sizes)
        if self.committed.offset > self._sizes[self.committed.segment]:  # a segment was truncated by hand
            self.committed = Position(self.committed.segment, self._sizes[self.committed.segment])
        self._repair_tail()
        # a killed process may have written lines (and their seen.keys) without fsyncing them yet:
        # fsync them now, before a retry of those spans is answered from the dedup window
        for seq in self._sizes:
            _fsync_path(directory / _segment_name(seq))
        self._writer: IO[bytes] = open(self.directory / _segment_name(self._current), "ab")  # noqa: SIM115
        self._retired: list[IO[bytes]] = []  # rotated-out writers the next group commit fsyncs, closes
        self._sync_lock = threading.Lock()  # one fsync at a time; taken before ``_lock``, never inside
        self._written = 0  # bytes appended by this process (all segments)
        self._synced = 0  # of those, fsynced
        self._durable = Position(self._current, self._sizes[self._current])  # the reader's limit
        self.cursor = self.committed
        self._seen: set[bytes] = set()
        self._seen_order: deque[bytes] = deque()
        self._keys_path = directory / "seen.keys"
        self._load_keys()
        self._keys_fh: IO[bytes] = open(self._keys_path, "ab")  # noqa: SIM115
        self._keys_written = self._keys_path.stat().st_size // KEY_BYTES

    # -- ownership -------------------------------------------------------------------------------
    def _take_lock(self) -> IO[str]:
        path = self.directory / "lock"
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.seek(0)
            owner = fh.read().strip() or "?"
            fh.close()
            raise SpoolInUse(
                f"spool directory {self.directory} is in use by another receiver (pid {owner}); "
                "give each receiver its own --spool-dir"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def close(self) -> None:
        with self._sync_lock, self._lock:
            for fh in self._retired:
                fh.close()
            self._retired = []
            self._writer.close()
            self._keys_fh.close()
            self._lock_fh.close()

    # -- startup ---------------------------------------------------------------------------------
    def _segments(self) -> list[int]:
        out = []
        for p in self.directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            digits = p.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
            if digits.isdigit():
                out.append(int(digits))
        return sorted(out)

    def _read_offset(self) -> Position:
        try:
            doc = json.loads((self.directory / "offset.json").read_text(encoding="utf-8"))
            return Position(int(doc["segment"]), int(doc["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return Position(0, 0)

    def _repair_tail(self) -> None:
        """A line cut by a crash was never acknowledged: drop it so the next append starts clean."""
        path = self.directory / _segment_name(self._current)
        size = self._sizes[self._current]
        if size == 0:
            return
        with open(path, "rb+") as fh:
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return
            data_start = max(0, size - 64 * 1024 * 1024)
            fh.seek(data_start)
            data = fh.read()
            cut = data.rfind(b"\n")
            new_size = data_start + cut + 1 if cut >= 0 else data_start
            fh.truncate(new_size)
            os.fsync(fh.fileno())
        self.torn_tail_bytes = size - new_size
        self._sizes[self._current] = new_size

    def _load_keys(self) -> None:
        if self.dedup_keys == 0 or not self._keys_path.exists():
            return
        size = self._keys_path.stat().st_size
        keep = min(size // KEY_BYTES, self.dedup_keys)
        with open(self._keys_path, "rb") as fh:
            fh.seek((size // KEY_BYTES - keep) * KEY_BYTES)
            data = fh.read(keep * KEY_BYTES)
        self._remember(data[i : i + KEY_BYTES] for i in range(0, len(data), KEY_BYTES))
        if size // KEY_BYTES > 2 * self.dedup_keys:
            self._compact_keys()

    def _compact_keys(self) -> None:
        tmp = self._keys_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(self._seen_order))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._keys_path)

    # -- dedup window ----------------------------------------------------------------------------
    def _remember(self, keys: Iterable[bytes]) -> None:
        if self.dedup_keys == 0:
            return
        for key in keys:
            if key in self._seen:
                continue
            self._seen.add(key)
            self._seen_order.append(key)
            if len(self._seen_order) > self.dedup_keys:
                self._seen.discard(self._seen_order.popleft())

    def remember_pending(self, keys: Iterable[bytes]) -> None:
        """Keys of replayed entries: their retries must not be spooled again."""
        with self._lock:
            self._remember(keys)

    def seen(self, key: bytes) -> bool:
        return key in self._seen

    # -- writing ---------------------------------------------------------------------------------
    def pending_bytes(self) -> int:
        with self._lock:
            return self._pending_locked()

    def _pending_locked(self) -> int:
        total = 0
        for seq, size in self._sizes.items():
            if seq == self.committed.segment:
                total += size - self.committed.offset
            elif seq > self.committed.segment:
                total += size
        return total

    def append(self, line: bytes, keys: list[bytes]) -> list[bytes] | None:
        """Durably append ``line`` (fsynced on return) unless some of its span keys were spooled meanwhile.

        The check runs under the lock because a concurrent retry of the same request may have won;
        then nothing is written and the keys still new are returned for the caller to re-filter —
        after the winner's line is fsynced too, so no 200 for those spans precedes their fsync.
        Appends racing each other share one fsync (group commit).
        """
        with self._lock:
            fresh = [k for k in keys if k not in self._seen]
            if len(fresh) != len(keys):
                mark = self._written
            else:
                self._write_locked(line, keys)
                mark = self._written
        self.sync(mark)
        return fresh if len(fresh) != len(keys) else None

    def _write_locked(self, line: bytes, keys: list[bytes]) -> None:
        if self._pending_locked() + len(line) + 1 > self.max_pending_bytes:
            raise SpoolFull(
                f"{self._pending_locked()} bytes are waiting for the sinks "
                f"(limit {self.max_pending_bytes}); retry later"
            )
        if self._sizes[self._current] >= self.segment_bytes:
            self._rotate_locked()
        self._writer.write(line + b"\n")
        self._writer.flush()  # in the OS now: whichever append fsyncs next covers it
        self._sizes[self._current] += len(line) + 1
        self._written += len(line) + 1
        self._remember(keys)
        if self.dedup_keys:
            self._keys_fh.write(b"".join(keys))
            self._keys_fh.flush()
            self._keys_written += len(keys)
            if self._keys_written > 2 * self.dedup_keys:
                self._keys_fh.close()
                self._compact_keys()
                self._keys_fh = open(self._keys_path, "ab")  # noqa: SIM115
                self._keys_written = len(self._seen_order)

    def sync(self, mark: int) -> None:
        """Return once the first ``mark`` bytes this process appended are fsynced (group commit).

        One caller fsyncs everything written so far while later callers wait on ``_sync_lock``;
        they then usually find their bytes already covered and return without an fsync of their own.
        """
        with self._sync_lock:
            if self._synced >= mark:
                return
            with self._lock:
                target, durable = self._written, Position(self._current, self._sizes[self._current])
                writer, retired, self._retired = self._writer, self._retired, []
            for fh in retired:  # segments rotated out since the last fsync
                os.fsync(fh.fileno())
                fh.close()
            os.fsync(writer.fileno())
            with self._lock:
                self._synced = target
                self._durable = max(self._durable, durable)
                self._changed.notify_all()

    def sync_all(self) -> None:
        """Everything appended so far is fsynced (before a 200 for spans another request spooled)."""
        self.sync(self._written)

    def _rotate_locked(self) -> None:
        self._retired.append(self._writer)  # fsynced and closed by the next ``sync``
        self._current += 1
        self._sizes[self._current] = 0
        self._writer = open(self.directory / _segment_name(self._current), "ab")  # noqa: SIM115
        _fsync_path(self.directory)

    # -- reading ---------------------------------------------------------------------------------
    def wait(self, timeout: float) -> None:
        """Block until something is appended (or ``timeout``)."""
        with self._lock:
            if not self._has_unread_locked():
                self._changed.wait(timeout)

    def wake(self) -> None:
        with self._lock:
            self._changed.notify_all()

    def _has_unread_locked(self) -> bool:
        return self.cursor < self._durable

    def _limit_locked(self, seg: int) -> int:
        """How far the reader may read in segment ``seg``: fsynced bytes only."""
        if seg < self._durable.segment:
            return self._sizes.get(seg, 0)
        return self._durable.offset if seg == self._durable.segment else 0

    def read(self, max_entries: int, max_bytes: int) -> list[Entry]:
        """Entries after the read cursor (which advances); complete lines only."""
        out: list[Entry] = []
        budget = max_bytes
        while len(out) < max_entries and budget > 0:
            with self._lock:
                seg, off = self.cursor.segment, self.cursor.offset
                limit = self._limit_locked(seg)
                if off >= limit:
                    if seg < self._durable.segment:
                        self.cursor = Position(seg + 1, 0)
                        continue
                    break
            with open(self.directory / _segment_name(seg), "rb") as fh:
                fh.seek(off)
                data = fh.read(min(limit - off, max(budget, 1 << 20)))
            pos = 0
            while pos < len(data) and len(out) < max_entries and budget > 0:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    if pos == 0:  # a line longer than the chunk: read it whole
                        with open(self.directory / _segment_name(seg), "rb") as fh:
                            fh.seek(off)
                            whole = fh.readline()
                        if whole.endswith(b"\n"):
                            out.append(Entry(whole[:-1], Position(seg, off + len(whole))))
                            pos = len(whole)
                            budget -= len(whole)
                    break
                line = data[pos:nl]
                pos = nl + 1
                budget -= len(line) + 1
                if line.strip():
                    out.append(Entry(line, Position(seg, off + pos)))
            with self._lock:
                self.cursor = Position(seg, off + pos)
            if pos == 0:
                break
        return out

    def rewind(self, position: Position) -> None:
        """Read again from ``position`` (entries read but not delivered are not skipped)."""
        with self._lock:
            if position < self.cursor:
                self.cursor = max(position, self.committed)

    def iter_unread(self) -> Iterator[Entry]:
        """Stream everything after the committed offset without moving the read cursor (startup only)."""
        saved = self.cursor
        try:
            while True:
                batch = self.read(256, 64 * 1024 * 1024)
                if not batch:
                    return
                yield from batch
        finally:
            with self._lock:
                self.cursor = saved

    def unread_entries(self) -> list[Entry]:
        return list(self.iter_unread())

    def commit(self, position: Position) -> None:
        """Record that everything before ``position`` reached the sinks; drop finished segments."""
        with self._lock:
            if position <= self.committed:
                return
            tmp = self.directory / "offset.json.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"segment": position.segment, "offset": position.offset}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / "offset.json")
            _fsync_path(self.directory)
            self.committed = position
            for seq in [s for s in self._sizes if s < position.segment]:
                del self._sizes[seq]
                (self.directory / _segment_name(seq)).unlink(missing_ok=True)

    def dead_letter(self, line: bytes) -> Path:
        path = self.directory / "dead-letter.jsonl"
        with open(path, "ab") as fh:
            fh.write(line + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return path
