"""Spans sent straight to Weave's OTLP endpoint link to the W&B Models run of the same eval.

A real eval exports OTLP to the local Weave server's ``/otel/v1/traces`` (Weave's own OTLP mapping
reads ``wandb.wb_run_id``) while the W&B exporter writes its run offline. The oracle for the run is
W&B's own ``.wandb`` file: every call of the task's tree names ``entity/project/<that run's id>``,
the form the weave SDK itself sends (``weave_client``: ``f"{entity}/{project}/{run_id}"``).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from inspect_ai.log import read_eval_log

from tests.support.bridge import ROOT, inspect_eval
from tests.support.wandb_log import load_runs
from tests.test_weave_sink import short
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]


def _otlp_eval(server: WeaveServer, project: str, tmp: Path, exporters: str, **env: str) -> list[dict]:
    """A real eval exporting OTLP to the server; the calls Weave made of its spans."""
    entity, name = project.split("/")
    full_env = server.env()  # no WANDB_ENTITY / WANDB_PROJECT unless given
    full_env.update(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_EXPORTERS": exporters,
            "INSPECT_OTEL_DIR": str(tmp / "spans"),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{server.url}/otel/v1/traces",
            "OTEL_RESOURCE_ATTRIBUTES": f"wandb.entity={entity},wandb.project={name}",  # Weave's routing
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(tmp),
            "INSPECT_OTEL_WANDB_LOG_ARTIFACT": "false",
            "PYTHONPATH": str(ROOT / "examples"),
            **env,
        }
    )
    args = [str(ROOT / "examples" / "bridge_demo.py@arithmetic"), "--model", "offline/careful"]
    proc = inspect_eval([*args, "-T", "samples=2", "--log-dir", str(tmp / "logs")], full_env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the exporter has flushed at exit: the spans are on the server (poll for its ingestion)
    return server.wait_for(
        lambda: server.calls(project),
        lambda calls: sum(short(c["op_name"]) == "inspect.sample" for c in calls) == 2,
    )


def test_otlp_calls_name_the_wandb_run_from_its_own_file(weave_server: WeaveServer, tmp_path: Path) -> None:
    entity, name = "ent", f"wbrun-{uuid.uuid4().hex[:10]}"
    project = f"{entity}/{name}"
    calls = _otlp_eval(
        weave_server, project, tmp_path, "file,otlp,wandb", WANDB_ENTITY=entity, WANDB_PROJECT=name
    )
    runs = load_runs(tmp_path / "wandb")
    assert len(runs) == 1, sorted(runs)
    [[run]] = runs.values()
    assert (run.entity, run.project) == (entity, name)
    expected = f"{run.entity}/{run.project}/{run.run_id}"
    by_op: dict[str, set[str | None]] = {}
    for call in calls:
        by_op.setdefault(short(call["op_name"]), set()).add(call.get("wb_run_id"))
    assert by_op.pop("inspect.run") == {None}  # the run span sits above the task it links
    assert {"inspect.task", "inspect.sample", "chat_careful", "execute_tool_add"} <= set(by_op)
    assert by_op == {op: {expected} for op in by_op}
    # no step: W&B assigns history steps when it logs the row (docs/weave.md says why)
    assert {c.get("wb_run_step") for c in calls} == {None}


def test_no_link_when_no_wandb_run_will_exist(weave_server: WeaveServer, tmp_path: Path) -> None:
    project = f"ent/wbrun-off-{uuid.uuid4().hex[:10]}"
    calls = _otlp_eval(weave_server, project, tmp_path, "file,otlp")
    assert calls and {c.get("wb_run_id") for c in calls} == {None}
    assert not (tmp_path / "wandb").exists()


def test_a_wandb_project_alone_links_the_run_a_receiver_will_write(
    weave_server: WeaveServer, tmp_path: Path
) -> None:
    """No wandb exporter here, but a W&B project set (a receiver or a later sync writes the run):
    the link names the run by Inspect's run id (from Inspect's log), as the W&B translator does."""
    entity, name = "ent", f"wbrun-rx-{uuid.uuid4().hex[:10]}"
    project = f"{entity}/{name}"
    calls = _otlp_eval(weave_server, project, tmp_path, "file,otlp", WANDB_ENTITY=entity, WANDB_PROJECT=name)
    [log] = [read_eval_log(str(p)) for p in (tmp_path / "logs").glob("*.eval")]
    linked = {c.get("wb_run_id") for c in calls if short(c["op_name"]) != "inspect.run"}
    assert linked == {f"{project}/{log.eval.run_id}"}
    assert not (tmp_path / "wandb").exists()  # no run written here
