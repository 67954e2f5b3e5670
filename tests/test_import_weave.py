"""``otel-bridge import --to weave``: a real eval's logs into the real Weave trace server.

The oracle is Inspect's own log (``check_matches_inspect``: one evaluation per task × model,
Inspect's samples as rows, its scores and metrics) and the calls a live-traced run already
wrote: importing twice, or importing a run that was traced live, adds no call.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_weave_sink import Run, check_matches_inspect, run_eval, unique
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]

BIN = Path(sys.executable).parent


def import_to_weave(server: WeaveServer, project: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    entity, name = project.split("/")
    env = server.env(entity, name)
    env.update({"INSPECT_OTEL_WEAVE_PROJECT": project})
    return subprocess.run(
        [str(BIN / "otel-bridge"), "import", *map(str, paths), "--to", "weave", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def live(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A live-traced eval (span file + Weave), whose logs are then imported."""
    run = run_eval(weave_server, unique("import-live"), tmp_path_factory.mktemp("import-live"))
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    return run


def _log_dir(run: Run) -> Path:
    return Path(run.logs[0].location).parent


def test_imported_logs_are_inspects_evaluations_and_importing_again_adds_nothing(
    weave_server: WeaveServer, live: Run
) -> None:
    project = unique("imported")
    result = import_to_weave(weave_server, project, _log_dir(live))
    assert result.returncode == 0, result.stderr[-3000:]
    check_matches_inspect(weave_server, Run(project, live.logs, [], live.proc, 0.0))
    calls = len(weave_server.calls(project))
    again = import_to_weave(weave_server, project, _log_dir(live))
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(weave_server.calls(project)) == calls


def test_importing_a_run_traced_live_writes_nothing_twice(weave_server: WeaveServer, live: Run) -> None:
    before = sorted(c["id"] for c in weave_server.calls(live.project))
    result = import_to_weave(weave_server, live.project, _log_dir(live))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(c["id"] for c in weave_server.calls(live.project)) == before
    check_matches_inspect(weave_server, live)
