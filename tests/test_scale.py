"""Scale: large span files read, shown and synced correctly, in bounded state (not timed here).

Speed is measured by ``make bench-scale`` (bench/scale.py, docs/performance.md). These tests
check that what is fast is also right: records read straight from OTLP/JSON equal protobuf's,
the running metrics equal Python's ``statistics``, a generated 20,000-sample file syncs to W&B
with Inspect's own summary values, and the translators hold nothing per sample once a run ends.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import read_eval_log

from bench.scale_spans import scale
from otel_bridge.otlp_json import json_to_request
from otel_bridge.records import FileReadReport, from_json_doc, from_request, read_span_file
from otel_bridge.translate.wandb import LogRow, Options, WandbTranslator
from otel_bridge.translate.wandb.state import RECENT_SAMPLES
from otel_bridge.translate.weave import WeaveTranslator
from tests.support.bridge import OTEL_BRIDGE, subprocess_env
from tests.support.demo_spans import demo_span_file
from tests.support.wandb_log import load_runs, wait_for_run

BIG = 20_000


# ------------------------------------------------------------------------------------- reading


def test_records_read_from_json_equal_protobufs() -> None:
    """The fast reader gives exactly what protobuf's own JSON parser gives (every value type)."""
    lines = demo_span_file().read_bytes().splitlines()
    odd = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0AF7651916CD43DD8448EB211C80319C",
                                "spanId": "B7AD6B7169203331",
                                "name": "odd",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": [
                                    {"key": "b", "value": {"bytesValue": "aGVsbG8="}},
                                    {"key": "a", "value": {"arrayValue": {"values": [{"intValue": "3"}]}}},
                                    {
                                        "key": "k",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [{"key": "x", "value": {"boolValue": True}}]
                                            }
                                        },
                                    },
                                    {"key": "d", "value": {"doubleValue": 0.5}},
                                    {"key": "n", "value": {}},
                                ],
                                "events": [{"name": "e", "timeUnixNano": "5"}],
                                "links": [
                                    {
                                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                                        "spanId": "00f067aa0ba902b7",
                                    }
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": "m"},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    for line in [*lines, json.dumps(odd).encode()]:
        assert from_json_doc(json.loads(line)) == from_request(json_to_request(line))


def test_streaming_reader_reports_bad_lines_and_a_cut_tail(tmp_path: Path) -> None:
    lines = demo_span_file().read_bytes().splitlines()
    expected = sum(len(from_request(json_to_request(line))) for line in lines)
    path = tmp_path / "damaged.jsonl"
    path.write_bytes(lines[0] + b"\n{not json\n\n" + b"\n".join(lines[1:]) + b"\n" + lines[-1][:50])
    report = FileReadReport(path)
    assert sum(1 for _ in read_span_file(path, report)) == expected
    assert [n for n, _ in report.bad_lines] == [2] and report.truncated_tail
    path.write_bytes(b"\n".join(lines) + b"\n{cut\n")  # newline-terminated: a bad line, not a cut tail
    report = FileReadReport(path)
    assert sum(1 for _ in read_span_file(path, report)) == expected
    assert [n for n, _ in report.bad_lines] == [len(lines) + 1] and not report.truncated_tail


# ------------------------------------------------------------------------------------- running metrics


def test_running_metrics_equal_statistics_with_resent_samples() -> None:
    """Running sums give what Python's statistics module gives over the current values."""
    from tests.test_wandb_translate import SCORER_METRICS_HINT, Eval, rows_for

    rng = random.Random(3)
    e = Eval()
    hint = {SCORER_METRICS_HINT: json.dumps({"match": ["mean", "std", "var", "stderr"]})}
    spans = [e.started("t", "m", "e1", extra=hint)]
    current: dict[str, float] = {}
    expected = []
    for _ in range(400):
        sid = str(rng.randrange(250))  # some ids come again: they replace their earlier value
        value = rng.choice([0.0, 0.25, 1.0, rng.random()])
        spans.append(e.sample("t", "m", "e1", sid, 1, value))
        current[sid] = value
        values = list(current.values())
        expected.append(
            (len(values), statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        )
    rows = rows_for(WandbTranslator().translate(spans), "t/m")
    assert len(rows) == len(expected)
    for row, (n, mean, std) in zip(rows, expected, strict=True):
        assert row["t/m/samples"] == n
        assert row["t/m/match/mean"] == pytest.approx(mean, abs=1e-12)
        assert row["t/m/match/std"] == pytest.approx(std, abs=1e-9)
        assert row["t/m/match/var"] == pytest.approx(std * std, abs=1e-9)
        assert row["t/m/match/stderr"] == pytest.approx(std / math.sqrt(n), abs=1e-9)


# ------------------------------------------------------------------------------------- at size


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("scale") / "big.jsonl"
    return path, scale(demo_span_file(), path, BIG)


def _inspect_metrics() -> dict[str, float]:
    """``task/model/scorer/metric`` → value, from Inspect's own logs of the demo eval."""
    logs = demo_span_file().parent.parent / "logs"
    out = {}
    for log_path in logs.glob("*.eval"):
        log = read_eval_log(str(log_path))
        assert log.results is not None
        for score in log.results.scores:
            for name, metric in score.metrics.items():
                out[f"{log.eval.task}/{log.eval.model}/{score.name}/{name}"] = metric.value
    assert out
    return out


def test_translators_hold_no_per_sample_state_after_the_run(big_file: tuple[Path, dict[str, int]]) -> None:
    path, per_eval = big_file
    wandb = WandbTranslator(Options(table_max_rows=500))
    weave = WeaveTranslator()
    rows = peak = 0
    batch: list[Any] = []
    for record in read_span_file(path):
        batch.append(record)
        if len(batch) == 512:
            rows += sum(isinstance(w, LogRow) for w in wandb.translate(batch))
            weave.feed(batch)
            batch = []
            peak = max(peak, wandb.held_samples)
    # while the run is open: the recent samples of each task × model and the table's rows, capped
    assert 0 < peak <= RECENT_SAMPLES * len(per_eval) + 500
    writes = wandb.translate(batch)
    weave.feed(batch)
    rows += sum(isinstance(w, LogRow) for w in writes)
    assert rows == BIG + len(per_eval)  # a row per sample, one per task end
    assert wandb.open_runs == [] and wandb.held_samples == 0
    assert weave.open_evaluations() == [] and not weave.held
    assert wandb.translate(read_span_file(path)) == []  # a replay of the ended run writes nothing
    assert wandb.late_spans > 0


def test_big_file_syncs_to_wandb_with_inspects_summary(
    big_file: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    path, per_eval = big_file
    env = subprocess_env(
        {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(tmp_path),
            "WANDB_DATA_DIR": str(tmp_path / "data"),
            "WANDB_CACHE_DIR": str(tmp_path / "cache"),
            "WANDB_CONFIG_DIR": str(tmp_path / "config"),
            "INSPECT_OTEL_WANDB_PROJECT": "scale",
            "HOME": str(tmp_path),
        }
    )
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [OTEL_BRIDGE, "sync", str(path), "--to", "wandb", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (segments,) = load_runs(tmp_path).values()
    run = wait_for_run(segments[0].run_dir)
    for key, value in _inspect_metrics().items():
        assert run.summary[key] == value, key  # Inspect's own values, exactly
    samples: dict[str, int] = {}
    for row in run.history:
        for key, value in row.items():
            if key.endswith("/samples"):
                samples[key] = max(samples.get(key, 0), value)
    assert sorted(samples.values()) == sorted(per_eval.values())
    assert len(run.history) == BIG + len(per_eval) + 1  # samples, task ends, the table's step
    columns, rows = run.table("samples")
    assert len(rows) == Options().table_max_rows
    assert run.summary["table/rows_dropped"] == BIG - Options().table_max_rows
    assert run.exit_code == 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
