"""OpenTelemetry metrics of a real eval (issue 15): the metric file against Inspect's own log.

Real evals on the offline provider (``fail_every`` makes it fail transiently, so Inspect retries),
read back from the ``.metrics.jsonl`` file as plain OTLP/JSON — parsed here, not with the bridge's
own reader — and compared with ``read_eval_log``: tokens per model, samples, retried attempts,
score counts and sums. Also: metrics off writes no metric file; an unreachable metrics endpoint
leaves the eval unchanged and says so in one line.
"""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog, read_eval_log

from tests.support.bridge import OTEL_BRIDGE, BridgeEnv, inspect_eval, run_cli, subprocess_env

TASK = "examples/bridge_demo.py@arithmetic"
MODELS = "offline/careful,offline/hasty"
TRANSIENT = "transient failure"  # the offline provider's retried error (examples/bridge_examples)

Series = dict[tuple[str, frozenset[tuple[str, Any]]], dict[str, float]]


def read_metric_file(path: Path) -> Series:
    """Every series' total: delta sums and histograms added up, gauges' last value (plain JSON)."""
    series: Series = defaultdict(lambda: {"value": 0.0, "count": 0.0, "sum": 0.0})
    for line in path.read_text(encoding="utf-8").splitlines():
        for rm in json.loads(line)["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for metric in sm["metrics"]:
                    for kind, data in metric.items():
                        if kind not in ("sum", "gauge", "histogram"):
                            continue
                        if kind != "gauge":
                            assert data["aggregationTemporality"] == 1  # the file holds deltas
                        for point in data["dataPoints"]:
                            attrs = frozenset(
                                (a["key"], next(iter(a["value"].values())))
                                for a in point.get("attributes", [])
                            )
                            slot = series[(metric["name"], attrs)]
                            if kind == "histogram":
                                slot["count"] += int(point.get("count", 0))
                                slot["sum"] += point.get("sum", 0.0)
                            elif kind == "gauge":
                                slot["value"] = float(point.get("asInt", point.get("asDouble", 0)))
                            else:
                                slot["value"] += float(point.get("asInt", point.get("asDouble", 0)))
    return dict(series)


def total(series: Series, name: str, field: str, **match: Any) -> float:
    """Sum of ``field`` over the series of ``name`` whose attributes include ``match``."""
    wanted = {k.replace("__", "."): v for k, v in match.items()}
    return sum(
        point[field]
        for (metric, attrs), point in series.items()
        if metric == name and wanted.items() <= dict(attrs).items()
    )


def _logs(env: BridgeEnv) -> list[EvalLog]:
    return [read_eval_log(str(p)) for p in sorted(env.log_dir.glob("*.eval"))]


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> tuple[BridgeEnv, list[EvalLog], str]:
    env = BridgeEnv(tmp_path_factory.mktemp("metered"))
    extra = {**env.env(), "OTEL_METRICS_EXPORTER": "file", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    # --limit and --epochs: the expected samples are the limited dataset × epochs
    args = [TASK, "--model", MODELS, "-M", "fail_every=4", "--limit", "5", "--epochs", "2"]
    result = inspect_eval(args, subprocess_env(extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return env, _logs(env), result.stderr


def test_metric_file_sits_beside_the_span_file(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, _, stderr = metered
    spans = env.files()
    assert len(spans) == 1 and env.metric_files() == [spans[0].with_name(spans[0].stem + ".metrics.jsonl")]
    assert "metric" not in stderr.lower()  # nothing to say when everything was written


def test_token_sums_equal_the_log(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, logs, _ = metered
    series = read_metric_file(env.metric_files()[0])
    assert len(logs) == 2
    for log in logs:
        model = log.eval.model  # offline/careful
        usage = log.stats.model_usage[model]
        name = model.split("/", 1)[1]
        for token_type, expected in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            got = total(
                series,
                "gen_ai.client.token.usage",
                "sum",
                gen_ai__request__model=name,
                gen_ai__token__type=token_type,
                gen_ai__provider__name="offline",
            )
            assert got == expected, (model, token_type)
        calls = [e for s in log.samples or [] for e in s.events if e.event == "model"]
        assert total(series, "gen_ai.client.operation.duration", "count", gen_ai__request__model=name) == len(
            calls
        )


def test_sample_counts_and_progress_equal_the_log(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, logs, _ = metered
    series = read_metric_file(env.metric_files()[0])
    for log in logs:
        task, model = log.eval.task, log.eval.model
        assert log.results is not None
        assert (
            total(
                series, "inspect.samples.completed", "value", inspect__model=model, inspect__task__name=task
            )
            == len(log.samples or [])
            == log.results.completed_samples
        )
        assert (
            total(series, "inspect.samples.expected", "value", inspect__model=model)
            == log.results.total_samples
        )
        errors = sum(1 for s in log.samples or [] if s.error is not None)
        assert (
            total(
                series,
                "inspect.samples.completed",
                "value",
                inspect__model=model,
                inspect__sample__status="error",
            )
            == errors
        )
        assert total(series, "inspect.sample.working_time", "count", inspect__model=model) == len(
            log.samples or []
        )


def test_retries_equal_the_retried_attempts_in_the_log(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, logs, _ = metered
    series = read_metric_file(env.metric_files()[0])
    for log in logs:
        name = log.eval.model.split("/", 1)[1]
        failed = [
            e
            for s in log.samples or []
            for e in s.events
            if e.event == "model" and TRANSIENT in (e.error or "")
        ]
        assert failed, "fail_every=4 should have made the provider fail"
        assert total(series, "inspect.model.retries", "value", gen_ai__request__model=name) == len(failed)
        errored = total(
            series,
            "gen_ai.client.operation.duration",
            "count",
            gen_ai__request__model=name,
            error__type="FlakyProviderError",
        )
        assert errored == len(failed)


def test_score_histograms_equal_the_log(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, logs, _ = metered
    series = read_metric_file(env.metric_files()[0])
    for log in logs:
        model = log.eval.model
        samples = log.samples or []
        correct = sum(1 for s in samples if s.scores and s.scores["pattern"].value == "C")
        scored = sum(1 for s in samples if s.scores and "pattern" in s.scores)
        pattern = {"inspect__model": model, "gen_ai__evaluation__name": "pattern"}
        assert total(series, "inspect.score", "count", **pattern) == scored == len(samples)
        assert total(series, "inspect.score", "sum", **pattern) == correct
        used = sum(float(s.scores["used_tool"].value) for s in samples if s.scores)  # type: ignore[arg-type]
        assert (
            total(series, "inspect.score", "sum", inspect__model=model, gen_ai__evaluation__name="used_tool")
            == used
        )
    assert {dict(a).get("gen_ai.evaluation.name") for (n, a) in series if n == "inspect.score"} == {
        "pattern",
        "used_tool",
    }


def test_no_series_names_a_sample(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, logs, _ = metered
    sample_ids = {str(s.id) for log in logs for s in log.samples or []} | {
        s.uuid for log in logs for s in log.samples or [] if s.uuid
    }
    values = {str(v) for (_, attrs) in read_metric_file(env.metric_files()[0]) for _, v in attrs}
    assert not values & sample_ids


def test_show_prints_the_metrics_summary(metered: tuple[BridgeEnv, list[EvalLog], str]) -> None:
    env, logs, _ = metered
    result = run_cli([OTEL_BRIDGE, "show", str(env.files()[0])], subprocess_env())
    assert result.returncode == 0, result.stderr
    tail = result.stdout.split("metrics ", 1)[1]
    total_input = sum(log.stats.model_usage[log.eval.model].input_tokens for log in logs)
    assert f"tokens input {total_input}" in tail
    assert "samples arithmetic: 20/20" in tail  # 5 samples × 2 epochs × 2 models


def test_metrics_off_writes_no_metric_file(tmp_path: Path) -> None:
    env = BridgeEnv(tmp_path)
    result = inspect_eval([TASK, "--model", "offline/careful", "-T", "samples=2"], subprocess_env(env.env()))
    assert result.returncode == 0, result.stderr[-3000:]
    assert env.files() and not env.metric_files()
    assert not list(tmp_path.rglob("*.metrics.jsonl"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["refused", "black-holed"])
def dead_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """A metrics URL nobody answers: a closed port (refused at once), or a listening socket that
    never accepts (the request is sent and hangs until the exporter's timeout)."""
    if request.param == "refused":
        yield f"http://127.0.0.1:{_closed_port()}/v1/metrics"
        return
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        yield f"http://127.0.0.1:{hole.getsockname()[1]}/v1/metrics"


FLUSH_TIMEOUT_S = 2.0  # the export timeout is capped by it
EXIT_GRACE_S = 10.0  # README "What the eval side guarantees": exit waits ≤ flush timeout + 10 s


def test_unreachable_metrics_endpoint_leaves_the_eval_unchanged(tmp_path: Path, dead_endpoint: str) -> None:
    args = [TASK, "--model", "offline/careful", "-T", "samples=3"]
    plain, broken = BridgeEnv(tmp_path / "plain"), BridgeEnv(tmp_path / "broken")
    timeout = {"INSPECT_OTEL_FLUSH_TIMEOUT": str(FLUSH_TIMEOUT_S)}
    baseline = inspect_eval(args, subprocess_env({**plain.env(), **timeout}))
    extra = {
        **broken.env(),
        **timeout,
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": dead_endpoint,
    }
    result = inspect_eval(args, subprocess_env(extra))
    assert result.returncode == baseline.returncode == 0, result.stderr[-3000:]
    before, after = _logs(plain)[0], _logs(broken)[0]
    assert after.status == before.status == "success"
    assert after.results is not None and before.results is not None
    assert [s.metrics for s in after.results.scores] == [s.metrics for s in before.results.scores]
    lines = [line for line in result.stderr.splitlines() if "metrics were not delivered" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert str(broken.metric_files()[0]) in lines[0] and "otel-bridge sync" in lines[0]
    assert dead_endpoint in lines[0] and "metric point(s) not delivered" in lines[0]
    series = read_metric_file(broken.metric_files()[0])  # what could not be sent stays on disk
    assert total(series, "inspect.samples.completed", "value") == 3
    # the worker exports; exit waits for it at most the flush timeout + the grace (one deadline)
    assert result.seconds < baseline.seconds + FLUSH_TIMEOUT_S + EXIT_GRACE_S, (
        result.seconds,
        baseline.seconds,
    )


@pytest.mark.parametrize(
    ("env", "exporters", "problem"),
    [
        ({}, (), None),
        ({"OTEL_METRICS_EXPORTER": "none"}, (), None),
        ({"OTEL_METRICS_EXPORTER": "OTLP, console"}, ("otlp", "console"), None),
        ({"OTEL_METRICS_EXPORTER": "prometheus,file"}, ("file",), "unknown exporter(s) ['prometheus']"),
        (
            {"OTEL_METRICS_EXPORTER": "file", "OTEL_METRIC_EXPORT_INTERVAL": "soon"},
            ("file",),
            "is not a number",
        ),
        (
            {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes",
            },
            ("otlp",),
            "is not one of cumulative, delta, lowmemory",
        ),
    ],
)
def test_metrics_settings(env: dict[str, str], exporters: tuple[str, ...], problem: str | None) -> None:
    from otel_bridge.config import load_settings

    settings = load_settings(env)
    assert settings.metrics.exporters == exporters
    assert settings.metrics.enabled == bool(exporters)
    if problem is None:
        assert not settings.problems
    else:
        assert len(settings.problems) == 1 and problem in settings.problems[0], settings.problems
    assert settings.metrics.interval_s == 10.0  # the default, also when the value is bad


def test_temporality_and_interval_are_read() -> None:
    from otel_bridge.config import load_settings

    metrics = load_settings(
        {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta", "OTEL_METRIC_EXPORT_INTERVAL": "2500"}
    ).metrics
    assert metrics.delta and metrics.interval_s == 2.5


def test_cache_hits_count_and_record_no_tokens(tmp_path: Path) -> None:
    """A task calling ``generate(cache=True)`` run twice: the second run is all cache reads."""
    cache = {"INSPECT_CACHE_DIR": str(tmp_path / "cache"), "OTEL_METRICS_EXPORTER": "file"}
    runs = []
    for name in ("first", "second"):
        env = BridgeEnv(tmp_path / name)
        result = inspect_eval(
            ["tests/support/cached_task.py", "--model", "offline/careful"],
            subprocess_env({**env.env(), **cache}),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append((env, _logs(env)[0]))
    for env, log in runs:
        series = read_metric_file(env.metric_files()[0])
        events = [e for s in log.samples or [] for e in s.events if e.event == "model"]
        reads = sum(1 for e in events if e.cache == "read")
        assert total(series, "inspect.model.cache_hits", "value") == reads
        usage = log.stats.model_usage.get("offline/careful")
        expected = usage.input_tokens if usage else 0
        assert total(series, "gen_ai.client.token.usage", "sum", gen_ai__token__type="input") == expected
    assert sum(1 for e in runs[1][1].samples[0].events if e.event == "model" and e.cache == "read") == 1  # type: ignore[index]


def test_errored_and_limited_samples_are_counted_by_status(tmp_path: Path) -> None:
    """One question makes the provider raise (``error_on``); a message limit stops the others."""
    env = BridgeEnv(tmp_path)
    args = [TASK, "--model", "offline/careful", "-M", "error_on=10 + 16", "--message-limit", "4"]
    result = inspect_eval(
        [*args, "--no-fail-on-error"], subprocess_env({**env.env(), "OTEL_METRICS_EXPORTER": "file"})
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = _logs(env)[0]
    samples = log.samples or []
    errored = [s for s in samples if s.error is not None]
    limited = [s for s in samples if s.error is None and s.limit is not None]
    assert errored and limited, "the planted error and the limit should both have happened"
    series = read_metric_file(env.metric_files()[0])
    completed = "inspect.samples.completed"
    assert total(series, completed, "value", inspect__sample__status="error") == len(errored)
    assert total(
        series, completed, "value", inspect__sample__status="limit", inspect__limit__type="message"
    ) == len([s for s in limited if s.limit and s.limit.type == "message"])
    assert total(series, completed, "value") == len(samples)


def test_tool_calls_carry_the_error_type_inspect_logged(tmp_path: Path) -> None:
    """A tool that fails on some inputs (examples/bridge_examples/failing_tools.py): each tool-call
    series' ``error.type`` is the type Inspect's log records on that ToolEvent; successes have none."""
    env = BridgeEnv(tmp_path)
    result = inspect_eval(
        ["examples/bridge_examples/failing_tools.py", "--model", "offline/careful"],
        subprocess_env({**env.env(), "OTEL_METRICS_EXPORTER": "file"}),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = _logs(env)[0]
    events = [e for s in log.samples or [] for e in s.events if e.event == "tool"]
    expected: dict[str | None, float] = defaultdict(float)
    for event in events:
        expected[event.error.type if event.error is not None else None] += 1
    assert {None, "unknown", "permission"} <= set(expected), expected  # the planted failures happened
    series = read_metric_file(env.metric_files()[0])
    calls: dict[str | None, float] = defaultdict(float)
    durations: dict[str | None, float] = defaultdict(float)
    for (name, attrs), point in series.items():
        labels = dict(attrs)
        assert labels.get("gen_ai.tool.name", "divide") == "divide"
        if name == "inspect.tool.calls":
            calls[labels.get("error.type")] += point["value"]
        elif name == "inspect.tool.duration":
            durations[labels.get("error.type")] += point["count"]
    assert calls == expected
    assert durations == expected


@pytest.mark.parametrize(
    ("env", "protocol", "problems"),
    [
        ({}, "http/protobuf", 0),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc", 0),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "http/protobuf", 0),  # the traces' own
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"},
         "http/protobuf", 0),
        ({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, "grpc", 0),
        ({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, "http/protobuf", 1),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, "http/protobuf", 1),  # said once, not twice
    ],
)  # fmt: skip
def test_metrics_protocol_is_the_metrics_variable_else_the_general_one(
    env: dict[str, str], protocol: str, problems: int
) -> None:
    from otel_bridge.config import load_settings

    settings = load_settings({"OTEL_METRICS_EXPORTER": "otlp", **env})
    assert settings.metrics.otlp_protocol == protocol
    assert len(settings.problems) == problems, settings.problems
