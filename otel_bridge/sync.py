"""``otel-bridge sync``: deliver recorded span files later, with the same translation as live.

Sinks are idempotent, so a second sync, or a sync after a partial live upload, adds nothing.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from otel_bridge.config import CoreSettings, Settings
from otel_bridge.exporters.otlp import otlp_endpoint
from otel_bridge.exporters.worker_metrics import metrics_endpoint
from otel_bridge.metrics import summary as metric_file
from otel_bridge.otlp_json import json_to_request
from otel_bridge.records import FileReadReport, SpanRecord, read_span_file
from otel_bridge.sinks.base import DeliveryError

TARGETS = ("weave", "wandb", "otlp")
BATCH = 500


@dataclass
class SyncReport:
    files: int = 0
    spans: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    metric_points: int = 0  # from the metric files beside the span files (--to otlp)


def parse_targets(text: str, accepted: tuple[str, ...]) -> list[str]:
    """``--to a,b``: the targets, or ValueError with the message the command line prints."""
    targets = [t.strip() for t in text.split(",") if t.strip()]
    if not targets or any(t not in accepted for t in targets):
        raise ValueError(f"--to takes {', '.join(accepted)} (got {text!r})")
    return targets


def _batches(records: Iterator[SpanRecord], size: int) -> Iterator[list[SpanRecord]]:
    batch: list[SpanRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _describe_damage(report: FileReadReport) -> str | None:
    parts = []
    if report.bad_lines:
        parts.append(
            f"{len(report.bad_lines)} unreadable line(s) skipped (first: line {report.bad_lines[0][0]})"
        )
    if report.truncated_tail:
        parts.append("the last line was cut short (the process was probably killed while writing)")
    return f"{report.path}: " + "; ".join(parts) if parts else None


def otlp_post(body: bytes, core: CoreSettings, timeout: float = 10.0, url: str | None = None) -> None:
    """POST one protobuf export request to the configured OTLP/HTTP endpoint (traces unless ``url``)."""
    url = url or otlp_endpoint(replace(core, otlp_protocol="http/protobuf"))  # always OTLP/HTTP here
    headers = {"Content-Type": "application/x-protobuf"}
    for item in (core.otlp_headers or "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (user's endpoint)
        response.read()


def _sync_otlp(path: Path, report: SyncReport, core: CoreSettings) -> None:
    sent = 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                request = json_to_request(line)
            except ValueError:
                continue  # reported by the record pass
            try:
                otlp_post(request.SerializeToString(), core)
            except Exception as exc:
                report.problems.append(f"otlp: {path} line {number}: {type(exc).__name__}: {exc}")
                break
            sent += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    report.delivered["otlp"] = report.delivered.get("otlp", 0) + sent


def _sync_otlp_metrics(path: Path, report: SyncReport, settings: Settings) -> None:
    """The metric file beside the span file, to the OTLP metrics endpoint (OTLP/HTTP, like spans)."""
    url = metrics_endpoint(settings, protocol="http/protobuf")
    points, problem = metric_file.deliver(path, url, lambda body, to: otlp_post(body, settings.core, url=to))
    report.metric_points += points
    report.problems.extend([problem] if problem else [])


def sync_paths(
    paths: list[Path],
    targets: list[str],
    settings: Settings,
    on_progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Replay every span in ``paths`` into each target; returns counts and problems."""
    from otel_bridge.sinks.registry import make_record_sink

    report = SyncReport()
    # the destinations are the targets, not INSPECT_OTEL_EXPORTERS (sinks cross-reference each other)
    settings = settings.with_exporters(tuple(targets))
    sinks = []
    for name in targets:
        if name == "otlp":
            continue
        sink = make_record_sink(name, settings)
        if sink is None:
            report.problems.append(f"unknown target {name!r} (accepted: {', '.join(TARGETS)})")
        else:
            sinks.append(sink)
    total_bytes = sum(p.stat().st_size for p in paths if p.exists()) or 1
    done_bytes = 0
    for path in paths:
        report.files += 1
        file_report = FileReadReport(path)
        for batch in _batches(read_span_file(path, file_report), BATCH):
            report.spans += len(batch)
            for sink in sinks:
                try:
                    sink.consume(batch)
                except DeliveryError:
                    continue  # the sink keeps what is due and retries it; flush below says
                report.delivered[sink.name] = report.delivered.get(sink.name, 0) + len(batch)
        damage = _describe_damage(file_report)
        if damage:
            report.damaged.append(damage)
        if "otlp" in targets:
            _sync_otlp(path, report, settings.core)
            _sync_otlp_metrics(path, report, settings)
        done_bytes += path.stat().st_size
        if on_progress:
            on_progress(done_bytes, total_bytes)
    for sink in sinks:
        sink.finalize_incomplete("the task never finished (the process stopped before its end was recorded)")
        confirmed = sink.flush(settings.core.flush_timeout_s * 12)
        problem = sink.problem()
        if problem:
            report.problems.append(f"{sink.name}: {problem}")
        elif not confirmed:
            report.problems.append(
                f"{sink.name}: not every write was confirmed; "
                "run the same sync again (it adds only what is missing)"
            )
        sink.close()
    return report
