"""Exit is bounded once for all destinations, against endpoints that accept and never answer.

A black hole is a loopback socket that accepts every connection and never sends a byte: the
worst case for a client (a closed port is refused at once; this one waits for its timeouts).
OTLP, Weave (``WF_TRACE_SERVER_URL``/``WANDB_BASE_URL``) and W&B online (``WANDB_BASE_URL`` and a
fake API key, so wandb really tries) all point at it at once. The eval's results and exit code are
those of the same eval without the bridge, its process ends within the documented deadline
(flush timeout + ``EXIT_GRACE_S`` after the run, plus a stated margin for the bridge's start-up
and the worker teardown), and one line says what was not delivered and how to deliver it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from inspect_ai.log import EvalLog, list_eval_logs, read_eval_log

from otel_bridge.pipeline import EXIT_GRACE_S
from tests.support.bridge import INSPECT, ROOT, subprocess_env

FLUSH_TIMEOUT_S = 3.0
#: the eval process's own exit after the deadline (killing the workers) and this host's noise
MARGIN_S = 3.0
FAKE_API_KEY = "blackhole" + "0" * 31  # 40 characters, the shape wandb checks


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A loopback port that accepts connections, reads what is sent, and never answers."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def swallow(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set() and conn.recv(65536):
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            threading.Thread(target=swallow, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.close()
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()


def _run(args: list[str], env: dict[str, str], stderr_path: Path) -> tuple[int, float, float]:
    """The eval's exit code, wall time and exit time (its own process, not helpers it leaves)."""
    with open(stderr_path, "w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        code = proc.wait(timeout=300)
        return code, time.monotonic() - started, time.time()


def _log(log_dir: Path) -> EvalLog:
    (info,) = list_eval_logs(str(log_dir))
    log = read_eval_log(info)
    assert log.status == "success" and log.results is not None
    return log


def _metrics(log: EvalLog) -> dict[str, dict[str, float]]:
    assert log.results is not None
    return {s.name: {m: v.value for m, v in s.metrics.items()} for s in log.results.scores}


def _after_completed(log: EvalLog, exited: float) -> float:
    assert log.stats.completed_at
    return exited - datetime.fromisoformat(log.stats.completed_at).timestamp()


def test_black_holed_otlp_weave_and_wandb_at_once_bound_the_exit(tmp_path: Path) -> None:
    args = [INSPECT, "eval", "examples/bridge_demo.py@arithmetic", "--model", "offline/careful"]
    args += ["-T", "samples=4", "--display", "none"]
    off_log_dir = tmp_path / "off"
    off_code, off_s, off_exited = _run(
        [*args, "--log-dir", str(off_log_dir)], subprocess_env(), tmp_path / "off.err"
    )
    with black_hole() as port:
        hole = f"http://127.0.0.1:{port}"
        env = subprocess_env(
            {
                "INSPECT_OTEL_ENABLED": "1",
                "INSPECT_OTEL_EXPORTERS": "file,otlp,weave,wandb",
                "INSPECT_OTEL_DIR": str(tmp_path / "spans"),
                "INSPECT_OTEL_FLUSH_TIMEOUT": str(FLUSH_TIMEOUT_S),
                "OTEL_EXPORTER_OTLP_ENDPOINT": hole,
                "WF_TRACE_SERVER_URL": hole,
                "WANDB_BASE_URL": hole,
                "WANDB_API_KEY": FAKE_API_KEY,
                "WANDB_MODE": "online",
                "WANDB_ENTITY": "ent",
                "INSPECT_OTEL_WEAVE_PROJECT": "ent/blackhole",
                "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
                "WANDB_DIR": str(tmp_path / "wandb"),
                "WANDB_SILENT": "true",
                "WANDB_ERROR_REPORTING": "false",
                "HOME": str(tmp_path / "home"),
            }
        )
        on_code, on_s, exited = _run([*args, "--log-dir", str(tmp_path / "on")], env, tmp_path / "on.err")
    stderr = (tmp_path / "on.err").read_text()
    assert on_code == off_code == 0, stderr[-4000:]
    on_log, off_log = _log(tmp_path / "on"), _log(off_log_dir)
    assert _metrics(on_log) == _metrics(off_log)
    deadline_s = FLUSH_TIMEOUT_S + EXIT_GRACE_S
    # from Inspect's own record of when the eval completed to the process's exit, against the
    # same span without the bridge (Inspect's own teardown takes a second or more on its own)
    on_after_s, off_after_s = _after_completed(on_log, exited), _after_completed(off_log, off_exited)
    print(
        f"black hole: exit {on_after_s:.1f}s after Inspect completed the eval, {off_after_s:.1f}s "
        f"without the bridge (deadline {deadline_s:g}s + margin {MARGIN_S:g}s); "
        f"wall {on_s:.1f}s with the bridge, {off_s:.1f}s without"
    )
    assert on_after_s - off_after_s <= deadline_s + MARGIN_S, (on_after_s, off_after_s, stderr[-4000:])
    lines = [ln for ln in stderr.splitlines() if ln.startswith("inspect-otel-bridge:")]
    assert len(lines) == 1, stderr[-4000:]
    (line,) = lines
    print(line)
    (span_file,) = (tmp_path / "spans").glob("*.jsonl")
    assert line.startswith("inspect-otel-bridge: not delivered: ")
    for name in ("otlp", "weave"):
        assert re.search(rf"\b{name}: \d+ span\(s\)", line), (name, line)
    match = re.search(r"`otel-bridge sync (\S+) --to (\S+)`", line)
    assert match is not None and match.group(1) == str(span_file), line
    targets = set(match.group(2).split(","))
    assert {"otlp", "weave"} <= targets
    # W&B either did not finish by the deadline (then sync delivers it) or, having found its
    # server silent, wrote the run offline and said how to upload it
    assert "wandb" in targets or re.search(r"wandb: .*`wandb sync \S+`", line), line
