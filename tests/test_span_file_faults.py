"""The span file is the safety net: real faults where it is written, and a kill -9 of the eval.

Each fault runs a real ``inspect eval`` in a subprocess: a span directory on a read-only file
system, a file where the directory should be, a full file system (a 64 KiB tmpfs) and a file
size limit (RLIMIT_FSIZE, SIGXFSZ ignored, as a batch scheduler sets it). The eval's exit code
and its log (Inspect's own, read back with ``read_eval_log``) are untouched, the bridge says
exactly one line with the reason and the path, and what was written is whole lines only. The
mounts need root (these tests run as root in CI); elsewhere they skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from inspect_ai.log import EvalLog, list_eval_logs, read_eval_log

from otel_bridge import conventions as c
from otel_bridge.records import FileReadReport, read_span_file
from tests.support.bridge import INSPECT, ROOT, subprocess_env
from tests.support.spantree import SpanTree, expected_shape

SAMPLES = 6
PREFIX = "inspect-otel-bridge:"


def _eval(
    tmp_path: Path, span_dir: Path, preexec: Callable[[], None] | None = None, extra: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], EvalLog]:
    env = subprocess_env(
        {"INSPECT_OTEL_ENABLED": "1", "INSPECT_OTEL_EXPORTERS": "file", "INSPECT_OTEL_DIR": str(span_dir)}
    )
    args = [INSPECT, "eval", "examples/bridge_demo.py@arithmetic", "--model", "offline/careful"]
    args += ["-T", f"samples={SAMPLES}", "--log-dir", str(tmp_path / "logs"), "--display", "none", *extra]
    proc = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=preexec
    )
    (info,) = list_eval_logs(str(tmp_path / "logs"))
    return proc, read_eval_log(info)


def _assert_eval_untouched(proc: subprocess.CompletedProcess[str], log: EvalLog) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert log.status == "success" and log.results is not None
    assert log.results.completed_samples == SAMPLES and len(log.samples or []) == SAMPLES
    assert all(s.scores and s.error is None for s in log.samples or [])
    assert "Traceback" not in proc.stderr


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith(PREFIX)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def _whole_lines_only(span_dir: Path) -> int:
    """The spans in the files written before the fault; a half-written line would be reported."""
    count = 0
    for path in span_dir.glob("*.jsonl"):
        report = FileReadReport(path)
        count += sum(1 for _ in read_span_file(path, report))
        assert not report.bad_lines and not report.truncated_tail, (path, report)
    return count


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True)
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
    mounted = subprocess.run(command, capture_output=True)
    if mounted.returncode != 0:
        why = f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})"
        if os.geteuid() == 0:  # as root (CI) the fault must be made, not skipped
            pytest.fail(why)
        pytest.skip(f"{why}; needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_span_dir_is_said_once_and_the_eval_is_untouched(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as span_dir:
        proc, log = _eval(tmp_path, span_dir)
    _assert_eval_untouched(proc, log)
    line = _one_line(proc.stderr)
    assert "could not write the span file" in line and str(span_dir) in line
    assert "Read-only file system" in line


def test_a_file_where_the_span_dir_should_be(tmp_path: Path) -> None:
    blocker = tmp_path / "spans"
    blocker.write_text("not a directory\n")
    proc, log = _eval(tmp_path, blocker)
    _assert_eval_untouched(proc, log)
    line = _one_line(proc.stderr)
    assert "could not write the span file" in line and str(blocker) in line
    assert "FileExistsError" in line or "NotADirectoryError" in line
    assert blocker.read_text() == "not a directory\n"


def test_full_disk_is_said_once_and_leaves_whole_lines(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "full", "size=64k") as span_dir:
        proc, log = _eval(tmp_path, span_dir)
        kept = _whole_lines_only(span_dir)
        (span_file,) = span_dir.glob("*.jsonl")
    _assert_eval_untouched(proc, log)
    line = _one_line(proc.stderr)
    assert f"could not write the span file {span_file}" in line
    assert "No space left on device" in line
    assert kept > 0, "the spans written before the disk filled up are there"


FSIZE_LIMIT = 96 * 1024  # above the .eval log of this eval (~30 KB), below its span file (~180 KB)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def test_file_size_limit_is_said_once_and_leaves_whole_lines(tmp_path: Path) -> None:
    span_dir = tmp_path / "spans"
    # the limit holds for every file of the process: Inspect's own live-view database (shared,
    # already larger) would fail Inspect itself, so this eval runs without it
    proc, log = _eval(tmp_path, span_dir, preexec=_limit_file_size, extra=("--no-log-realtime",))
    _assert_eval_untouched(proc, log)
    (span_file,) = span_dir.glob("*.jsonl")
    line = _one_line(proc.stderr)
    assert f"could not write the span file {span_file}" in line and "File too large" in line
    assert 0 < span_file.stat().st_size <= FSIZE_LIMIT
    assert _whole_lines_only(span_dir) > 0


# ----------------------------------------------------------------- kill -9 of a running eval
KILL_WINDOW_S = 1.0  # every sample that finished this long before the kill must be in the file


def _utc_ns(value: str | datetime | None) -> int:
    assert value is not None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return int(moment.timestamp() * 1e9)


def _readable_copy(log_dir: Path, into: Path) -> EvalLog | None:
    """A copy of Inspect's log as it is now, if it reads (a write may be under way)."""
    logs = list(log_dir.glob("*.eval"))
    if not logs:
        return None
    shutil.copy(logs[0], into)
    try:
        return read_eval_log(str(into))
    except Exception:
        return None


def test_kill_9_of_a_running_eval_keeps_every_span_that_ended_before(tmp_path: Path) -> None:
    """SIGKILL mid-run: each sample Inspect logged as finished > 1 s before the kill is in the span
    file, its whole trace (Inspect writes every finished sample to its log: --log-buffer 1)."""
    span_dir, log_dir = tmp_path / "spans", tmp_path / "logs"
    env = subprocess_env(
        {"INSPECT_OTEL_ENABLED": "1", "INSPECT_OTEL_EXPORTERS": "file", "INSPECT_OTEL_DIR": str(span_dir)}
    )
    args = [INSPECT, "eval", "examples/bridge_demo.py@arithmetic", "--model", "offline/careful"]
    args += ["-M", "latency=0.15", "-T", "samples=60", "--max-samples", "3", "--log-buffer", "1"]
    args += ["--log-dir", str(log_dir), "--display", "none"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    snapshot, oracle = tmp_path / "snapshot.eval", None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            copy = _readable_copy(log_dir, snapshot)
            if copy is not None and len(copy.samples or []) >= 8:
                oracle = copy
                break
            time.sleep(0.1)
        assert oracle is not None and proc.poll() is None, "the eval should be mid-run with 8 samples logged"
        time.sleep(1.5)  # samples keep finishing; the kill lands in the middle of the run
        killed_ns = time.time_ns()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    later = _readable_copy(log_dir, tmp_path / "after.eval")  # the log at the kill, if it reads
    if later is not None and len(later.samples or []) >= len(oracle.samples or []):
        oracle = later
    assert oracle.status == "started", "the kill came before the end of the eval"
    tree = SpanTree([s for path in span_dir.glob("*.jsonl") for s in read_span_file(path)])
    in_file = {(r.attr(c.SAMPLE_ID), r.attr(c.SAMPLE_EPOCH)): r for r in tree.named(c.SPAN_SAMPLE)}
    gaps: list[tuple[float, bool]] = []
    for sample in oracle.samples or []:
        before_kill_s = (killed_ns - _utc_ns(sample.completed_at)) / 1e9
        root = in_file.get((str(sample.id), sample.epoch))
        gaps.append((before_kill_s, root is not None))
        if before_kill_s > KILL_WINDOW_S:
            assert root is not None, f"sample {sample.id} finished {before_kill_s:.2f}s before the kill"
            assert tree.shape(root) == expected_shape(sample), "its whole trace"
    missing = [g for g, found in gaps if not found]
    kept = [g for g, found in gaps if found]
    latest_missing = f"{max(missing):.2f}s" if missing else "none"
    print(
        f"kill -9: {len(gaps)} samples logged, {len(kept)} in the span file; the latest missing "
        f"finished {latest_missing} before the kill, the latest kept {min(kept, default=0):.2f}s before it"
    )
    assert len(gaps) >= 8 and kept
    assert all(g <= KILL_WINDOW_S for g in missing)


@pytest.fixture(autouse=True)
def _no_leftover_mounts(tmp_path: Path) -> Iterator[None]:
    yield
    for sub in ("ro", "full"):
        if os.path.ismount(tmp_path / sub):
            subprocess.run(["umount", "-l", str(tmp_path / sub)], check=False)
