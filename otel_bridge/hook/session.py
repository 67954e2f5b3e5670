"""One tracing session: settings read once, a pipeline, and the recorder using it.

A session starts with the first run (or eval set) and is reused while the settings stay the
same; it is flushed, with a bounded timeout, whenever no run is active, and shut down at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from importlib.metadata import PackageNotFoundError, version

from inspect_ai.hooks import RunStart

from otel_bridge import __version__, api, notify
from otel_bridge import conventions as c
from otel_bridge.config import Settings, environment, environment_probe, load_settings
from otel_bridge.exporters.process import WorkerSpanProcessor
from otel_bridge.hook.recorder import Recorder
from otel_bridge.logcopies import LogCopier
from otel_bridge.metrics.provider import say_undelivered
from otel_bridge.metrics.recorder import NO_METRICS
from otel_bridge.pipeline import Pipeline
from otel_bridge.redact import Redactor, Scrubber, secret_env_values


def _inspect_version() -> str:
    try:
        return version("inspect_ai")
    except PackageNotFoundError:
        return "unknown"


class Session:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        inspect_version = _inspect_version()
        self.extra = api.current()
        self.pipeline = Pipeline(
            settings,
            inspect_version,
            span_processors=self.extra.span_processors,
            tracer_provider=self.extra.tracer_provider,
        )
        versions: dict[str, str | bool | int | float | list[str]] = {
            c.INSPECT_VERSION: inspect_version,
            c.BRIDGE_VERSION: __version__,
        }
        # one redactor: the builders' and the edge pass's (which every span goes through)
        redactor = Redactor(environment, patterns=settings.content.redact_patterns, probe=environment_probe)
        self.pipeline.spans.scrubber = Scrubber(redactor, settings.content.capture)
        self.log_copies: LogCopier | None = None
        self.copier_worker: WorkerSpanProcessor | None = None
        # a secret exported after the workers started: their redaction (the W&B log copy) learns it
        redactor.on_new = self._tell_workers
        self.recorder = Recorder(self.pipeline.spans, settings, redactor, versions)
        if settings.content.capture and settings.wandb.log_artifact:
            # the W&B log artifact's redacted copy, made where every secret is known: by a worker
            # (told every late secret, off this process's GIL), the W&B one first since it uploads
            # the copy; in a thread here only when there is no worker (INSPECT_OTEL_EXPORTERS=file)
            self.copier_worker = min(self.pipeline.workers, key=lambda w: w.name != "wandb", default=None)
            patterns = settings.content.redact_patterns
            copier = LogCopier(
                settings.core.span_dir,
                lambda known: Redactor(environment(), extra=tuple(known), patterns=patterns),
                send=self.copier_worker.copy_log if self.copier_worker is not None else None,
            )
            copier.known.update(secret_env_values(environment()))
            self.recorder.log_copies = self.log_copies = copier
        metrics = self.pipeline.metrics
        self.recorder.metrics = self.recorder.events.metrics = metrics.recorder if metrics else NO_METRICS

    def _tell_workers(self, values: dict[str, str]) -> None:
        if self.log_copies is not None:  # its copies are redacted with every value seen
            self.log_copies.known.update(values)
        for worker in self.pipeline.workers:
            worker.tell_secrets(values)

    def run_start(self, data: RunStart) -> None:
        self.recorder.run_start(data)
        if self.pipeline.metrics is not None:
            self.pipeline.metrics.run_start(data.run_id)

    def finish_batch(self) -> None:
        """End of a run or eval set: deliver what is queued, within the bounded timeout.

        Exporters still busy after the timeout carry on (in their threads and worker
        processes) until the exit deadline; what they finally could not deliver is said in
        one line at exit.
        """
        self.pipeline.end_of_run()
        say_undelivered(self.pipeline.metrics)

    def close(self) -> None:
        self.recorder.abandon_all("process exited before this span ended")
        self.pipeline.shutdown()
        copies, worker = self.log_copies, self.copier_worker
        if copies is not None:  # this process's own copies (no worker, or it stopped): within the deadline
            end_by = self.pipeline.end_by or time.monotonic() + self.settings.core.flush_timeout_s
            copies.wait(max(0.0, end_by - time.monotonic()))
        if copies is not None and worker is not None and (why := worker.unconfirmed()) is not None:
            copies.unwritten(f"the {worker.name} exporter process: {why}")
        message = self.pipeline.undelivered_message()
        if message:
            notify.say(message)
        say_undelivered(self.pipeline.metrics)


_lock = threading.Lock()
_session: Session | None = None


def begin() -> Session:
    """The session for a starting run: settings are read here, once per run."""
    global _session
    with _lock:
        settings = load_settings()
        for problem in settings.problems:
            notify.say(problem)
        changed = _session is not None and (_session.settings != settings or _session.extra != api.current())
        if _session is not None and changed and _session.recorder.idle:
            _session.close()
            _session = None
        if _session is None:
            _session = Session(settings)
        _session.pipeline.end_by = None  # a run is starting: the exit deadline counts from its end
        return _session


def current() -> Session | None:
    return _session


@atexit.register
def _close_at_exit() -> None:
    global _session
    with _lock:
        session, _session = _session, None
    if session is not None:
        with contextlib.suppress(Exception):
            session.close()
