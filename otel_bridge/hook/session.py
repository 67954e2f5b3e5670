"""One tracing session: settings read once, a pipeline, and the recorder using it.

A session starts with the first run (or eval set) and is reused while the settings stay the
same; it is flushed, with a bounded timeout, whenever no run is active, and shut down at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from importlib.metadata import PackageNotFoundError, version

from otel_bridge import __version__, notify
from otel_bridge import conventions as c
from otel_bridge.config import Settings, load_settings
from otel_bridge.hook.recorder import Recorder
from otel_bridge.pipeline import Pipeline, Sink
from otel_bridge.redact import Redactor


def _inspect_version() -> str:
    try:
        return version("inspect_ai")
    except PackageNotFoundError:
        return "unknown"


class Session:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        inspect_version = _inspect_version()
        self.pipeline = Pipeline(settings, inspect_version, extra=_translator_sinks(settings))
        versions: dict[str, str | bool | int | float | list[str]] = {
            c.INSPECT_VERSION: inspect_version,
            c.BRIDGE_VERSION: __version__,
        }
        self.recorder = Recorder(self.pipeline.spans, settings, Redactor(), versions)

    def finish_batch(self) -> None:
        """End of a run or eval set: deliver what is queued, within the bounded timeout.

        Exporters still busy after the timeout carry on (in their threads and worker
        processes); what they finally could not deliver is said once, here or at exit.
        """
        self.pipeline.flush()
        message = self.pipeline.undelivered_message()
        if message:
            notify.say(message)

    def close(self) -> None:
        self.recorder.abandon_all("process exited before this span ended")
        self.pipeline.shutdown()
        message = self.pipeline.undelivered_message()
        if message:
            notify.say(message)


def _translator_sinks(settings: Settings) -> list[Sink]:
    """Weave / W&B sinks, imported only when enabled (they pull in heavy SDKs)."""
    sinks: list[Sink] = []
    for name in settings.exporters:
        if name in {"weave", "wandb"}:
            try:
                from otel_bridge.sinks import registry

                sink = registry.make(name, settings)
            except Exception as exc:
                notify.say(
                    f"the {name} exporter could not start ({type(exc).__name__}: {exc}); "
                    "spans still go to the other exporters and the span file."
                )
                continue
            if sink is not None:
                sinks.append(sink)
    return sinks


_lock = threading.Lock()
_session: Session | None = None


def begin() -> Session:
    """The session for a starting run: settings are read here, once per run."""
    global _session
    with _lock:
        settings = load_settings()
        for problem in settings.problems:
            notify.say(problem)
        if _session is not None and _session.settings != settings and _session.recorder.idle:
            _session.close()
            _session = None
        if _session is None:
            _session = Session(settings)
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
