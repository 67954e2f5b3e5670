"""Helpers for the end-to-end tests: eval process → collector → (receiver → Weave / W&B, Jaeger, stripped).

Why this exists: ``tests/test_e2e_collector.py`` runs every piece as a real process -- ``inspect eval``
with the bridge's OTLP exporter, the built collector with ``collector/otelcol-config.yaml``, Jaeger,
``otel-bridge serve`` with the Weave and W&B sinks, and ``otel-bridge sync`` as the reference -- and
compares what each destination holds with the eval's own span file. These helpers start the
receiver on fixed ports (so a restart comes back at the address the collector retries), build the
environments, and turn Jaeger's and the receiver's answers into comparable shapes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_bridge.conventions import SPAN_SAMPLE
from otel_bridge.otlp_json import json_to_request
from otel_bridge.receiver.requests import subset
from otel_bridge.records import SpanRecord, from_request, read_span_file
from tests.support.bridge import INSPECT, OTEL_BRIDGE, ROOT, clean_env, subprocess_env
from tests.support.collector import ManagedProcess, free_port, http_get
from tests.weave_server.harness import WeaveServer

T = TypeVar("T")

DEMO_TASK = str(ROOT / "examples" / "bridge_demo.py@arithmetic")
WANDB_PROJECT = "e2e-collector"

# A span tree as comparable data: span_id -> (name, parent span_id or "").
Tree = dict[str, tuple[str, str]]


def poll(fetch: Callable[[], T], ready: Callable[[T], bool], timeout: float, what: str) -> T:
    """Call ``fetch`` until ``ready(value)``; TimeoutError naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value):
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached after {timeout:.0f} s; last: {str(value)[:2000]}")
        time.sleep(0.25)


# --- environments ---------------------------------------------------------------------------------
def sink_env(server: WeaveServer, weave_project: str, wandb_dir: Path) -> dict[str, str]:
    """Env of a process running the Weave + W&B sinks (the receiver, or ``otel-bridge sync``).

    Both get the same settings, so the only difference between them is the path the spans took.
    ``INSPECT_OTEL_EXPORTERS=weave,wandb`` turns on the Weave <-> W&B cross-references on both sides.
    """
    entity, project = weave_project.split("/")
    env = subprocess_env()  # no INSPECT_OTEL_* / OTEL_* / WANDB_* / WF_* from the developer's shell
    env.update({k: v for k, v in server.env(entity, project).items() if clean_env(k)})
    wandb_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "INSPECT_OTEL_EXPORTERS": "weave,wandb",
            "INSPECT_OTEL_WEAVE_PROJECT": weave_project,
            "INSPECT_OTEL_WANDB_PROJECT": WANDB_PROJECT,
            "INSPECT_OTEL_FLUSH_TIMEOUT": "30",
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(wandb_dir),
            "WANDB_DATA_DIR": str(wandb_dir / "data"),
            "WANDB_CACHE_DIR": str(wandb_dir / "cache"),
        }
    )
    return env


def eval_env(span_dir: Path, otlp_endpoint: str, service: str) -> dict[str, str]:
    """Env of ``inspect eval`` exporting to span files and to the collector over OTLP/HTTP."""
    return subprocess_env(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_EXPORTERS": "file,otlp",
            "INSPECT_OTEL_DIR": str(span_dir),
            "INSPECT_REQUIRED_HOOKS": "otel_bridge",
            "INSPECT_OTEL_FLUSH_TIMEOUT": "30",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_SERVICE_NAME": service,  # keeps this eval's traces apart in the shared Jaeger
        }
    )


def eval_argv(log_dir: Path, models: str, *args: str) -> list[str]:
    return [
        INSPECT,
        "eval",
        DEMO_TASK,
        "--model",
        models,
        "--log-dir",
        str(log_dir),
        "--display",
        "none",
        *args,
    ]


def sync(span_files: list[Path], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``otel-bridge sync FILES --to weave,wandb``: the in-process translation of the same spans."""
    return subprocess.run(
        [OTEL_BRIDGE, "sync", *map(str, span_files), "--to", "weave,wandb", "--quiet"],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


# --- the receiver -----------------------------------------------------------------------------------
class Receiver(ManagedProcess):
    """``python -m otel_bridge.receiver.cli serve --to weave,wandb`` on a port fixed at construction.

    The collector's BRIDGE_RECEIVER_ENDPOINT names that port, so ``start()`` after ``stop()`` brings
    the receiver back where the collector keeps retrying, with the same spool directory.
    """

    def __init__(self, workdir: Path, env: Mapping[str, str], to: str = "weave,wandb") -> None:
        self.http_port = free_port()
        self.spool_dir = workdir / "spool"
        self.span_dir = workdir / "spans"  # where ``--to ...,file`` writes what the receiver consumed
        argv = [
            sys.executable, "-m", "otel_bridge.receiver.cli", "serve", "--host", "127.0.0.1",
            "--port", str(self.http_port), "--no-grpc", "--to", to,
            "--spool-dir", str(self.spool_dir), "--span-dir", str(self.span_dir),
        ]  # fmt: skip
        super().__init__("receiver", argv, env, workdir / "receiver.log")

    @property
    def endpoint(self) -> str:
        """Base URL for the collector's otlp_http exporter."""
        return f"http://127.0.0.1:{self.http_port}"

    def health(self) -> dict[str, Any]:
        status, body = http_get(f"{self.endpoint}/healthz", timeout=2.0)
        doc: dict[str, Any] = json.loads(body) if body.startswith(b"{") else {"http_status": status}
        return doc

    def ready(self) -> bool:
        return http_get(f"{self.endpoint}/healthz", timeout=1.0)[0] == 200

    def wait_idle(self, min_delivered: int, timeout: float) -> dict[str, Any]:
        """Until at least ``min_delivered`` spans reached the sinks and nothing is left in the spool."""
        box: list[dict[str, Any]] = []

        def check() -> bool:
            doc = self.health()
            box[:] = [doc]
            return int(doc.get("delivered_spans", -1)) >= min_delivered and doc.get("pending_bytes") == 0

        try:
            self.wait_until(check, timeout, f"idle with {min_delivered} span(s) delivered")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nlast health: {box}") from exc
        return box[0]


# --- span files -------------------------------------------------------------------------------------
@dataclass
class EvalRun:
    """One finished ``inspect eval``: its logs, span files and what the process printed."""

    service: str
    log_dir: Path
    span_dir: Path
    proc: subprocess.CompletedProcess[str]

    @property
    def span_files(self) -> list[Path]:
        return sorted(self.span_dir.glob("*.jsonl"))

    def spans(self) -> list[SpanRecord]:
        return [r for f in self.span_files for r in read_span_file(f)]


def traces_of(spans: list[SpanRecord]) -> dict[str, Tree]:
    """trace_id -> span tree, from span records (duplicates collapse)."""
    out: dict[str, Tree] = defaultdict(dict)
    for s in spans:
        out[s.trace_id][s.span_id] = (s.name, s.parent_id or "")
    return dict(out)


def jaeger_traces(traces: list[dict[str, Any]]) -> dict[str, Tree]:
    """trace_id -> span tree, from Jaeger's ``/api/traces`` JSON (ids normalised to OTLP hex)."""
    out: dict[str, Tree] = defaultdict(dict)
    for trace in traces:
        for js in trace["spans"]:
            trace_id = f"{int(js['traceID'], 16):032x}"
            parents = [r for r in js.get("references") or [] if r["refType"] == "CHILD_OF"]
            parent = f"{int(parents[0]['spanID'], 16):016x}" if parents else ""
            out[trace_id][f"{int(js['spanID'], 16):016x}"] = (js["operationName"], parent)
    return dict(out)


def jaeger_span_count(traces: list[dict[str, Any]]) -> int:
    """Span entries Jaeger returned, duplicates included."""
    return sum(len(t["spans"]) for t in traces)


def normalise_projects(value: Any, *projects: str) -> Any:
    """``value`` with every given Weave project id replaced by ``P`` (two projects become comparable)."""
    text = json.dumps(value, sort_keys=True, default=str)
    for project in projects:
        text = text.replace(project, "P")
    return json.loads(text)


def span_file_requests(files: list[Path]) -> list[ExportTraceServiceRequest]:
    """The export requests recorded in span files (one per line), in the order the eval made them."""
    return [json_to_request(line) for f in files for line in f.read_bytes().splitlines() if line.strip()]


def child_after_root(requests: list[ExportTraceServiceRequest]) -> list[ExportTraceServiceRequest]:
    """The same spans, but each sample trace's first-recorded descendant arrives right after its root.

    That is what two queue consumers racing after a collector restart did in this test suite: a
    sample span's ``inspect.solver`` child, recorded in an earlier batch, reached the receiver in the
    request *after* the one holding the sample span. Everything else keeps its place.
    """
    records = [from_request(r) for r in requests]
    roots = {s.trace_id for recs in records for s in recs if s.name == SPAN_SAMPLE and not s.parent_id}
    moved: dict[str, tuple[int, bytes]] = {}  # trace -> (request index, key) of the descendant moved
    for i, recs in enumerate(records):
        for s in recs:
            if s.trace_id in roots and s.parent_id and s.trace_id not in moved:
                moved[s.trace_id] = (i, bytes.fromhex(s.trace_id + s.span_id))
    root_at = {
        s.trace_id: i
        for i, recs in enumerate(records)
        for s in recs
        if s.trace_id in moved and not s.parent_id
    }
    out: list[ExportTraceServiceRequest] = []
    for i, (request, recs) in enumerate(zip(requests, records, strict=True)):
        keep = {bytes.fromhex(s.trace_id + s.span_id) for s in recs}
        keep -= {key for j, key in moved.values() if j == i}
        if keep:
            out.append(subset(request, keep))
        for trace_id, at in root_at.items():
            if at == i:
                j, key = moved[trace_id]
                out.append(subset(requests[j], {key}))
    return out


def without_call_trees(nodes: list[Any]) -> list[Any]:
    """``canonical()`` of a Weave project cut below the prediction rows, without call summaries.

    What remains is every evaluation and every row with its inputs, output (scores, latency,
    Inspect's metrics), attributes and timings. Summaries go too: Weave aggregates them from the
    call trees underneath (usage per model, status counts), so they belong with the trees, which
    ``test_receiver_result_does_not_depend_on_arrival_order`` compares.
    """

    def prune(node: dict[str, Any], depth: int) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k != "summary"}
        out["children"] = [prune(c, depth + 1) for c in node["children"]] if depth == 0 else []
        return out

    return [prune(n, 0) for n in nodes]
