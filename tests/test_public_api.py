"""The public Python API: ``otel_bridge.configure`` + a TracerProvider of the user's own with the
public exporters gives the same Weave evaluations and W&B run as the environment-variable path.

The run is ``examples/own_provider.py`` (the example docs/api.md shows) as a real process: a real
eval, spans through the user's provider into ``WeaveSpanExporter`` (the local Weave server) and
``WandbSpanExporter`` (offline). The oracles: Inspect's own log, and the environment-variable
path's sinks (``otel-bridge sync --to weave`` / ``--to wandb``) fed the same eval's span file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from inspect_ai.log import read_eval_log

import otel_bridge
from tests.support.bridge import ROOT, clean_env, subprocess_env
from tests.support.wandb_log import find_run_dirs, load_run
from tests.test_wandb_sink import _assert_summary_matches_log, _comparable
from tests.test_weave_sink import BIN, Run, canonical, check_matches_inspect, unique
from tests.weave_server.harness import WeaveServer

EXAMPLE = ROOT / "examples" / "own_provider.py"


def _env(server: WeaveServer, project: str, wandb_dir: Path) -> dict[str, str]:
    entity, name = project.split("/")
    env = subprocess_env()
    env.update({k: v for k, v in server.env(entity, name).items() if clean_env(k)})
    wandb_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "INSPECT_OTEL_FLUSH_TIMEOUT": "30",
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(wandb_dir),
            "WANDB_DATA_DIR": str(wandb_dir / "data"),
            "WANDB_CACHE_DIR": str(wandb_dir / "cache"),
        }
    )
    return env


def test_public_names_are_all_and_load_lazily() -> None:
    assert set(otel_bridge.__all__) == {
        "SpanFileExporter",
        "WandbSpanExporter",
        "WeaveSpanExporter",
        "__version__",
        "configure",
        "reset",
    }
    from opentelemetry.sdk.trace.export import SpanExporter

    for name in ("SpanFileExporter", "WandbSpanExporter", "WeaveSpanExporter"):
        assert issubclass(getattr(otel_bridge, name), SpanExporter)
    code = "import sys, otel_bridge._registry; print('otel_bridge.exporters.translating' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # Inspect imports the package in every process


def test_docs_show_the_tested_example() -> None:
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    body = EXAMPLE.read_text(encoding="utf-8").split('"""', 2)[2].strip()
    assert body in doc, "docs/api.md must show examples/own_provider.py as it is"


def test_own_provider_gives_what_the_environment_path_gives(
    weave_server: WeaveServer, tmp_path: Path
) -> None:
    project, wandb_project = unique("api"), "api-test"
    span_dir, log_dir = tmp_path / "spans", tmp_path / "logs"
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--weave-project",
            project,
            "--wandb-project",
            wandb_project,
            "--span-dir",
            str(span_dir),
            "--log-dir",
            str(log_dir),
        ],
        env=_env(weave_server, project, tmp_path / "wandb-api"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = [read_eval_log(str(p)) for p in sorted(log_dir.glob("*.eval"))]
    assert len(logs) == 2 and all(log.status == "success" for log in logs)
    span_files = sorted(span_dir.glob("*.jsonl"))
    assert span_files, "configure(exporters=['file']) keeps the span file"

    # Weave: Inspect's log, and identical to the environment path's sink fed the same spans
    check_matches_inspect(weave_server, Run(project, logs, span_files, proc, 0.0))
    reference = unique("api-ref")
    env = _env(weave_server, reference, tmp_path / "wandb-ref")
    env.update(
        {
            "INSPECT_OTEL_EXPORTERS": "weave,wandb",
            "INSPECT_OTEL_WEAVE_PROJECT": reference,
            "INSPECT_OTEL_WANDB_PROJECT": wandb_project,
        }
    )
    synced = subprocess.run(
        [str(BIN / "otel-bridge"), "sync", *map(str, span_files), "--to", "weave,wandb", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert canonical(weave_server, project) == canonical(weave_server, reference)

    # W&B Models: Inspect's log, and identical to the environment path's run (offline)
    [api_dir] = find_run_dirs(tmp_path / "wandb-api" / "wandb")
    [ref_dir] = find_run_dirs(tmp_path / "wandb-ref" / "wandb")
    api_run, ref_run = load_run(api_dir), load_run(ref_dir)
    for log in logs:
        _assert_summary_matches_log(api_run, log)
    assert api_run.summary["status"] == "success"
    api_view, ref_view = _comparable(api_run), _comparable(ref_run)
    # the Weave link names each side's own Weave project; everything else is the same
    for view in (api_view, ref_view):
        view["summary"] = {k: v for k, v in view["summary"].items() if "weave" not in k}
    assert api_view == ref_view
