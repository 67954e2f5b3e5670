"""Redacted copies of Inspect's logs, made once by the eval's process, which knows every secret.

The W&B log artifact is a redacted copy of Inspect's ``.eval`` log. Only the eval's process knows
every secret its environment held while it ran (a solver may export one mid-eval); a later
``otel-bridge sync`` or a receiver knows its own environment only, so a copy it redacts could
hold such a secret. So, with content capture on (and the log artifact not switched off), the
eval's process redacts each finished task's local log once, in a thread (``LogCopier``), into
``<span dir>/redacted-logs/<log file name>`` and names the copy on the task span
(``inspect.log.redacted_copy``). It is written under a temporary name and renamed, so a copy that
exists is whole, and the end of a run waits for its copies (bounded by the flush timeout) before
the run span ends, so whoever finishes the W&B run finds them. Not in the user's log directory:
Inspect would list the copy as one of its logs. The W&B sink, wherever it runs, uploads that
copy when ``usable_copy`` accepts it, and otherwise redacts the log itself and says so in one
line (``fallback_note``).
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


class LogCopier:
    """The eval's process's copies: one thread per finished task's log, waited for at run end.

    ``redactor`` builds the copy's redactor in the thread (not the hook's own, which the eval's
    loop uses meanwhile); ``known`` is every secret value the hook's redactor has seen, so a
    secret that has left the environment since is redacted too.
    """

    def __init__(self, span_dir: Path, redactor: Callable[[Mapping[str, str]], Redactor]) -> None:
        self.span_dir = span_dir
        self._redactor = redactor
        self.known: dict[str, str] = {}
        self._pending: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, location: str) -> Path | None:
        """Begin the copy of a finished task's log; where it will be (None: no copy for it)."""
        target = copy_target(self.span_dir, location)
        local = local_path(location)
        if target is None or local is None or not Path(local).is_file():
            return None
        thread = threading.Thread(
            target=self._copy, args=(local, target, dict(self.known)), name="log-copy", daemon=True
        )
        with self._lock:
            self._pending = [t for t in self._pending if t.is_alive()]
            self._pending.append(thread)
        thread.start()
        return target

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

    def wait(self, timeout_s: float) -> None:
        """Until every copy begun so far is written, at most ``timeout_s`` (then one line)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            pending, self._pending = self._pending, []
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [t for t in pending if t.is_alive()]
        if late:
            with self._lock:
                self._pending.extend(late)
            notify.say(
                f"{len(late)} redacted log copy(ies) still being written after {timeout_s:g} s; the "
                f"run's W&B upload may redact the log itself instead.",
                key="log-copy-slow",
            )
