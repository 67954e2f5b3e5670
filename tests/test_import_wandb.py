"""``otel-bridge import --to wandb``: a live-traced eval's logs imported into a W&B offline run.

The oracle is the offline run the live hook wrote for the same eval (the real wandb SDK's files,
read back with tests/support/wandb_log.py) and Inspect's own log: the import gives the same run
(id, config, summary, history, samples table, logs artifact) except what docs/conventions.md
("Imported logs") lists as live-only — the command line, and durations taken from hook-call times.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog, read_eval_log

from tests.support.bridge import INSPECT, OTEL_BRIDGE, ROOT
from tests.support.wandb_log import WandbRun
from tests.test_wandb_sink import _child_env, _comparable, _only_run

DEMO = str(ROOT / "examples" / "bridge_demo.py")


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        args, env=_child_env(root, {}), capture_output=True, text=True, timeout=300, cwd=ROOT
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[EvalLog], dict[str, Path]]:
    base = tmp_path_factory.mktemp("import-wandb")
    live, logs = base / "live", base / "live" / "logs"
    eval_args = [f"{DEMO}@arithmetic", f"{DEMO}@arithmetic_quick", "--model", "offline/careful,offline/hasty"]
    proc = _run(
        [INSPECT, "eval", *eval_args, "-T", "samples=2", "--log-dir", str(logs), "--display", "none"], live
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    roots = {"live": live}
    for name in ("imported", "imported_again"):
        roots[name] = base / name
        result = _run([OTEL_BRIDGE, "import", str(logs), "--to", "wandb", "--quiet"], roots[name])
        assert result.returncode == 0, result.stderr[-3000:]
    return [read_eval_log(str(p)) for p in sorted(logs.glob("*.eval"))], roots


def _without_live_only(run: WandbRun) -> dict[str, Any]:
    view = copy.deepcopy(_comparable(run))
    run_id, project, name, group, job_type, tags = view.pop("identity")
    view["identity"] = (run_id, project, name, job_type, tags)  # group: the run's first task (order)
    view["config"]["inspect"].pop("command_line", None)  # live only: Inspect does not log it
    view["summary"] = {
        k: sorted(v) if k == "logs" else v
        for k, v in view["summary"].items()
        if not k.endswith("duration_s") and k != "_step"
    }
    # rows are logged as samples end: the same rows, in the order the import replays them
    view["history"] = Counter(
        json.dumps({k: v for k, v in r.items() if k != "_step"}, sort_keys=True) for r in view["history"]
    )
    view["metrics"] = sorted(view["metrics"])
    columns, rows = view["table"]
    view["table"] = (columns, sorted(json.dumps(r) for r in rows))
    return view


def test_imported_run_is_the_live_run_but_the_allow_list(runs: tuple[list[EvalLog], dict[str, Path]]) -> None:
    logs, roots = runs
    live, imported = _only_run(roots["live"]), _only_run(roots["imported"])
    assert imported.run_id == live.run_id == logs[0].eval.run_id
    assert _without_live_only(imported) == _without_live_only(live)
    assert "command_line" in live.config["inspect"] and "command_line" not in imported.config["inspect"]


def test_importing_twice_gives_the_same_run_with_no_row_twice(
    runs: tuple[list[EvalLog], dict[str, Path]],
) -> None:
    logs, roots = runs
    first, again = _only_run(roots["imported"]), _only_run(roots["imported_again"])
    assert _without_live_only(again) == _without_live_only(first)
    columns, rows = again.table("samples")
    key = [columns.index(k) for k in ("eval_id", "sample_id", "epoch")]
    got = sorted(tuple(str(r[i]) for i in key) for r in rows)
    # Inspect's samples, each once
    assert got == sorted(
        (log.eval.eval_id, str(s.id), str(s.epoch)) for log in logs for s in log.samples or []
    )
