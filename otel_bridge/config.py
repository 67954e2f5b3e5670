"""Every setting the bridge reads, declared once, read from the environment in this module only.

Nothing here raises: an invalid value yields a default plus one message naming the variable and
what it accepts, so a typo never changes an eval's result or exit code. Each field names its
environment variable in its metadata (``env``); the README's configuration table is checked
against these declarations by a test. ``otel_bridge.configure()`` passes the same variables as an
overlay, so Python and environment configuration share one parser.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER
from opentelemetry.sdk import environment_variables as otel

from otel_bridge.envreader import FALSE_VALUES, TRUE_VALUES
from otel_bridge.envreader import Reader as _Reader

ENABLED_VAR = "INSPECT_OTEL_ENABLED"

EXPORTERS = ("file", "otlp", "console", "weave", "wandb")
METRIC_EXPORTERS = ("file", "otlp", "console")
DEFAULT_EXPORTERS = ("file", "wandb")
DEFAULT_CONTENT_MAX_BYTES = 32 * 1024
DEFAULT_EXPORT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_RECEIVER_MAX_BODY_BYTES = 64 * 1024 * 1024  # the SDK's OTLP/HTTP exporter never sends more
DEFAULT_RECEIVER_SPOOL_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_SERVICE_NAME = "inspect-ai"
WANDB_DEFAULT_BASE_URL = "https://api.wandb.ai"
WANDB_DEFAULT_PROJECT = "inspect-evals"
OTLP_MAX_TIMEOUT_S = 10.0  # a black-holed endpoint cannot hold the eval's exit longer than this


def _env(name: str) -> dict[str, Any]:
    return {"env": name}


@dataclass(frozen=True)
class CoreSettings:
    """Where spans go and how long the end of a run may wait for them."""

    enabled: bool = field(default=False, metadata=_env(ENABLED_VAR))
    """The switch: the hook records nothing unless it is on."""
    exporters: tuple[str, ...] = field(default=("file",), metadata=_env("INSPECT_OTEL_EXPORTERS"))
    """Destinations, of ``EXPORTERS`` (``none``: only those given to ``configure``); unset: the default."""
    span_dir: Path = field(default=Path("otel-spans"), metadata=_env("INSPECT_OTEL_DIR"))
    """Span files, one per run (and spans an exporter could not deliver)."""
    flush_timeout_s: float = field(default=5.0, metadata=_env("INSPECT_OTEL_FLUSH_TIMEOUT"))
    """Seconds the end of a run may wait for queued spans."""
    export_max_bytes: int = field(
        default=DEFAULT_EXPORT_MAX_BYTES, metadata=_env("INSPECT_OTEL_EXPORT_MAX_BYTES")
    )
    """Largest OTLP export request (collectors refuse 4 MiB+ gRPC messages)."""
    otlp_protocol: str = field(default="http/protobuf", metadata=_env(otel.OTEL_EXPORTER_OTLP_PROTOCOL))
    """``http/protobuf`` or ``grpc`` (the traces-specific variable wins)."""
    otlp_endpoint: str | None = field(default=None, metadata=_env(otel.OTEL_EXPORTER_OTLP_ENDPOINT))
    """Base URL of the OTLP endpoint; its presence makes ``file,otlp`` the default."""
    otlp_traces_endpoint: str | None = field(
        default=None, metadata=_env(otel.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    )
    """Full URL for traces (wins over the base URL)."""
    otlp_headers: str | None = field(default=None, repr=False, metadata=_env(otel.OTEL_EXPORTER_OTLP_HEADERS))
    """``key=value,...`` headers of OTLP requests (may hold credentials: never in a repr)."""
    otlp_timeout_s: float = field(default=OTLP_MAX_TIMEOUT_S, metadata=_env(otel.OTEL_EXPORTER_OTLP_TIMEOUT))
    """One export's timeout, capped at ``OTLP_MAX_TIMEOUT_S``."""
    service_name: str | None = field(default=None, metadata=_env(otel.OTEL_SERVICE_NAME))
    """``service.name`` of the resource (default ``inspect-ai``)."""
    otel_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Every OTEL_* variable: the SDK reads them itself, and a change must rebuild the pipeline
    (not in a repr: OTEL_EXPORTER_OTLP_HEADERS may hold credentials)."""

    def otel_set(self, name: str) -> bool:
        """Whether the user set this OTEL_* variable (then the SDK's reading of it wins)."""
        return any(key == name for key, _ in self.otel_env)

    def otel_value(self, name: str) -> str | None:
        return next((value for key, value in self.otel_env if key == name), None)


@dataclass(frozen=True)
class ContentSettings:
    """Whether free text from the dataset, model, tools and scorers is exported, and how much."""

    capture: bool = field(default=True, metadata=_env("INSPECT_OTEL_CAPTURE_CONTENT"))
    """``False`` removes every prompt, completion, tool argument/result and sample text."""
    max_bytes: int = field(default=DEFAULT_CONTENT_MAX_BYTES, metadata=_env("INSPECT_OTEL_CONTENT_MAX_BYTES"))
    """Cap per content attribute (also bounded by OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)."""
    redact_patterns: tuple[str, ...] = field(
        default=(), repr=False, metadata=_env("INSPECT_OTEL_REDACT_PATTERNS")
    )
    """Regexes of your own secrets (one per line, or a JSON list): ``[REDACTED:pattern]`` everywhere."""


@dataclass(frozen=True)
class WeaveSettings:
    """The W&B Weave destination."""

    project: str | None = field(default=None, metadata=_env("INSPECT_OTEL_WEAVE_PROJECT"))
    """``entity/project``; default ``WANDB_ENTITY/WANDB_PROJECT``."""
    traces: bool = field(default=True, metadata=_env("INSPECT_OTEL_WEAVE_TRACES"))
    """``False`` uploads evaluations and scores without per-sample trace trees."""


@dataclass(frozen=True)
class WandbSettings:
    """The W&B Models destination, and the W&B environment both W&B destinations share."""

    project: str | None = field(default=None, metadata=_env("INSPECT_OTEL_WANDB_PROJECT"))
    """Models project (``entity/project`` allowed); default ``WANDB_PROJECT``, then inspect-evals."""
    entity: str | None = field(default=None, metadata=_env("WANDB_ENTITY"))
    """The W&B entity (team or user)."""
    run_name: str | None = field(default=None, metadata=_env("INSPECT_OTEL_WANDB_RUN_NAME"))
    """Run name template (``{tasks}``, ``{models}``, ...)."""
    tags: tuple[str, ...] = field(default=(), metadata=_env("INSPECT_OTEL_WANDB_TAGS"))
    """Extra run tags."""
    log_artifact: bool = field(default=True, metadata=_env("INSPECT_OTEL_WANDB_LOG_ARTIFACT"))
    """Upload the ``.eval`` logs as an artifact."""
    files: tuple[str, ...] = field(default=(), metadata=_env("INSPECT_OTEL_WANDB_FILES"))
    """Extra files (glob patterns) saved with the run."""
    table_max_rows: int = field(default=10_000, metadata=_env("INSPECT_OTEL_WANDB_TABLE_MAX_ROWS"))
    """Cap on the samples table."""
    api_key: str | None = field(default=None, repr=False, metadata=_env("WANDB_API_KEY"))
    """The W&B API key (never in a repr); wandb and weave read it themselves too."""
    identity_token_file: str | None = field(default=None, metadata=_env("WANDB_IDENTITY_TOKEN_FILE"))
    """A workload-identity token file: credentials without an API key."""
    base_url: str = field(default=WANDB_DEFAULT_BASE_URL, metadata=_env("WANDB_BASE_URL"))
    """The W&B server (dedicated cloud, self-hosted, or a local test server)."""
    mode: str | None = field(default=None, metadata=_env("WANDB_MODE"))
    """``offline``/``dryrun``/``disabled``/``online`` as wandb reads it."""
    netrc: Path | None = field(default=None, metadata=_env("NETRC"))
    """The netrc file wandb reads credentials from (default ``$HOME/.netrc``, or ``_netrc``)."""
    silent: bool = field(default=True, metadata=_env("WANDB_SILENT"))
    """wandb's own banner; the bridge prints one line of its own instead."""


@dataclass(frozen=True)
class ReceiverSettings:
    """``otel-bridge serve`` (the OTLP receiver) only."""

    token: str | None = field(default=None, repr=False, metadata=_env("INSPECT_OTEL_RECEIVER_TOKEN"))
    """Bearer token (required off loopback; never in a repr)."""
    max_body_bytes: int = field(
        default=DEFAULT_RECEIVER_MAX_BODY_BYTES, metadata=_env("INSPECT_OTEL_RECEIVER_MAX_BODY_BYTES")
    )
    """Largest OTLP request accepted (413 above)."""
    stale_after_s: float = field(default=3600.0, metadata=_env("INSPECT_OTEL_RECEIVER_STALE_AFTER"))
    """Seconds without spans after which an open task is ended as failed (0: never)."""
    spool_dir: Path = field(
        default=Path("otel-receiver-spool"), metadata=_env("INSPECT_OTEL_RECEIVER_SPOOL_DIR")
    )
    """The on-disk queue, fsynced before acknowledging."""
    spool_max_bytes: int = field(
        default=DEFAULT_RECEIVER_SPOOL_MAX_BYTES, metadata=_env("INSPECT_OTEL_RECEIVER_SPOOL_MAX_BYTES")
    )
    """Backlog above which the receiver answers 503 so the sender keeps queueing."""
    dedup_spans: int = field(default=200_000, metadata=_env("INSPECT_OTEL_RECEIVER_DEDUP_SPANS"))
    """Span ids remembered to drop collector retries."""


@dataclass(frozen=True)
class MetricsSettings:
    """The bridge's metrics (docs/conventions.md, "Metrics"): off unless an exporter is named."""

    exporters: tuple[str, ...] = field(default=(), metadata=_env(OTEL_METRICS_EXPORTER))
    """Of ``METRIC_EXPORTERS``; empty (unset, ``none``): no metrics. Any value writes the metric file."""
    otlp_endpoint: str | None = field(default=None, metadata=_env(otel.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT))
    """Full URL for metrics; unset: OTEL_EXPORTER_OTLP_ENDPOINT + ``/v1/metrics`` (as the SDK resolves it)."""
    otlp_protocol: str = field(
        default="http/protobuf", metadata=_env(otel.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL)
    )
    """``http/protobuf`` or ``grpc``; unset: ``OTEL_EXPORTER_OTLP_PROTOCOL`` (not the traces one)."""
    interval_s: float = field(default=10.0, metadata=_env(otel.OTEL_METRIC_EXPORT_INTERVAL))
    """Seconds between exports (the variable is in ms); short, so dashboards move during an eval."""
    delta: bool = field(default=False, metadata=_env(otel.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE))
    """``delta``/``lowmemory`` for the OTLP exporter; default cumulative (what Prometheus needs)."""

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)


@dataclass(frozen=True)
class Settings:
    """Everything the bridge needs to know, resolved once per run, in groups."""

    core: CoreSettings = CoreSettings()
    content: ContentSettings = ContentSettings()
    weave: WeaveSettings = WeaveSettings()
    wandb: WandbSettings = WandbSettings()
    receiver: ReceiverSettings = ReceiverSettings()
    metrics: MetricsSettings = MetricsSettings()
    problems: tuple[str, ...] = field(default=(), compare=False)
    """One message per invalid variable (the default was used instead)."""

    def with_exporters(self, names: tuple[str, ...]) -> Settings:
        """The same settings for these destinations (sync and the receiver choose their own)."""
        return replace(self, core=replace(self.core, exporters=names))

    def with_span_dir(self, directory: Path) -> Settings:
        return replace(self, core=replace(self.core, span_dir=directory))


GROUPS: tuple[type, ...] = (CoreSettings, ContentSettings, WeaveSettings, WandbSettings, ReceiverSettings)
GROUPS += (MetricsSettings,)


def declared_variables() -> dict[str, str]:
    """Every environment variable a setting is read from → ``group.field`` (docs and tests)."""
    out: dict[str, str] = {}
    for group, cls in zip(("core", "content", "weave", "wandb", "receiver", "metrics"), GROUPS, strict=True):
        for f in fields(cls):
            if "env" in f.metadata:
                out[f.metadata["env"]] = f"{group}.{f.name}"
    return out


def _capture_content(r: _Reader) -> bool:
    if r.get("INSPECT_OTEL_CAPTURE_CONTENT") is not None:
        return r.flag("INSPECT_OTEL_CAPTURE_CONTENT", True)
    name = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    std = r.get(name)
    if std is None:
        return True
    low = std.lower()
    if low in TRUE_VALUES or low in {"span_only", "span_and_event"}:
        return True
    if low in FALSE_VALUES or low in {"no_content", "event_only"}:
        return False
    r.problems.append(
        f"{name}={std!r} is not one of "
        "true, false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT (capturing content)"
    )
    return True


def _exporters(r: _Reader) -> tuple[str, ...]:
    requested = r.words("INSPECT_OTEL_EXPORTERS")
    if requested is None:
        has_endpoint = r.get(otel.OTEL_EXPORTER_OTLP_ENDPOINT) or r.get(
            otel.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
        )
        # nothing configured: the embedded default records everything locally — span files and
        # a W&B Models run (offline without an API key); an OTLP endpoint means "send it there"
        return ("file", "otlp") if has_endpoint else DEFAULT_EXPORTERS
    if [w.lower() for w in requested] == ["none"]:
        return ()  # only the processors given to otel_bridge.configure()
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


def _protocol(r: _Reader, specific: str = otel.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) -> str:
    """The signal's own variable, else the general one."""
    name = specific if r.get(specific) else otel.OTEL_EXPORTER_OTLP_PROTOCOL
    raw = r.get(name)
    if raw is None:
        return "http/protobuf"
    if raw in {"http/protobuf", "grpc"}:
        return raw
    problem = f"{name}={raw!r} is not one of grpc, http/protobuf (using http/protobuf)"
    if problem not in r.problems:  # the general variable, read for traces and for metrics
        r.problems.append(problem)
    return "http/protobuf"


def _otlp_timeout(r: _Reader) -> float:
    """The exporter's own timeout, capped so a black-holed endpoint cannot hold the exit long."""
    raw = r.get(otel.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) or r.get(otel.OTEL_EXPORTER_OTLP_TIMEOUT)
    try:
        value = float(raw) if raw else OTLP_MAX_TIMEOUT_S
    except ValueError:
        value = OTLP_MAX_TIMEOUT_S
    if value > 1000:  # the spec says milliseconds; the Python SDK historically used seconds
        value /= 1000
    return min(value, OTLP_MAX_TIMEOUT_S)


def _core(r: _Reader) -> CoreSettings:
    return CoreSettings(
        enabled=r.flag(ENABLED_VAR, False),
        exporters=_exporters(r),
        span_dir=Path(r.get("INSPECT_OTEL_DIR") or "otel-spans"),
        flush_timeout_s=r.number("INSPECT_OTEL_FLUSH_TIMEOUT", 5.0, 0.0),
        export_max_bytes=r.integer("INSPECT_OTEL_EXPORT_MAX_BYTES", DEFAULT_EXPORT_MAX_BYTES, 64 * 1024),
        otlp_protocol=_protocol(r),
        otlp_endpoint=r.get(otel.OTEL_EXPORTER_OTLP_ENDPOINT),
        otlp_traces_endpoint=r.get(otel.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
        otlp_headers=r.get(otel.OTEL_EXPORTER_OTLP_TRACES_HEADERS) or r.get(otel.OTEL_EXPORTER_OTLP_HEADERS),
        otlp_timeout_s=_otlp_timeout(r),
        service_name=r.get(otel.OTEL_SERVICE_NAME),
        otel_env=tuple(sorted((k, v) for k, v in r.env.items() if k.startswith("OTEL_"))),
    )


def _content(r: _Reader) -> ContentSettings:
    max_bytes = r.integer("INSPECT_OTEL_CONTENT_MAX_BYTES", DEFAULT_CONTENT_MAX_BYTES, 256)
    value_limit = r.get(otel.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)
    if value_limit is not None and value_limit.isdigit() and int(value_limit) > 0:
        max_bytes = min(max_bytes, int(value_limit))
    from otel_bridge.redact import parse_patterns  # here: the disabled hook path imports config only

    patterns, problems = parse_patterns(r.get("INSPECT_OTEL_REDACT_PATTERNS") or "")
    r.problems.extend(problems)
    return ContentSettings(capture=_capture_content(r), max_bytes=max_bytes, redact_patterns=patterns)


def _weave(r: _Reader) -> WeaveSettings:
    project = r.get("INSPECT_OTEL_WEAVE_PROJECT")
    if project is None and r.get("WANDB_PROJECT") is not None:
        entity = r.get("WANDB_ENTITY")
        project = f"{entity}/{r.get('WANDB_PROJECT')}" if entity else r.get("WANDB_PROJECT")
    if project is not None and project.count("/") != 1:
        r.problems.append(
            f"INSPECT_OTEL_WEAVE_PROJECT={project!r} must be 'entity/project' (Weave export disabled)"
        )
        project = None
    return WeaveSettings(project=project, traces=r.flag("INSPECT_OTEL_WEAVE_TRACES", True))


def _wandb(r: _Reader) -> WandbSettings:
    netrc = r.get("NETRC")
    home = r.get("HOME")
    silent = r.get("WANDB_SILENT")
    return WandbSettings(
        project=r.get("INSPECT_OTEL_WANDB_PROJECT") or r.get("WANDB_PROJECT"),
        entity=r.get("WANDB_ENTITY"),
        run_name=r.get("INSPECT_OTEL_WANDB_RUN_NAME"),
        tags=r.words("INSPECT_OTEL_WANDB_TAGS") or (),
        log_artifact=r.flag("INSPECT_OTEL_WANDB_LOG_ARTIFACT", True),
        files=r.words("INSPECT_OTEL_WANDB_FILES") or (),
        table_max_rows=r.integer("INSPECT_OTEL_WANDB_TABLE_MAX_ROWS", 10_000, 0),
        api_key=r.get("WANDB_API_KEY"),
        identity_token_file=r.get("WANDB_IDENTITY_TOKEN_FILE"),
        base_url=(r.get("WANDB_BASE_URL") or WANDB_DEFAULT_BASE_URL).rstrip("/"),
        mode=(r.get("WANDB_MODE") or "").lower() or None,
        netrc=Path(netrc) if netrc else (Path(home) / ".netrc" if home else None),
        silent=silent is None or silent.lower() not in ("false", "0", "no"),
    )


def _receiver(r: _Reader) -> ReceiverSettings:
    return ReceiverSettings(
        token=r.get("INSPECT_OTEL_RECEIVER_TOKEN"),
        max_body_bytes=r.integer(
            "INSPECT_OTEL_RECEIVER_MAX_BODY_BYTES", DEFAULT_RECEIVER_MAX_BODY_BYTES, 1024
        ),
        stale_after_s=r.number("INSPECT_OTEL_RECEIVER_STALE_AFTER", 3600.0, 0.0),
        spool_dir=Path(r.get("INSPECT_OTEL_RECEIVER_SPOOL_DIR") or "otel-receiver-spool"),
        spool_max_bytes=r.integer(
            "INSPECT_OTEL_RECEIVER_SPOOL_MAX_BYTES", DEFAULT_RECEIVER_SPOOL_MAX_BYTES, 1024 * 1024
        ),
        dedup_spans=r.integer("INSPECT_OTEL_RECEIVER_DEDUP_SPANS", 200_000, 0),
    )


def _metrics(r: _Reader) -> MetricsSettings:
    names = [w.lower() for w in r.words(OTEL_METRICS_EXPORTER) or ()]
    if bad := sorted(set(names) - {*METRIC_EXPORTERS, "none"}):
        r.problems.append(
            f"{OTEL_METRICS_EXPORTER} has unknown exporter(s) {bad} (accepted: file, otlp, console)"
        )
    temporality = (r.get(otel.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE) or "cumulative").lower()
    if temporality not in ("cumulative", "delta", "lowmemory"):
        r.problems.append(
            f"{otel.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE}={temporality!r} is not one of "
            "cumulative, delta, lowmemory (using cumulative)"
        )
    return MetricsSettings(
        exporters=tuple(n for n in METRIC_EXPORTERS if n in names and "none" not in names),
        otlp_endpoint=r.get(otel.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT),
        otlp_protocol=_protocol(r, otel.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL),
        interval_s=r.number(otel.OTEL_METRIC_EXPORT_INTERVAL, 10_000.0, 100.0) / 1000,
        delta=temporality in ("delta", "lowmemory"),
    )


# --- programmatic configuration (``otel_bridge.configure``) -----------------------------------
# Python settings are environment variables by another route: one overlay, one parser, and the
# worker processes inherit it in their environment.
_overlay: dict[str, str] = {}


def set_overlay(values: Mapping[str, str]) -> None:
    """Replace the programmatic settings (they win over the environment)."""
    _overlay.clear()
    _overlay.update(values)


def overlay() -> dict[str, str]:
    return dict(_overlay)


def environment() -> dict[str, str]:
    """The process environment with the programmatic settings on top (what settings are read from)."""
    return {**os.environ, **_overlay}


def environment_probe(names: Sequence[str]) -> tuple[object, ...]:
    """A cheap change signal (the variable counts, the values of ``names``): re-read when it changes."""
    return (len(os.environ), len(_overlay), *(_overlay.get(n, os.environ.get(n)) for n in names))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting; problems are returned, never raised."""
    r = _Reader(environment() if env is None else env)
    settings = Settings(
        core=_core(r), content=_content(r), weave=_weave(r), wandb=_wandb(r), receiver=_receiver(r)
    )
    return replace(settings, metrics=_metrics(r), problems=tuple(r.problems))


def tracing_enabled() -> tuple[bool, str | None]:
    """The hook's per-call switch: (on, a message when the value is not a boolean)."""
    raw = _overlay.get(ENABLED_VAR, os.environ.get(ENABLED_VAR))
    low = (raw or "").strip().lower()
    answer = low in TRUE_VALUES
    if raw is not None and not answer and low not in FALSE_VALUES:
        return False, f"{ENABLED_VAR}={raw!r} is not a boolean (use 1/true to enable); tracing is off."
    return answer, None


def enabled_raw() -> str | None:
    """The switch's raw value, for the hook's cache (one dict lookup per hook call)."""
    return _overlay.get(ENABLED_VAR, os.environ.get(ENABLED_VAR))


def default_span_dir() -> Path:
    """Where ``show`` and ``sync`` look when no path is given."""
    return load_settings().core.span_dir


def columns_forced() -> bool:
    """Whether the user fixed the terminal width (COLUMNS); rich reads it itself."""
    return "COLUMNS" in os.environ
