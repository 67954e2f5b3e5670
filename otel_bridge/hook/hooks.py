"""The Inspect hook: thin, guarded dispatch into the session's recorder.

Nothing here may raise into Inspect, block on I/O, or parse settings per call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inspect_ai.hooks import (
    EvalSetEnd,
    EvalSetStart,
    Hooks,
    ModelRetry,
    RunEnd,
    RunStart,
    SampleAttemptEnd,
    SampleAttemptStart,
    SampleEnd,
    SampleEvent,
    SampleInit,
    TaskEnd,
    TaskStart,
    hooks,
)

from otel_bridge import notify
from otel_bridge.config import enabled_raw, tracing_enabled

if TYPE_CHECKING:
    from otel_bridge.hook.recorder import Recorder
    from otel_bridge.hook.session import Session

_enabled_cache: tuple[str | None, bool] = (None, False)


def _enabled() -> bool:
    """One dict lookup per call; the parsed answer is cached per raw value."""
    global _enabled_cache
    raw = enabled_raw()
    cached_raw, answer = _enabled_cache
    if raw == cached_raw:
        return answer
    answer, problem = tracing_enabled()
    if problem:
        notify.say(problem)
    _enabled_cache = (raw, answer)
    return answer


def _guard(where: str, action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception as exc:  # the eval must never notice the bridge
        _report(where, exc)


def _report(where: str, exc: Exception) -> None:
    notify.say(
        f"internal error in {where} ({type(exc).__name__}: {exc}); the eval is unaffected.",
        key=f"internal:{where}",
    )
    notify.logger.debug("bridge error", exc_info=True)


def _begin() -> Session:
    # imported on first use: OpenTelemetry's SDK stays out of processes that never trace
    from otel_bridge.hook import session

    return session.begin()


def _current() -> Session | None:
    # the session module (and the SDK behind it) is imported by the first traced run
    module = sys.modules.get("otel_bridge.hook.session")
    return None if module is None else module.current()


def _forward(where: str, call: Callable[[Recorder], None]) -> None:
    """Hand a hook call to the recorder of the current run (none when the run is not traced)."""
    session = _current()
    if session is not None:
        recorder = session.recorder
        _guard(where, lambda: call(recorder))


def _finish(
    where: str, record: Callable[[Session], None], after: Callable[[Session], None] | None = None
) -> None:
    """The end of an eval set or a run: record it, deliver what is queued, then ``after``."""

    def end() -> None:
        session = _current()
        if session is not None:
            record(session)
            session.finish_batch()
            if after is not None:
                after(session)

    _guard(where, end)


@hooks(name="otel_bridge", description="OpenTelemetry spans for Inspect evals (inspect-otel-bridge)")
class OtelBridgeHooks(Hooks):
    def enabled(self) -> bool:
        try:
            return _enabled()
        except Exception:
            return False

    async def on_eval_set_start(self, data: EvalSetStart) -> None:
        _guard("on_eval_set_start", lambda: _begin().recorder.eval_set_start(data))

    async def on_eval_set_end(self, data: EvalSetEnd) -> None:
        _finish("on_eval_set_end", lambda session: session.recorder.eval_set_end(data))

    async def on_run_start(self, data: RunStart) -> None:
        _guard("on_run_start", lambda: _begin().run_start(data))

    async def on_run_end(self, data: RunEnd) -> None:
        def close_file(session: Session) -> None:
            if session.pipeline.file is not None:
                session.pipeline.file.close_run(data.run_id)

        _finish("on_run_end", lambda session: session.recorder.run_end(data), close_file)

    async def on_task_start(self, data: TaskStart) -> None:
        _forward("on_task_start", lambda r: r.task_start(data))

    async def on_task_end(self, data: TaskEnd) -> None:
        _forward("on_task_end", lambda r: r.task_end(data))

    async def on_sample_init(self, data: SampleInit) -> None:
        _forward("on_sample_init", lambda r: r.sample_init(data))

    async def on_sample_attempt_start(self, data: SampleAttemptStart) -> None:
        _forward("on_sample_attempt_start", lambda r: r.sample_attempt_start(data))

    async def on_sample_event(self, data: SampleEvent) -> None:
        # the hottest hook (every event of every sample): no closures, one guarded call
        session = _current()
        if session is not None:
            try:
                session.recorder.sample_event(data.sample_id, data.event)
            except Exception as exc:
                _report("on_sample_event", exc)

    async def on_sample_attempt_end(self, data: SampleAttemptEnd) -> None:
        _forward("on_sample_attempt_end", lambda r: r.sample_attempt_end(data))

    async def on_sample_end(self, data: SampleEnd) -> None:
        _forward("on_sample_end", lambda r: r.sample_end(data))

    async def on_model_retry(self, data: ModelRetry) -> None:
        _forward("on_model_retry", lambda r: r.metrics.model_retry(data))
