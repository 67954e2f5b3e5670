"""``otel_bridge.configure()``: turn the hook on from Python, with the environment variables' options.

Options become the same ``INSPECT_OTEL_*`` values the environment would hold (an overlay that
wins over the environment, read by the one parser in ``config`` and inherited by the worker
processes), so Python and environment configuration can never mean different things. Span
processors and a tracer provider cannot be environment values: they are kept here for the next
traced run. Settings are read when a run starts, so call ``configure`` before ``eval()``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from otel_bridge import config


@dataclass(frozen=True)
class Extra:
    """What the next traced run adds to its configured exporters."""

    span_processors: tuple[SpanProcessor, ...] = ()
    """Processors that receive every span the hook ends (as the configured exporters do)."""
    tracer_provider: TracerProvider | None = None
    """A provider of the user's: gets every span, and gives its resource and sampler."""


_lock = threading.Lock()
_extra = Extra()


def current() -> Extra:
    return _extra


def _words(values: Sequence[str]) -> str:
    return ",".join(values) if values else "none"


def configure(
    *,
    enabled: bool = True,
    exporters: Sequence[str] | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    tracer_provider: TracerProvider | None = None,
    span_dir: str | Path | None = None,
    capture_content: bool | None = None,
    content_max_bytes: int | None = None,
    flush_timeout_s: float | None = None,
    weave_project: str | None = None,
    weave_traces: bool | None = None,
    wandb_project: str | None = None,
    wandb_run_name: str | None = None,
    wandb_tags: Sequence[str] | None = None,
    wandb_log_artifact: bool | None = None,
) -> None:
    """Enable (or disable) the bridge for this process, as the environment variables would.

    Args:
        enabled: ``INSPECT_OTEL_ENABLED``; ``False`` turns tracing off whatever the environment says.
        exporters: ``INSPECT_OTEL_EXPORTERS`` (``file``, ``otlp``, ``console``, ``weave``,
            ``wandb``); an empty list means none of them, only ``span_processors`` /
            ``tracer_provider``. ``None``: the environment's choice (or the embedded default).
        span_processors: processors of your own (e.g. ``BatchSpanProcessor(WeaveSpanExporter(...))``).
        tracer_provider: your own ``TracerProvider``: its processors get every span, with its
            resource and sampler. The bridge flushes it at the end of each run and never shuts
            it down or installs it globally.
        span_dir, capture_content, content_max_bytes, flush_timeout_s, weave_project,
        weave_traces, wandb_project, wandb_run_name, wandb_tags, wandb_log_artifact: the
            ``INSPECT_OTEL_*`` setting of the same name (README, Configuration).

    Every call replaces the previous one's options; unset options come from the environment.
    """
    values: dict[str, str | None] = {
        config.ENABLED_VAR: "1" if enabled else "0",
        "INSPECT_OTEL_EXPORTERS": None if exporters is None else _words(list(exporters)),
        "INSPECT_OTEL_DIR": None if span_dir is None else str(span_dir),
        "INSPECT_OTEL_CAPTURE_CONTENT": _flag(capture_content),
        "INSPECT_OTEL_CONTENT_MAX_BYTES": _text(content_max_bytes),
        "INSPECT_OTEL_FLUSH_TIMEOUT": _text(flush_timeout_s),
        "INSPECT_OTEL_WEAVE_PROJECT": weave_project,
        "INSPECT_OTEL_WEAVE_TRACES": _flag(weave_traces),
        "INSPECT_OTEL_WANDB_PROJECT": wandb_project,
        "INSPECT_OTEL_WANDB_RUN_NAME": wandb_run_name,
        "INSPECT_OTEL_WANDB_TAGS": None if wandb_tags is None else ",".join(wandb_tags),
        "INSPECT_OTEL_WANDB_LOG_ARTIFACT": _flag(wandb_log_artifact),
    }
    global _extra
    with _lock:
        config.set_overlay({k: v for k, v in values.items() if v is not None})
        _extra = Extra(tuple(span_processors), tracer_provider)


def reset() -> None:
    """Forget everything ``configure`` set: the environment alone decides again."""
    global _extra
    with _lock:
        config.set_overlay({})
        _extra = Extra()


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _text(value: float | int | None) -> str | None:
    return None if value is None else str(value)
