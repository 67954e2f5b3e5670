"""The pipe protocol between the eval's process and an exporter worker: frames, both directions.

Both ends import this module, so a frame is defined once. Over the worker's stdin: one OTLP/JSON
export request per line, or a control frame (``CONTROL_PREFIX`` + JSON: a flush, secret values
new to the eval's environment, or a finished task's log to copy redacted). Over its stdout: the
SDKs' own output, passed on by the eval's process, and acknowledgement frames (``ACK_PREFIX`` +
JSON): a flush's answer, the final report, or a note (a message for the user). Both prefixes
start with an ASCII record separator, which no JSON document or printed line starts with, so
frames are never confused with data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: The worker's exit status when it already told the user what failed.
REPORTED = 3
CONTROL_PREFIX = "\x1eotel-bridge-control "
ACK_PREFIX = "\x1eotel-bridge-ack "
_CONTROL_BYTES = CONTROL_PREFIX.encode()


@dataclass(frozen=True)
class Flush:
    """Parent → worker: deliver everything sent so far, answer within ``timeout_s``."""

    ident: int
    timeout_s: float


@dataclass(frozen=True)
class Secrets:
    """Parent → worker: secret values that entered the eval's environment after the worker started
    (``{value: variable name}``), so its redaction (the W&B log copy) knows them too. They travel
    over the pipe only; the worker keeps them in memory."""

    values: dict[str, str]


@dataclass(frozen=True)
class LogCopy:
    """Parent → worker: redact the finished task's log at ``log`` into ``dest`` (``logcopies``),
    here rather than in the eval's process; after every secrets frame sent before it."""

    log: str
    dest: str


@dataclass(frozen=True)
class Ack:
    """Worker → parent: a flush's answer (``ident``) or the final report (``final``)."""

    ident: int | None
    ok: bool
    final: bool = False
    report: dict[str, Any] = field(default_factory=dict)
    """What the worker could not deliver (OTLP: spans failed, last error, endpoint, kept files)."""
    note: str | None = None
    """A message for the user (a note frame: no ident, no report), said in the closing line."""


def flush_frame(flush: Flush) -> str:
    return CONTROL_PREFIX + json.dumps({"control": "flush", "id": flush.ident, "timeout": flush.timeout_s})


def secrets_frame(secrets: Secrets) -> str:
    return CONTROL_PREFIX + json.dumps({"control": "secrets", "values": secrets.values})


def logcopy_frame(copy: LogCopy) -> str:
    return CONTROL_PREFIX + json.dumps({"control": "logcopy", "log": copy.log, "dest": copy.dest})


def parse_control(line: bytes) -> Flush | Secrets | LogCopy | None:
    """The control frame in ``line``, or None when the line is span data."""
    if not line.startswith(_CONTROL_BYTES):
        return None
    doc = json.loads(line[len(_CONTROL_BYTES) :])
    if doc.get("control") == "secrets":
        values = doc.get("values")
        return Secrets({str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {})
    if doc.get("control") == "logcopy":
        return LogCopy(str(doc["log"]), str(doc["dest"]))
    return Flush(int(doc["id"]), float(doc.get("timeout", 10)))


def ack_frame(ack: Ack) -> str:
    doc: dict[str, Any] = {"ok": ack.ok, "report": ack.report}
    if ack.note is not None:
        doc["note"] = ack.note
    if ack.final:
        doc["final"] = True
    else:
        doc["ack"] = ack.ident
    return ACK_PREFIX + json.dumps(doc)


def parse_ack(line: str) -> Ack | None:
    """The acknowledgement in ``line``, or None when it is the SDKs' own output (or garbled)."""
    if not line.startswith(ACK_PREFIX):
        return None
    try:
        doc = json.loads(line[len(ACK_PREFIX) :])
    except ValueError:
        return None
    ident = doc.get("ack")
    report = doc.get("report")
    note = doc.get("note")
    return Ack(
        ident=ident if isinstance(ident, int) else None,
        ok=bool(doc.get("ok")),
        final=bool(doc.get("final")),
        report=report if isinstance(report, dict) else {},
        note=note if isinstance(note, str) else None,
    )


# --- the metrics frame (parent → worker): one collection of the bridge's metrics ----------------
# The eval's metric file line (OTLP/JSON ``ExportMetricsServiceRequest``, delta points) after
# ``METRICS_PREFIX``; the worker rebuilds and exports it (``exporters.worker_metrics``).
METRICS_PREFIX = "\x1eotel-bridge-metrics "
_METRICS_BYTES = METRICS_PREFIX.encode()


def metrics_frame(line: str) -> str:
    return METRICS_PREFIX + line


def parse_metrics(line: bytes) -> bytes | None:
    """The OTLP/JSON metrics request a metrics frame carries, or None for any other line."""
    return line[len(_METRICS_BYTES) :] if line.startswith(_METRICS_BYTES) else None
