"""Settings, read from the environment once per run.

Nothing here raises: an invalid value yields a default plus one message naming the variable
and what it accepts, so a typo never changes an eval's result or exit code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_bridge.switch import ENABLED_VAR, FALSE_VALUES, TRUE_VALUES

__all__ = ["ENABLED_VAR", "Settings", "load_settings"]

EXPORTERS = ("file", "otlp", "console", "weave", "wandb")
DEFAULT_EXPORTERS = ("file", "wandb")
DEFAULT_CONTENT_MAX_BYTES = 32 * 1024
DEFAULT_EXPORT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_RECEIVER_MAX_BODY_BYTES = 64 * 1024 * 1024  # the SDK's OTLP/HTTP exporter never sends more
DEFAULT_RECEIVER_SPOOL_MAX_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the bridge needs to know, resolved once."""

    enabled: bool = False
    exporters: tuple[str, ...] = ("file",)
    span_dir: Path = Path("otel-spans")
    capture_content: bool = True
    content_max_bytes: int = DEFAULT_CONTENT_MAX_BYTES
    export_max_bytes: int = DEFAULT_EXPORT_MAX_BYTES
    flush_timeout_s: float = 5.0
    otlp_protocol: str = "http/protobuf"
    weave_project: str | None = None
    weave_traces: bool = True
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_run_name: str | None = None
    wandb_tags: tuple[str, ...] = ()
    wandb_log_artifact: bool = True
    wandb_files: tuple[str, ...] = ()
    wandb_table_max_rows: int = 10_000
    # --- `otel-bridge serve` (the OTLP receiver); the token never appears in a repr
    receiver_token: str | None = field(default=None, repr=False)
    receiver_max_body_bytes: int = DEFAULT_RECEIVER_MAX_BODY_BYTES
    receiver_stale_after_s: float = 3600.0
    receiver_spool_dir: Path = Path("otel-receiver-spool")
    receiver_spool_max_bytes: int = DEFAULT_RECEIVER_SPOOL_MAX_BYTES
    receiver_dedup_spans: int = 200_000
    # every OTEL_* variable: the SDK reads them itself, and a change must rebuild the pipeline
    otel_env: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)


class _Reader:
    """Collects one message per bad variable instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        raw = self.env.get(name)
        return raw.strip() if raw is not None and raw.strip() != "" else None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        low = raw.lower()
        if low in TRUE_VALUES:
            return True
        if low in FALSE_VALUES:
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")
        return default

    def number(self, name: str, default: float, minimum: float, integer: bool = False) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number"
            self.problems.append(f"{name}={raw!r} is not {kind} (using {default:g})")
            return default
        if value < minimum:
            self.problems.append(f"{name}={raw!r} must be at least {minimum:g} (using {default:g})")
            return default
        return value

    def words(self, name: str) -> tuple[str, ...] | None:
        raw = self.get(name)
        if raw is None:
            return None
        return tuple(w.strip() for w in raw.split(",") if w.strip())


def _capture_content(r: _Reader) -> bool:
    if r.get("INSPECT_OTEL_CAPTURE_CONTENT") is not None:
        return r.flag("INSPECT_OTEL_CAPTURE_CONTENT", True)
    std = r.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    if std is None:
        return True
    low = std.lower()
    if low in TRUE_VALUES or low in {"span_only", "span_and_event"}:
        return True
    if low in FALSE_VALUES or low in {"no_content", "event_only"}:
        return False
    r.problems.append(
        f"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT={std!r} is not one of "
        "true, false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT (capturing content)"
    )
    return True


def _exporters(r: _Reader) -> tuple[str, ...]:
    requested = r.words("INSPECT_OTEL_EXPORTERS")
    if requested is None:
        has_endpoint = r.get("OTEL_EXPORTER_OTLP_ENDPOINT") or r.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        # nothing configured: the embedded default records everything locally — span files and
        # a W&B Models run (offline without an API key); an OTLP endpoint means "send it there"
        return ("file", "otlp") if has_endpoint else DEFAULT_EXPORTERS
    chosen: list[str] = []
    for name in requested:
        low = name.lower()
        if low not in EXPORTERS:
            r.problems.append(
                f"INSPECT_OTEL_EXPORTERS has unknown exporter {name!r} (accepted: {', '.join(EXPORTERS)})"
            )
        elif low not in chosen:
            chosen.append(low)
    if not chosen:
        r.problems.append("INSPECT_OTEL_EXPORTERS selects no valid exporter (using file)")
        return ("file",)
    return tuple(chosen)


def _protocol(r: _Reader) -> str:
    raw = r.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or r.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if raw is None:
        return "http/protobuf"
    if raw in {"http/protobuf", "grpc"}:
        return raw
    r.problems.append(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={raw!r} is not one of grpc, http/protobuf (using http/protobuf)"
    )
    return "http/protobuf"


def _project(r: _Reader, var: str) -> str | None:
    raw = r.get(var)
    if raw is not None:
        return raw
    project = r.get("WANDB_PROJECT")
    if project is None:
        return None
    entity = r.get("WANDB_ENTITY")
    return f"{entity}/{project}" if entity else project


WANDB_DEFAULT_PROJECT = "inspect-evals"


def wandb_run_project(settings: Settings) -> tuple[str, str | None]:
    """(project, entity) of the W&B Models runs: INSPECT_OTEL_WANDB_PROJECT may be entity/project."""
    raw = settings.wandb_project or WANDB_DEFAULT_PROJECT
    entity = settings.wandb_entity
    if "/" in raw:
        entity, raw = raw.split("/", 1)
    return raw, entity or None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting; problems are returned, never raised."""
    r = _Reader(os.environ if env is None else env)
    enabled = r.flag(ENABLED_VAR, False)
    content_max = int(r.number("INSPECT_OTEL_CONTENT_MAX_BYTES", DEFAULT_CONTENT_MAX_BYTES, 256, True))
    value_limit = r.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    if value_limit is not None and value_limit.isdigit() and int(value_limit) > 0:
        content_max = min(content_max, int(value_limit))
    weave_project = _project(r, "INSPECT_OTEL_WEAVE_PROJECT")
    if weave_project is not None and weave_project.count("/") != 1:
        r.problems.append(
            f"INSPECT_OTEL_WEAVE_PROJECT={weave_project!r} must be 'entity/project' (Weave export disabled)"
        )
        weave_project = None
    settings = Settings(
        enabled=enabled,
        exporters=_exporters(r),
        span_dir=Path(r.get("INSPECT_OTEL_DIR") or "otel-spans"),
        capture_content=_capture_content(r),
        content_max_bytes=content_max,
        export_max_bytes=int(
            r.number("INSPECT_OTEL_EXPORT_MAX_BYTES", DEFAULT_EXPORT_MAX_BYTES, 64 * 1024, True)
        ),
        flush_timeout_s=r.number("INSPECT_OTEL_FLUSH_TIMEOUT", 5.0, 0.0),
        otlp_protocol=_protocol(r),
        weave_project=weave_project,
        weave_traces=r.flag("INSPECT_OTEL_WEAVE_TRACES", True),
        wandb_project=r.get("INSPECT_OTEL_WANDB_PROJECT") or r.get("WANDB_PROJECT"),
        wandb_entity=r.get("WANDB_ENTITY"),
        wandb_run_name=r.get("INSPECT_OTEL_WANDB_RUN_NAME"),
        wandb_tags=r.words("INSPECT_OTEL_WANDB_TAGS") or (),
        wandb_log_artifact=r.flag("INSPECT_OTEL_WANDB_LOG_ARTIFACT", True),
        wandb_files=r.words("INSPECT_OTEL_WANDB_FILES") or (),
        wandb_table_max_rows=int(r.number("INSPECT_OTEL_WANDB_TABLE_MAX_ROWS", 10_000, 0, True)),
        otel_env=tuple(sorted((k, v) for k, v in r.env.items() if k.startswith("OTEL_"))),
        **_receiver_settings(r),
    )
    return _with_problems(settings, r.problems)


def _receiver_settings(r: _Reader) -> dict[str, Any]:
    """INSPECT_OTEL_RECEIVER_*: only `otel-bridge serve` reads these."""
    return {
        "receiver_token": r.get("INSPECT_OTEL_RECEIVER_TOKEN"),
        "receiver_max_body_bytes": int(
            r.number("INSPECT_OTEL_RECEIVER_MAX_BODY_BYTES", DEFAULT_RECEIVER_MAX_BODY_BYTES, 1024, True)
        ),
        "receiver_stale_after_s": r.number("INSPECT_OTEL_RECEIVER_STALE_AFTER", 3600.0, 0.0),
        "receiver_spool_dir": Path(r.get("INSPECT_OTEL_RECEIVER_SPOOL_DIR") or "otel-receiver-spool"),
        "receiver_spool_max_bytes": int(
            r.number(
                "INSPECT_OTEL_RECEIVER_SPOOL_MAX_BYTES", DEFAULT_RECEIVER_SPOOL_MAX_BYTES, 1024 * 1024, True
            )
        ),
        "receiver_dedup_spans": int(r.number("INSPECT_OTEL_RECEIVER_DEDUP_SPANS", 200_000, 0, True)),
    }


def _with_problems(settings: Settings, problems: list[str]) -> Settings:
    from dataclasses import replace

    return replace(settings, problems=tuple(problems))
