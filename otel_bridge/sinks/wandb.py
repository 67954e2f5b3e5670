"""W&B Models sink: applies ``otel_bridge.translate.wandb`` writes with the public wandb API.

wandb is imported on the first run only, so choosing other exporters costs nothing. Every run
is its own ``Run`` object (``reinit="create_new"``): the global ``wandb.run`` is never used, so
the user's own wandb runs and several evals in one process stay apart. With no API key, or
``WANDB_MODE=offline``, or when W&B cannot be reached, runs are written offline and the user is
told how to upload them; wandb is never allowed to prompt. Nothing here raises into the caller:
failures become one line from ``problem()``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otel_bridge import _upstream as upstream
from otel_bridge import logcopies, notify
from otel_bridge.config import Settings, environment
from otel_bridge.records import SpanRecord
from otel_bridge.redact import Redactor, redacted_eval_log
from otel_bridge.sinks.base import DeliveryError, RecordSink
from otel_bridge.translate.wandb import (
    EXIT_INCOMPLETE,
    DefineMetric,
    FinishRun,
    LogFiles,
    LogRow,
    LogTable,
    Options,
    SetName,
    SetTags,
    StartRun,
    UpdateConfig,
    UpdateSummary,
    WandbTranslator,
    Write,
)
from otel_bridge.wandb_env import choose_mode, run_project

__all__ = ["INIT_TIMEOUT_S", "WandbSink", "reachable", "wandb_options"]

#: Upper bound on ``wandb.init`` when W&B is slow or unreachable (then the run goes offline).
INIT_TIMEOUT_S = 60.0  # wandb-core start-up on a loaded 2-core machine; runs off the eval loop
#: Upper bound on uploading at ``finish``; what is not uploaded stays on disk for ``wandb sync``.
FINISH_TIMEOUT_S = 15.0
#: How long to wait for the W&B server to answer before writing runs offline.
PROBE_TIMEOUT_S = 3.0


def reachable(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the W&B server answers at all (any HTTP status counts).

    Checked once before the first online run: a failed online ``wandb.init`` leaves its run id
    "in use" in the wandb service, so falling back to offline afterwards would fail too.
    """
    try:
        with urllib.request.urlopen(base_url, timeout=timeout_s):  # noqa: S310 (the user's W&B server)
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wandb_options(settings: Settings) -> Options:
    """The translation's options: ``otel_bridge.translate`` reads neither settings nor environment."""
    weave_project = settings.weave.project if "weave" in settings.core.exporters else None
    w = settings.wandb
    return Options(
        weave_project=weave_project,
        run_name=w.run_name,
        tags=w.tags,
        table_max_rows=w.table_max_rows,
        log_artifact=w.log_artifact,
        files=w.files,
        capture_content=settings.content.capture,
        # the run summary's link to the Weave evaluations: on the W&B server the sink talks to
        wandb_base_url=w.base_url if weave_project else None,
    )


class WandbSink(RecordSink):
    """A ``RecordSink`` writing one W&B run per Inspect run or eval set."""

    name = "wandb"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.translator = WandbTranslator(wandb_options(settings))
        self.project, self.entity = run_project(settings)
        self._runs: dict[str, Any] = {}
        # runs that could not start: their writes, kept in order for the next attempt
        self._held: dict[str, list[Write]] = {}
        self._retry_at = 0.0
        self._retry_delay = 1.0
        self._offline_dirs: dict[str, str] = {}
        self._problems: list[str] = []
        self._lock = threading.Lock()
        self._wandb: Any = None
        self._exit_hook = False
        self._reachable: bool | None = None
        #: Paths of the run directories written offline (``wandb sync`` uploads them).
        self.offline_dirs: list[str] = []

    # ---------------------------------------------------------------- RecordSink
    def consume(self, records: Sequence[SpanRecord]) -> None:
        with self._lock:
            self._retry_held()
            self._apply(self.translator.translate(records))
            self._raise_if_held()

    def flush(self, timeout_s: float) -> bool:
        """True when every run that is due has started and taken its writes (none is held), and
        no ended run still waits for spans in flight (it finishes when they arrive, or at close)."""
        with self._lock:
            self._retry_held()
            return not self._held and not self.translator.waiting

    def finalize_incomplete(self, reason: str) -> None:
        with self._lock:
            self._retry_held()
            self._apply(self.translator.finalize_incomplete(reason))

    def close(self) -> None:
        """Finish what ended; a run still open is finished as failed so wandb's exit hook
        cannot mark it successful (a later sync resumes it)."""
        with self._lock:
            self._apply(self.translator.finish_pending())
            for key, run in list(self._runs.items()):
                self._call(key, "finish", lambda run=run: run.finish(exit_code=EXIT_INCOMPLETE))
                self._after_finish(key, run)
            self._runs.clear()

    def problem(self) -> str | None:
        # spans of a run already finished are replays (sync twice, a receiver's replay): the run
        # waits for every sample its task spans count, so they add nothing and are no problem
        problems = [*self._problems, *self.translator.problems]
        if not problems:
            return None
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return "; ".join(problems[:3]) + more

    def _before_wandb_exit(self) -> None:
        """At interpreter exit: let in-flight spans finish their runs (bounded), then fail the rest."""
        deadline = time.monotonic() + max(self.settings.core.flush_timeout_s, 10.0)
        while time.monotonic() < deadline:
            with self._lock:
                if not self.translator.open_runs:
                    return
            time.sleep(0.05)
        self.finalize_incomplete("the process exited before the run ended")
        self.close()

    # ---------------------------------------------------------------- applying writes
    def _apply(self, writes: list[Write]) -> None:
        for write in writes:
            held = self._held.get(write.run)
            if held is not None:
                held.append(write)
                continue
            if isinstance(write, StartRun):
                if not self._start(write):
                    self._held[write.run] = [write]
                continue
            run = self._runs.get(write.run)
            if run is None:
                continue
            self._call(write.run, type(write).__name__, lambda w=write, r=run: self._write(r, w))
            if isinstance(write, FinishRun):
                self._runs.pop(write.run, None)
                self._after_finish(write.run, run)

    def _retry_held(self) -> None:
        """Start again the runs that could not start (bounded backoff), then give them their writes."""
        if not self._held or time.monotonic() < self._retry_at:
            return
        held, self._held = self._held, {}
        for writes in held.values():
            self._apply(writes)
        if self._held:
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, 60.0)
        else:
            self._retry_delay = 1.0

    def _raise_if_held(self) -> None:
        if self._held:
            runs = ", ".join(sorted(self._held))
            raise DeliveryError(f"W&B run(s) {runs} could not start; their writes are kept and retried")

    def _call(self, key: str, what: str, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # one failed write must not lose the rest of the run
            message = f"W&B run {key}: {what} failed ({type(exc).__name__}: {exc})"
            if len(self._problems) < 20:
                self._problems.append(message)
            notify.logger.debug(message, exc_info=True)

    def _write(self, run: Any, w: Write) -> None:
        wandb = self._wandb
        if isinstance(w, LogRow):
            run.log(w.values, step=w.step)
        elif isinstance(w, DefineMetric):
            run.define_metric(w.name, step_metric=w.step_metric)
        elif isinstance(w, UpdateSummary):
            run.summary.update(w.values)
        elif isinstance(w, UpdateConfig):
            run.config.update(w.values, allow_val_change=True)
        elif isinstance(w, SetName):
            run.name = w.name
        elif isinstance(w, SetTags):
            run.tags = w.tags
        elif isinstance(w, LogTable):
            table = wandb.Table(
                columns=list(w.columns), data=[list(r) for r in w.rows], allow_mixed_types=True
            )
            run.log({w.key: table}, step=w.step)
        elif isinstance(w, LogFiles):
            self._files(run, w)
        elif isinstance(w, FinishRun):
            run.finish(exit_code=w.exit_code)

    def _files(self, run: Any, w: LogFiles) -> None:
        """The Inspect logs as one artifact, and the user's extra files.

        The artifact follows the content rules: without content capture it is not uploaded at
        all (one line says so; the log's location stays in the summary), with it the artifact is
        a redacted copy written with Inspect's own log reader and writer, never the raw file:
        the eval's own copy when its spans name one this process can read (``logcopies``),
        else one redacted here.
        """
        wandb = self._wandb
        if w.eval_logs and not self.settings.content.capture:
            notify.say(
                "INSPECT_OTEL_CAPTURE_CONTENT=false: Inspect's logs are not uploaded to W&B "
                "(their locations are in the run summary)",
                key="wandb-log-artifact",
            )
        elif w.eval_logs:
            artifact = wandb.Artifact(f"inspect-logs-{run.id}", type="inspect-log")
            added = 0
            staging = Path(tempfile.mkdtemp(prefix="inspect-otel-logs-"))  # add_file copies it
            redactor = Redactor(environment(), patterns=self.settings.content.redact_patterns)
            redacted_here: list[str] = []  # logs without a usable copy from the eval
            reason = ""
            for location in w.eval_logs:
                local = logcopies.local_path(location)
                logcopies.wait_for(w.copies.get(location))  # this worker's own copy, if still going
                copy, why = logcopies.usable_copy(location, w.copies.get(location))
                if local is None:  # a reference: W&B records the URI, the file stays where it is
                    artifact.add_reference(redactor.text(location))
                    added += 1
                elif copy is not None:  # redacted by the eval's process, which knew every secret
                    artifact.add_file(str(copy), name=copy.name)
                    added += 1
                elif Path(local).is_file():
                    redacted_here.append(location)
                    reason = reason or why
                    try:
                        copy = redacted_eval_log(local, staging, redactor)
                    except Exception as exc:  # a log Inspect cannot read back: not uploaded
                        self._problems.append(f"Inspect log not uploaded to W&B ({type(exc).__name__})")
                        continue
                    artifact.add_file(str(copy), name=copy.name)
                    added += 1
                else:  # eval-set retries replace a failed task's log: nothing to keep
                    notify.logger.debug("Inspect log %s not found; not added to W&B", location)
            if added:
                run.log_artifact(artifact)
            if redacted_here:
                notify.say(logcopies.fallback_note(redacted_here, reason), key=f"log-copy-fallback:{run.id}")
            shutil.rmtree(staging, ignore_errors=True)
        for pattern in w.extra:
            path = Path(pattern).expanduser()
            if not path.is_absolute():
                path = Path.cwd() / path
            if not any(path.parent.glob(path.name)):
                self._problems.append(f"INSPECT_OTEL_WANDB_FILES: nothing matches {pattern!r}")
                continue
            run.save(str(path), base_path=str(path.parent), policy="now")

    def _start(self, w: StartRun) -> bool:
        try:
            if self._wandb is None:
                import wandb

                self._wandb = wandb
            if not self._exit_hook:
                # wandb registers its exit hook when its service starts (first init) and then
                # finishes every open run as successful; ours, registered before, runs first
                self._exit_hook = True
                atexit.register(self._before_wandb_exit)
            mode = choose_mode(self.settings.wandb)
            if mode == "online":
                if self._reachable is None:
                    self._reachable = reachable(self.settings.wandb.base_url)
                if not self._reachable:
                    mode = "offline"
                    self._note_offline(f"{self.settings.wandb.base_url} did not answer")
            try:
                run = self._init(w, mode)
            except Exception as exc:
                if mode != "online" or self._runs:
                    raise
                # nothing of ours is open: reset wandb's service so the id can be used offline
                self._wandb.teardown()
                self._reachable = False
                self._note_offline(f"wandb.init failed ({type(exc).__name__})")
                run = self._init(w, "offline")
        except Exception as exc:
            message = f"W&B run {w.run} could not start ({type(exc).__name__}: {exc})"
            if message not in self._problems:
                self._problems.append(message)
            return False
        self._runs[w.run] = run
        # after init, not in it: wandb.init drops empty nested values ({} model args) that
        # config.update keeps, and the config must not depend on which pair came first
        self._call(w.run, "config", lambda: run.config.update(w.config, allow_val_change=True))
        if getattr(run, "offline", False):
            self._offline_dirs[w.run] = str(run.settings.sync_dir)
        return True

    def _note_offline(self, why: str) -> None:
        message = f"{why}; W&B runs are written offline (upload later with `wandb sync`)"
        if message not in self._problems:
            self._problems.append(message)
        notify.say(message, key="wandb-unreachable")

    def _init(self, w: StartRun, mode: str) -> Any:
        wandb = self._wandb
        settings = wandb.Settings(
            console="off",  # never wrap Inspect's terminal output
            # the bridge says in one line where the run is; wandb's own banner only if asked for
            silent=self.settings.wandb.silent,
            save_code=False,
            init_timeout=INIT_TIMEOUT_S,
            finish_timeout=FINISH_TIMEOUT_S,
        )
        return wandb.init(
            project=self.project,
            entity=self.entity,
            id=w.run,
            name=w.name,
            group=w.group,
            job_type=w.job_type,
            tags=list(w.tags),
            resume="allow",
            reinit="create_new",
            mode=mode,
            settings=settings,
        )

    def _after_finish(self, key: str, run: Any) -> None:
        # wandb's artifact cache would keep the finished run (and its tables) alive: a
        # long-running receiver stays flat only if it lets go of it
        self._call(key, "release", lambda: upstream.forget_run_artifacts(str(run.id)))
        directory = self._offline_dirs.pop(key, None)
        if directory is None:
            return
        self.offline_dirs.append(directory)
        notify.say(
            f"W&B run {key!r} was saved offline in {directory}; upload it with `wandb sync {directory}`.",
            key=f"wandb-offline:{directory}",
        )
