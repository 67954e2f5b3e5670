"""The eval's own redacted log copies (otel_bridge/logcopies.py): made once, where, and when not.

Real evals of the demo task (two models, so two task logs) in a child process. The oracle is
Inspect's own logs (``read_eval_log``): every log has one copy beside the span file, named on its
task span, holding the same eval and samples; with the default exporters a worker writes it, not
the eval's process (which can be killed mid-copy); with content off there are none; a span directory
where no copy can be written costs the eval nothing but one line, and the W&B upload then
redacts the log itself and says so. tests/test_secrets.py proves the copy is what keeps a late
secret out of the W&B artifacts that ``sync`` and the receiver make.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from inspect_ai.log import list_eval_logs, read_eval_log

from tests.support.bridge import INSPECT, ROOT, BridgeEnv, inspect_eval, subprocess_env
from tests.support.e2e import DEMO_TASK

MODELS = "offline/careful,offline/hasty"


def _eval(root: Path, extra: dict[str, str]) -> tuple[BridgeEnv, str, list[str]]:
    """Run the demo; (its environment, stderr, Inspect's log paths)."""
    bridge = BridgeEnv(root)
    result = inspect_eval([DEMO_TASK, "--model", MODELS], subprocess_env({**bridge.env(), **extra}))
    assert result.returncode == 0, result.stderr[-3000:]
    logs = sorted(info.name.removeprefix("file://") for info in list_eval_logs(str(bridge.log_dir)))
    assert len(logs) == 2 and all(read_eval_log(p, header_only=True).status == "success" for p in logs)
    return bridge, result.stderr, logs


def _named_copies(bridge: BridgeEnv) -> dict[str, str]:
    """{log location: copy} as the task spans name them, read from the span file's raw JSON."""
    out: dict[str, str] = {}
    for line in bridge.raw_bytes().decode().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    attrs = {a["key"]: a["value"].get("stringValue") for a in span.get("attributes", [])}
                    if "inspect.log.redacted_copy" in attrs:
                        out[attrs["inspect.log.location"]] = attrs["inspect.log.redacted_copy"]
    return out


def _same_eval(location: str, copy: str) -> None:
    """The copy is Inspect's log at ``location`` as Inspect reads it: same eval, samples, results."""
    assert Path(copy).name == Path(location).name
    original, copied = read_eval_log(location), read_eval_log(copy)
    assert copied.eval.eval_id == original.eval.eval_id
    assert [s.id for s in copied.samples or []] == [s.id for s in original.samples or []]
    assert copied.results == original.results


def test_one_copy_per_log_beside_the_span_file(tmp_path: Path) -> None:
    """No W&B worker (exporters=file): the hook still makes the copies, in the span directory
    (never among Inspect's logs), each the same eval as Inspect's log, read back by Inspect."""
    bridge, stderr, logs = _eval(tmp_path, {"INSPECT_OTEL_CAPTURE_CONTENT": "true"})
    named = _named_copies(bridge)
    assert sorted(named) == logs
    for location, copy in named.items():
        assert Path(copy).parent == (bridge.span_dir / "redacted-logs").absolute()
        _same_eval(location, copy)
    assert sorted(p.name for p in (bridge.span_dir / "redacted-logs").iterdir()) == sorted(
        Path(p).name for p in logs
    )  # no scratch left behind
    assert "redacted copy" not in stderr


def test_content_off_writes_no_copy(tmp_path: Path) -> None:
    bridge, _, _ = _eval(tmp_path, {"INSPECT_OTEL_CAPTURE_CONTENT": "false"})
    assert _named_copies(bridge) == {}
    assert not (bridge.span_dir / "redacted-logs").exists()


def test_a_copy_that_cannot_be_written_costs_one_line(tmp_path: Path) -> None:
    """``redacted-logs`` is a file, so no copy can be written (as on a full or read-only disk):
    the eval succeeds, one line says so, and the live W&B upload redacts the log itself (it
    knows the eval's secrets) and says that too."""
    (tmp_path / "spans").mkdir(parents=True)
    (tmp_path / "spans" / "redacted-logs").write_text("in the way")
    extra = {"INSPECT_OTEL_CAPTURE_CONTENT": "true", "INSPECT_OTEL_EXPORTERS": "file,wandb"}
    _, stderr, logs = _eval(tmp_path, {**extra, "WANDB_DATA_DIR": str(tmp_path / "wandb-data")})
    lines = stderr.splitlines()
    failed = [line for line in lines if "the redacted copy of Inspect's log" in line]
    assert len(failed) == 1 and "could not be written" in failed[0], stderr[-3000:]
    fallback = [line for line in lines if "uploaded to W&B redacted with the secrets this process" in line]
    assert len(fallback) == 1, stderr[-3000:]
    assert all(Path(p).name in fallback[0] for p in logs)


# the default (the W&B worker copies); OTLP alone (its worker copies), to a port nothing listens on
WORKERS = {"file,wandb": {}, "otlp": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}}


@pytest.mark.parametrize("exporters", list(WORKERS))
def test_a_worker_copies_outside_the_eval_process(tmp_path: Path, exporters: str) -> None:
    """With a worker (the default file,wandb; otlp) the copy is written by the worker, not the
    eval's process: the eval's process is killed (SIGKILL) while a copy is being written (its
    scratch folder is there) and the copy still appears, whole, the same eval as Inspect's log.
    A copy written by the eval's process (a thread of it) dies with it and never appears."""
    bridge = BridgeEnv(tmp_path)
    extra = {
        **WORKERS[exporters],
        "INSPECT_OTEL_CAPTURE_CONTENT": "true",
        "INSPECT_OTEL_EXPORTERS": exporters,
        "INSPECT_OTEL_FLUSH_TIMEOUT": "120",  # no worker stopped at the exit deadline under load
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
    }
    args = [INSPECT, "eval", DEMO_TASK, "--model", "offline/careful", "-T", "samples=150", "--display=none"]
    env = subprocess_env({**bridge.env(), **extra})
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    copies = bridge.span_dir / "redacted-logs"
    deadline = time.monotonic() + 240
    while not any(copies.glob(".partial-*")):  # a copy is being written
        assert proc.poll() is None and time.monotonic() < deadline, "no copy seen being written"
        time.sleep(0.005)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    assert not list(copies.glob("*.eval")), "the copy was finished before the eval's process was killed"
    gone, alive = psutil.wait_procs(children, timeout=max(1.0, deadline - time.monotonic()))
    assert not alive, "the worker did not finish after the eval's process was killed"
    logs = [info.name.removeprefix("file://") for info in list_eval_logs(str(bridge.log_dir))]
    assert len(logs) == 1
    assert [p.name for p in copies.iterdir()] == [Path(logs[0]).name]  # whole: no scratch left
    _same_eval(logs[0], str(copies / Path(logs[0]).name))


def test_a_stopped_worker_leaves_the_copy_to_the_eval(tmp_path: Path) -> None:
    """The W&B worker dies (SIGKILL) before any task ends: the eval is unaffected (exit 0, its
    logs complete), the worker's failure is one line, and the eval's process makes the copies
    itself, so a later ``sync`` still finds them."""
    bridge = BridgeEnv(tmp_path)
    extra = {"INSPECT_OTEL_CAPTURE_CONTENT": "true", "INSPECT_OTEL_EXPORTERS": "file,wandb"}
    args = [INSPECT, "eval", DEMO_TASK, "--model", MODELS, "-T", "samples=60", "--display=none"]
    env = subprocess_env({**bridge.env(), **extra, "WANDB_DATA_DIR": str(tmp_path / "wandb-data")})
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (workers := [p for p in psutil.Process(proc.pid).children() if "wandb" in p.cmdline()]):
        assert proc.poll() is None and time.monotonic() < deadline, "no W&B worker seen"
        time.sleep(0.01)
    workers[0].kill()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    logs = sorted(info.name.removeprefix("file://") for info in list_eval_logs(str(bridge.log_dir)))
    assert len(logs) == 2 and all(read_eval_log(p, header_only=True).status == "success" for p in logs)
    failed = [line for line in stderr.splitlines() if "exporter process failed" in line]
    assert len(failed) == 1 and "wandb" in failed[0], stderr[-3000:]
    assert "was not written" not in stderr
    assert sorted(_named_copies(bridge)) == logs
    for location, copy in _named_copies(bridge).items():
        _same_eval(location, copy)
