"""The receiver's redaction: spans from any OTLP sender pass the same rules as the hook's.

``otel-bridge serve`` accepts spans from senders that are not the hook (another SDK, a
collector, a hand-written client), so what they send has not been through the hook's edge pass.
``scrub_records`` runs once per decoded batch, when the receiver's worker takes a spool entry for
its sinks: before any sink (span files, Weave, W&B), after the spool. The spool stays the
faithful record of what was accepted (replayed after a crash, moved to the dead-letter file,
redacted again on each delivery with the patterns of the day) and a segment is deleted once its
entries are delivered (docs/conventions.md, "The receiver").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from otel_bridge.config import environment, environment_probe, load_settings
from otel_bridge.records import SpanRecord
from otel_bridge.redact import REDACTED, Redactor, is_secret_key

_redactor: Redactor | None = None


def _process_redactor() -> Redactor:
    """One per receiver process: its settings' patterns, its secret-named environment values."""
    global _redactor
    if _redactor is None:
        patterns = load_settings().content.redact_patterns
        _redactor = Redactor(environment, patterns=patterns, probe=environment_probe)
    return _redactor


def scrub_records(records: Sequence[SpanRecord], redactor: Redactor | None = None) -> list[SpanRecord]:
    """Every string of every span (attributes, event attributes, resource, status message)
    redacted: known secret values, token shapes, user patterns, and the value of any attribute
    whose key looks secret (``api_key``, ``authorization``...: other senders name them so)."""
    redactor = redactor or _process_redactor()
    redactor.refresh()
    out: list[SpanRecord] = []
    for record in records:
        _scrub(record.attributes, redactor)
        _scrub(record.resource, redactor)
        for event in record.events:
            _scrub(event.attributes, redactor)
        message = redactor.text(record.status_message) if record.status_message else ""
        out.append(record if message is record.status_message else replace(record, status_message=message))
    return out


def _scrub(attrs: dict[str, Any], redactor: Redactor) -> None:
    for key, value in attrs.items():
        if isinstance(value, str):
            attrs[key] = REDACTED if value and is_secret_key(key) else redactor.text(value)
        elif isinstance(value, (list, tuple, dict)):
            attrs[key] = redactor.structure(value, is_secret_key(key))
