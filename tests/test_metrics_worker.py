"""The metrics worker's rebuild, against the OpenTelemetry SDK's own aggregation (issue 15).

The eval's process sends the worker its metric-file lines (delta points); the worker adds them up
into the cumulative points the OTLP endpoint gets. The oracle is the SDK itself: one
MeterProvider with two readers, a delta one (its collections, encoded by the upstream encoder,
are the lines) and a cumulative one (what the SDK would have exported in the eval's process).
Also: with the ``delta`` preference a line is passed on unchanged, to the byte of the upstream
encoding; and a real eval's OTLP metrics do not load the OTLP metric exporter in its process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bridge_demo import arithmetic
from google.protobuf import json_format
from inspect_ai import Task, eval
from inspect_ai.scorer import includes
from inspect_ai.solver import Generate, TaskState, solver
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource

from otel_bridge.exporters.worker_metrics import Accumulator, parse_request
from otel_bridge.hook import session as sessions
from tests.support.bridge import BridgeEnv, run_cli, subprocess_env
from tests.test_metrics import read_metric_file, total

# the SDK's "delta" preference, as the eval's metric-file reader uses it (gauges stay cumulative)
DELTA = {kind: AggregationTemporality.DELTA for kind in (Counter, Histogram, ObservableCounter)}


def _line(data: MetricsData | None) -> bytes:
    """A metric-file line as the upstream encoder writes it (OTLP/JSON)."""
    assert data is not None
    doc = json_format.MessageToDict(encode_metrics(data), use_integers_for_enums=True)
    return json.dumps(doc).encode()


def _points(request: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]]:
    """Every point of a protobuf request by (metric, attributes), with its values and temporality."""
    out = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for p in data.data_points:
                    attrs = tuple(sorted((a.key, a.value.string_value) for a in p.attributes))
                    fields = json_format.MessageToDict(p)
                    fields.pop("timeUnixNano", None)  # each collection's own time
                    # a series' start: each reader's own (compared apart, below)
                    fields["start"] = int(fields.pop("startTimeUnixNano", 0))
                    fields["kind"] = kind
                    fields["temporality"] = getattr(data, "aggregation_temporality", None)
                    fields["monotonic"] = getattr(data, "is_monotonic", None)
                    fields["unit"], fields["description"] = metric.unit, metric.description
                    out[(metric.name, attrs)] = fields
    return out


def _record(meter: Any, phase: int) -> None:
    bounds = [1.0, 10.0, 100.0]
    tokens = meter.create_histogram("tokens", "{token}", "tokens", explicit_bucket_boundaries_advisory=bounds)
    calls = meter.create_counter("calls", "{call}", "calls")
    expected = meter.create_gauge("expected", "{sample}", "expected")
    if phase == 0:
        tokens.record(7, {"model": "careful", "type": "input"})
        tokens.record(250, {"model": "careful", "type": "input"})
        tokens.record(3, {"model": "hasty", "type": "output"})
        calls.add(2, {"model": "careful"})
        expected.set(6, {"task": "arithmetic"})
    else:  # a second collection: one series grows, one is new, one is left alone
        tokens.record(0.5, {"model": "careful", "type": "input"})
        tokens.record(40, {"model": "hasty", "type": "input"})
        calls.add(3, {"model": "careful"})
        calls.add(1, {"model": "hasty"})
        expected.set(8, {"task": "arithmetic"})


def test_added_up_lines_equal_the_sdks_cumulative_points() -> None:
    delta, cumulative = InMemoryMetricReader(DELTA), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[delta, cumulative], resource=Resource({"service.name": "x"}))
    meter = provider.get_meter("otel_bridge", "1")
    acc = Accumulator()
    for phase in (0, 1):
        _record(meter, phase)
        acc.add(parse_request(_line(delta.get_metrics_data())))
    want = _points(encode_metrics(cumulative.get_metrics_data()))  # type: ignore[arg-type]
    got_request = encode_metrics(acc.metrics_data())
    got = _points(got_request)
    starts = {key: (got[key].pop("start"), want[key].pop("start")) for key in want if key in got}
    assert got == want
    # a series' start: the delta window it first appeared in began before the SDK's first
    # measurement of it (or is the SDK's own start, for the gauge)
    assert all(mine <= sdk for mine, sdk in starts.values()), starts
    assert len(got) == 6  # 3 token series, 2 call series, 1 gauge
    assert (
        got_request.resource_metrics[0].resource
        == encode_metrics(
            cumulative.get_metrics_data()  # type: ignore[arg-type]
        )
        .resource_metrics[0]
        .resource
    )
    provider.shutdown()


def test_a_delta_line_is_passed_on_unchanged() -> None:
    delta = InMemoryMetricReader(DELTA)
    provider = MeterProvider(metric_readers=[delta], resource=Resource({"service.name": "x"}))
    _record(provider.get_meter("otel_bridge", "1"), 0)
    data = delta.get_metrics_data()
    assert data is not None
    acc = Accumulator(cumulative=False)
    acc.add(parse_request(_line(data)))
    assert encode_metrics(acc.metrics_data()) == encode_metrics(data)
    provider.shutdown()


def test_the_eval_process_never_loads_the_otlp_metric_exporter(tmp_path: Path) -> None:
    """OTLP metrics on: the eval's own process imports no OTLP exporter, HTTP or gRPC (the worker does)."""
    env = BridgeEnv(tmp_path)
    script = (
        "import sys\n"
        "from inspect_ai import eval\n"
        "sys.path.insert(0, 'examples')\n"
        "from bridge_demo import arithmetic\n"
        "log = eval(arithmetic(samples=2), model='offline/careful', display='none')[0]\n"
        "assert log.status == 'success'\n"
        "exporters = ('opentelemetry.exporter.otlp.proto.http', 'opentelemetry.exporter.otlp.proto.grpc')\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(exporters)))\n"
    )
    extra = {
        **env.env(),
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:9/v1/metrics",  # discard port: refused
    }
    result = run_cli([sys.executable, "-c", script], subprocess_env(extra))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stdout, result.stdout
    assert "metrics were not delivered" in result.stderr  # and the worker did try


@solver
def _kill_metrics_worker():  # type: ignore[no-untyped-def]
    """Kills the metrics worker process in the middle of the eval (as an OOM killer would)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        session = sessions.current()
        assert session is not None and session.pipeline.metrics_worker is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(session.pipeline.metrics_worker.worker.pid, signal.SIGKILL)
        return await generate(state)

    return solve


def test_a_dead_metrics_worker_does_not_touch_the_eval(
    bridge: BridgeEnv, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
    started = time.monotonic()
    (log,) = eval(
        Task(dataset=arithmetic(samples=4).dataset, solver=[_kill_metrics_worker()], scorer=includes()),
        model="offline/careful",
        display="none",
    )
    elapsed = time.monotonic() - started
    assert log.status == "success" and log.results is not None
    assert log.results.completed_samples == 4
    sessions._close_at_exit()  # what exit does: must not hang on the dead worker
    assert time.monotonic() - started < elapsed + 15
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "metrics" in line]
    assert len(lines) == 1, err
    assert "metrics exporter process failed" in lines[0] and "--to otlp" in lines[0]
    (metric_file,) = bridge.metric_files()  # the eval's side kept writing every point
    assert total(read_metric_file(metric_file), "inspect.samples.completed", "value") == 4
