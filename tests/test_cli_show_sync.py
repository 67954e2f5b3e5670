"""`otel-bridge show` and `otel-bridge sync --to otlp` on real span files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bridge_demo import arithmetic
from inspect_ai import eval
from inspect_ai.model import get_model

from otel_bridge import conventions as c
from otel_bridge.otlp_json import json_to_request, request_to_json
from tests.support.bridge import OTEL_BRIDGE, BridgeEnv, full_log, run_cli, subprocess_env
from tests.support.otlp_capture import OtlpCapture


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[BridgeEnv, dict[str, float]]:
    env = BridgeEnv(tmp_path_factory.mktemp("show"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.env().items():
            mp.setenv(key, value)
        (log,) = eval(arithmetic(samples=4), model=get_model("offline/hasty"), epochs=2, display="none")
    log = full_log(log)
    assert log.results is not None
    return env, {m: v.value for m, v in log.results.scores[0].metrics.items()}


def _show(args: list[str], env: BridgeEnv) -> tuple[int, str, str]:
    result = run_cli([OTEL_BRIDGE, "show", *args], subprocess_env({**env.env(), "COLUMNS": "200"}))
    return result.returncode, result.stdout, result.stderr


def test_show_latest_prints_tree_and_results(recorded: tuple[BridgeEnv, dict[str, float]]) -> None:
    env, metrics = recorded
    code, out, err = _show(["--samples", "1"], env)
    assert code == 0, err
    assert "arithmetic · offline/hasty" in out
    assert out.count("arithmetic sample") == 1  # --samples 1
    assert "… 7 more sample trace(s)" in out
    for line in ("solver: react", "agent: calculator", "chat hasty", "tool: add", "scorer: pattern"):
        assert line in out
    assert f"accuracy={metrics['accuracy']:.3f}" in out
    assert "8/8" in out
    assert "missing:" not in out


def test_show_depth_collapses(recorded: tuple[BridgeEnv, dict[str, float]]) -> None:
    env, _ = recorded
    code, out, _ = _show(["--depth", "1", "--samples", "1"], env)
    assert code == 0
    assert "solver: react" not in out and "more (use --depth)" in out


def test_show_killed_run_says_what_is_missing(
    recorded: tuple[BridgeEnv, dict[str, float]], tmp_path: Path
) -> None:
    env, _ = recorded
    (source,) = env.files()
    # what a killed process leaves: no task or run span yet, and a last line cut in half
    kept = []
    for line in source.read_bytes().splitlines():
        request = json_to_request(line)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                alive = [sp for sp in ss.spans if sp.name not in (c.SPAN_TASK, c.SPAN_RUN)]
                del ss.spans[:]
                ss.spans.extend(alive)
        kept.append(request_to_json(request).encode())
    damaged = tmp_path / "killed.jsonl"
    damaged.write_bytes(b"\n".join(kept) + b"\n" + kept[-1][: len(kept[-1]) // 2])
    code, out, err = _show([str(damaged)], env)
    assert code == 0, err
    assert "no end recorded" in out
    assert "cut short" in out
    assert "run span is missing" in out


def test_show_rejects_a_file_that_is_not_a_span_file(
    recorded: tuple[BridgeEnv, dict[str, float]], tmp_path: Path
) -> None:
    env, _ = recorded
    bogus = tmp_path / "notes.jsonl"
    bogus.write_text('{"hello": "world"}\n')
    code, out, err = _show([str(bogus)], env)
    assert code == 2
    assert "is not an OTLP/JSON span file" in err
    assert "Traceback" not in err


def test_sync_to_otlp_delivers_every_span(
    recorded: tuple[BridgeEnv, dict[str, float]], tmp_path: Path
) -> None:
    env, _ = recorded
    (source,) = env.files()
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    spans = env.spans()
    with OtlpCapture() as capture:
        result = run_cli(
            [OTEL_BRIDGE, "sync", str(copy), "--to", "otlp", "--quiet"],
            subprocess_env({"OTEL_EXPORTER_OTLP_ENDPOINT": capture.http_endpoint}),
        )
        assert result.returncode == 0, result.stderr
        received = capture.wait_for(len(spans))
    assert {s.key for s in received} == {(s.trace_id, s.span_id) for s in spans}
    assert f"synced {len(spans)} spans from 1 file(s): {len(spans)} spans to otlp" in result.stdout
    assert any(s.name == c.SPAN_TASK for s in received)
