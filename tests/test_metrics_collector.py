"""Eval metrics through the real collector to its Prometheus endpoint, and the Grafana dashboard.

The collector is built from ``collector/builder-config.yaml`` and runs the very
``otelcol-config.yaml`` docker-compose mounts (tests/support/collector.py). Real evals export
their metrics over OTLP/HTTP; the test scrapes the collector's Prometheus endpoint (the text
exposition a Prometheus server reads) and finds the totals of Inspect's own log. Each eval gets
its own ``service.name``, which the exporter turns into the ``job`` label, so the tests do not see
each other's series. Then the dashboard: every query names a metric that scrape exposes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from inspect_ai.log import EvalLog, read_eval_log

from tests.support.bridge import OTEL_BRIDGE, BridgeEnv, inspect_eval, run_cli, subprocess_env
from tests.support.collector import BUILD_TIMEOUT_S, Binaries, Collector, free_port, http_get

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 600)

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "collector" / "grafana" / "dashboards" / "inspect-evals.json"
TASK = "examples/bridge_demo.py@arithmetic"
TRANSIENT = "transient failure"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Scrape = list[tuple[str, dict[str, str], float]]


def parse_exposition(text: str) -> Scrape:
    """Prometheus text exposition → (metric, labels, value) samples (comments skipped)."""
    out: Scrape = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        out.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return out


def scraped(scrape: Scrape, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in scrape if n == name and labels.items() <= lab.items())


@pytest.fixture(scope="module")
def collector(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """The collector with its metrics pipeline; its trace destinations are closed ports (unused)."""
    col = Collector(
        binaries.collector,
        tmp_path_factory.mktemp("collector"),
        bridge_endpoint=f"http://127.0.0.1:{free_port()}",
        jaeger_endpoint=f"127.0.0.1:{free_port()}",
        env={"INSPECT_OTEL_RECEIVER_TOKEN": "unused"},
    )
    col.start()
    col.wait_until(col.ready, 60, "collector health check")
    yield col
    col.stop()


def scrape(col: Collector) -> Scrape:
    status, body = http_get(col.prometheus_url)
    assert status == 200, body[:500]
    return parse_exposition(body.decode())


def wait_for(col: Collector, job: str, name: str, value: float, timeout: float = 30.0) -> Scrape:
    """Poll the scrape until ``name`` of ``job`` totals ``value`` (or fail with what it had)."""
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(col)
        if scraped(got, name, job=job) == value or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def run_eval(tmp: Path, service: str, extra: dict[str, str], *args: str) -> list[EvalLog]:
    env = BridgeEnv(tmp)
    full = {**env.env(), "OTEL_SERVICE_NAME": service, **extra}
    result = inspect_eval([TASK, "--model", "offline/careful,offline/hasty", *args], subprocess_env(full))
    assert result.returncode == 0, result.stderr[-3000:]
    return [read_eval_log(str(p)) for p in sorted(env.log_dir.glob("*.eval"))]


def assert_totals(got: Scrape, job: str, logs: list[EvalLog]) -> None:
    """The scrape's totals are the log's: tokens, samples, retried attempts, scores."""
    for log in logs:
        model, name = log.eval.model, log.eval.model.split("/", 1)[1]
        usage = log.stats.model_usage[model]
        for token_type, expected in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            labels = {"job": job, "gen_ai_request_model": name, "gen_ai_token_type": token_type}
            assert scraped(got, "gen_ai_client_token_usage_sum", **labels) == expected, (model, token_type)
        samples = log.samples or []
        assert log.results is not None
        assert scraped(got, "inspect_samples_completed_total", job=job, inspect_model=model) == len(samples)
        assert (
            scraped(got, "inspect_samples_expected", job=job, inspect_model=model)
            == log.results.total_samples
        )
        failed = sum(
            1 for s in samples for e in s.events if e.event == "model" and TRANSIENT in (e.error or "")
        )
        assert scraped(got, "inspect_model_retries_total", job=job, gen_ai_request_model=name) == failed
        score = {"job": job, "inspect_model": model, "gen_ai_evaluation_name": "pattern"}
        assert scraped(got, "inspect_score_count", **score) == len(samples)
        correct = sum(1 for s in samples if s.scores and s.scores["pattern"].value == "C")
        assert scraped(got, "inspect_score_sum", **score) == correct


@pytest.fixture(scope="module")
def live(collector: Collector, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[EvalLog], Scrape]:
    """An eval exporting its metrics live (OTLP/HTTP base endpoint, as compose's README says)."""
    job = f"metrics-live-{uuid.uuid4().hex[:8]}"
    extra = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint}
    logs = run_eval(
        tmp_path_factory.mktemp("live"),
        job,
        {**extra, "INSPECT_OTEL_EXPORTERS": "file"},
        "-M",
        "fail_every=4",
    )
    samples = sum(len(log.samples or []) for log in logs)
    return job, logs, wait_for(collector, job, "inspect_samples_completed_total", samples)


def test_live_export_reaches_the_prometheus_endpoint(live: tuple[str, list[EvalLog], Scrape]) -> None:
    job, logs, got = live
    assert_totals(got, job, logs)
    # the standard exposition: histograms as _bucket/_sum/_count, seconds in the name, counters _total
    names = {n for n, lab, _ in got if lab.get("job") == job}
    assert {"gen_ai_client_operation_duration_seconds_bucket", "inspect_tool_calls_total"} <= names


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_grpc_export_reaches_the_prometheus_endpoint(
    collector: Collector, tmp_path: Path, temporality: str
) -> None:
    """``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc`` to the collector's OTLP/gRPC port (which an
    OTLP/HTTP request could not reach): the scrape has the log's totals. The spans' protocol
    variable says HTTP, to show the metrics' own variable is the one read. With the ``delta``
    preference the worker passes each line on and the collector's exporter adds them up."""
    job = f"metrics-grpc-{temporality}-{uuid.uuid4().hex[:8]}"
    extra = {
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://{collector.otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": temporality,
        "OTEL_METRIC_EXPORT_INTERVAL": "300",  # several exports per eval: deltas to add up
        "INSPECT_OTEL_EXPORTERS": "file",
    }
    logs = run_eval(tmp_path, job, extra, "-M", "fail_every=4")
    samples = sum(len(log.samples or []) for log in logs)
    assert_totals(wait_for(collector, job, "inspect_samples_completed_total", samples), job, logs)


def test_metrics_off_exports_nothing(collector: Collector, tmp_path: Path) -> None:
    job = f"metrics-off-{uuid.uuid4().hex[:8]}"
    extra = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint,
        "INSPECT_OTEL_EXPORTERS": "file,otlp",
    }
    run_eval(tmp_path, job, extra, "-T", "samples=2")
    # the eval has exited: an export it made was answered after the exporter took it in
    assert not [n for n, lab, _ in scrape(collector) if lab.get("job") == job]
    assert not list(tmp_path.rglob("*.metrics.jsonl"))


def test_sync_delivers_a_recorded_metric_file(collector: Collector, tmp_path: Path) -> None:
    """Metrics recorded to the file only, delivered later by ``otel-bridge sync --to otlp``."""
    job = f"metrics-sync-{uuid.uuid4().hex[:8]}"
    logs = run_eval(tmp_path, job, {"OTEL_METRICS_EXPORTER": "file"}, "-M", "fail_every=3")
    assert not [n for n, lab, _ in scrape(collector) if lab.get("job") == job]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint}
    result = run_cli(
        [OTEL_BRIDGE, "sync", str(tmp_path / "spans"), "--to", "otlp", "--quiet"], subprocess_env(env)
    )
    assert result.returncode == 0, result.stderr
    assert "metric points to otlp" in result.stdout
    samples = sum(len(log.samples or []) for log in logs)
    assert_totals(wait_for(collector, job, "inspect_samples_completed_total", samples), job, logs)


_FUNCTIONS = {
    "sum", "rate", "increase", "histogram_quantile", "by", "without", "on", "ignoring", "max", "min",
    "avg", "count", "clamp_min", "topk", "or", "and", "unless", "offset", "le", "irate", "sort_desc",
}  # fmt: skip


def dashboard_queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", []) if "expr" in t]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers right before a ``{`` selector."""
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)) - _FUNCTIONS


def test_dashboard_queries_name_metrics_the_scrape_exposes(live: tuple[str, list[EvalLog], Scrape]) -> None:
    job, _, got = live
    exposed = {n for n, lab, _ in got if lab.get("job") == job}
    queries = dashboard_queries()
    assert len(queries) >= 6
    for expr in queries:
        names = metric_names(expr)
        assert names, f"query names no metric selector: {expr}"
        assert names <= exposed, f"{expr}: {sorted(names - exposed)} not in the scrape"
    # the panels the issue asks for: progress, tokens/min, p50/p95 latency, errors, retries, score
    joined = "\n".join(queries)
    for needle in (
        "inspect_samples_expected",
        "gen_ai_client_token_usage_sum",
        "histogram_quantile(0.95",
        "histogram_quantile(0.5",
        "error_type",
        "inspect_model_retries_total",
        "inspect_score_sum",
    ):
        assert needle in joined, needle


def test_compose_scrapes_the_collector_and_provisions_the_dashboard() -> None:
    """Static: Prometheus scrapes the port the collector's exporter listens on; Grafana has the dashboard."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    listen = compose["otel-collector"]["environment"]["OTELCOL_PROMETHEUS_ENDPOINT"]
    scrape_config = yaml.safe_load((REPO / "collector" / "prometheus.yml").read_text())
    targets = [
        t for job in scrape_config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert targets == [f"otel-collector:{listen.rsplit(':', 1)[1]}"]
    assert "./collector/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in compose["prometheus"]["volumes"]
    mounts = {
        target: source for source, target in (str(v).split(":")[:2] for v in compose["grafana"]["volumes"])
    }
    assert (REPO / mounts["/var/lib/grafana/dashboards"].removeprefix("./") / DASHBOARD.name).is_file()
    datasource = yaml.safe_load(
        (REPO / "collector/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    uids = {d["uid"] for d in datasource["datasources"]}
    doc = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in doc["panels"]} == uids == {"prometheus"}
