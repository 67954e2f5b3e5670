"""Redacted copies of Inspect's logs, made once where every secret of the eval's is known.

The W&B log artifact is a redacted copy of Inspect's ``.eval`` log. Only the eval's process knows
every secret its environment held while it ran (a solver may export one mid-eval); a later
``otel-bridge sync`` or a receiver knows its own environment only, so a copy it redacts could
hold such a secret. So, with content capture on (and the log artifact not switched off), each
finished task's local log is redacted once into ``<span dir>/redacted-logs/<log file name>``,
named on the task span (``inspect.log.redacted_copy``). The copy is made off the eval's process
whenever it has a worker: the hook sends a ``logcopy`` frame to one (the W&B worker first), which
the eval has told every late secret (``secrets`` frames, in order before it), and the worker
copies in a thread (``LogCopier.copy``); the W&B sink there waits for it (``wait_for``) before
uploading. Only with no worker (``INSPECT_OTEL_EXPORTERS=file``) the thread runs in the eval's
process. It is written under a temporary name and renamed, so a copy that exists is whole. Not in
the user's log directory: Inspect would list the copy as one of its logs. The W&B sink, wherever
it runs, uploads that copy when ``usable_copy`` accepts it, and otherwise redacts the log itself
and says so in one line (``fallback_note``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from otel_bridge import notify
from otel_bridge.redact import Redactor, redacted_eval_log

#: The span directory's folder of redacted log copies (a span file reader never looks inside).
COPY_DIR = "redacted-logs"


def local_path(location: str) -> str | None:
    """The local path of a log location; None for a URL (``s3://…``: W&B only records it)."""
    local = location[len("file://") :] if location.startswith("file://") else location
    return None if "://" in local else local


def copy_target(span_dir: Path, location: str) -> Path | None:
    """Where the eval's redacted copy of the log at ``location`` goes (None: a remote log)."""
    local = local_path(location)
    return None if local is None else (span_dir / COPY_DIR / Path(local).name).absolute()


def write_copy(source: str, target: Path, redactor: Redactor) -> None:
    """Redact ``source`` into ``target``: a scratch folder beside it, then one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        os.replace(redacted_eval_log(source, scratch, redactor), target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def usable_copy(location: str, copy: str | None) -> tuple[Path | None, str]:
    """The eval's copy of the log at ``location`` if this process can upload it, else why not.

    Only a file the bridge could have written is taken (in a ``redacted-logs`` folder, with the
    log's own file name, readable by Inspect), since the name arrives in spans.
    """
    if not copy:
        return None, "the spans name no redacted copy from the eval (an older bridge, or a remote log)"
    path, local = Path(copy), local_path(location)
    if path.parent.name != COPY_DIR or local is None or path.name != Path(local).name:
        return None, f"{copy} is not a redacted copy the bridge writes (ignored)"
    if not path.is_file():
        return None, f"{copy} is missing: another machine, or it could not be written"
    try:
        from inspect_ai.log import read_eval_log

        read_eval_log(str(path), header_only=True)
    except Exception as exc:
        return None, f"the eval's redacted copy {copy} cannot be read ({type(exc).__name__})"
    return path, ""


def fallback_note(locations: list[str], why: str) -> str:
    """The one line of a process uploading logs it redacted itself (``why``: the first reason)."""
    names = ", ".join(Path(local_path(loc) or loc).name for loc in locations[:3])
    more = f" and {len(locations) - 3} more" if len(locations) > 3 else ""
    return (
        f"Inspect log(s) {names}{more} uploaded to W&B redacted with the secrets this process "
        f"knows, not the eval's own redacted copy ({why}); a secret only the eval's environment "
        f"held may be in them (docs/conventions.md, Secrets)"
    )


# this process's copies still being written, by target path: the W&B sink waits for the one it uploads
_running: dict[str, threading.Thread] = {}


def wait_for(copy: str | None) -> None:
    """Until this process's own copy into ``copy`` (if one is being written here) is done.

    No bound of its own: the rest of the copy costs less than redacting the log again, and the
    worker it runs in is stopped at the eval's exit deadline.
    """
    thread = _running.get(copy) if copy else None
    if thread is not None:
        thread.join()


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


class LogCopier:
    """A process's copies: one thread per finished task's log, waited for before exit.

    In the eval's process with a worker (``send``: the worker's ``copy_log``), the copy is only
    named and sent to the worker, which copies it (``copy``) off the eval's GIL. Without one
    (``INSPECT_OTEL_EXPORTERS=file``), or once it has stopped, the thread runs here.
    ``redactor`` builds the copy's redactor in the thread (not the hook's own, which the eval's
    loop uses meanwhile); ``known`` is every secret value the hook's redactor has seen, so a secret
    that has left the environment since is redacted too (a worker knows them from the secrets
    frames).
    """

    def __init__(
        self,
        span_dir: Path,
        redactor: Callable[[Mapping[str, str]], Redactor],
        send: Callable[[str, Path], bool] | None = None,
    ) -> None:
        self.span_dir = span_dir
        self._redactor = redactor
        self._send = send
        self.known: dict[str, str] = {}
        self.sent: list[Path] = []  # copies a worker was asked to write
        self._pending: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, location: str) -> Path | None:
        """Begin the copy of a finished task's log; where it will be (None: no copy for it)."""
        target = copy_target(self.span_dir, location)
        local = local_path(location)
        if target is None or local is None or not Path(local).is_file() or not _writable(self.span_dir):
            return None  # an unusable span directory: the span file's one line says so
        if self._send is not None and self._send(local, target):
            self.sent.append(target)
        else:  # no worker, or it has stopped: this process copies it
            self.copy(local, target)
        return target

    def copy(self, source: str, target: Path) -> None:
        """Redact ``source`` into ``target`` in a thread of this process."""
        thread = threading.Thread(
            target=self._copy, args=(source, target, dict(self.known)), name="log-copy", daemon=True
        )
        with self._lock:
            self._pending = [t for t in self._pending if t.is_alive()]
            self._pending.append(thread)
        _running[str(target)] = thread
        thread.start()

    def _copy(self, source: str, target: Path, known: dict[str, str]) -> None:
        try:
            write_copy(source, target, self._redactor(known))
        except Exception as exc:  # disk full, a read-only span directory: the eval is unaffected
            notify.say(
                f"the redacted copy of Inspect's log {Path(source).name} could not be written "
                f"({type(exc).__name__}: {exc}); the eval is unaffected, and a later `otel-bridge "
                f"sync` or receiver redacts the log with the secrets it knows.",
                key=f"log-copy:{target.parent}",
            )
        finally:
            _running.pop(str(target), None)

    def wait(self, timeout_s: float | None) -> None:
        """Until every copy begun here is written, at most ``timeout_s`` (then one line)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            pending, self._pending = self._pending, []
        for thread in pending:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        late = [t for t in pending if t.is_alive()]
        if late:
            notify.say(
                f"{len(late)} redacted log copy(ies) still being written at the exit deadline "
                f"({timeout_s:g} s); a later `otel-bridge sync` redacts the log itself instead.",
                key="log-copy-slow",
            )

    def unwritten(self, why: str) -> None:
        """The copies sent to a worker that stopped before writing them (``why``): one line."""
        missing = [p.name for p in self.sent if not p.exists()]
        if missing:
            notify.say(
                f"the redacted copy of Inspect's log(s) {', '.join(missing)} was not written ({why}); "
                f"a later `otel-bridge sync` or receiver redacts the log with the secrets it knows.",
                key="log-copy-unwritten",
            )
