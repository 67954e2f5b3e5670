"""Acknowledged means delivered: the receiver with the REAL Weave sink against real faults.

The faults are real: the local Weave trace server stopped and restarted EMPTY at the same address
(nothing it held survives, as after a crash of a server without durable storage), a server that
answers 500 for a while (a loopback proxy in front of the real server), and the receiver killed
with SIGKILL at several points of a send. The count: every span the receiver acknowledged (a 200
to ``otel-bridge sync --to otlp``), and every evaluation and prediction row in Weave, checked
against Inspect's own logs (``check_matches_inspect``: 2 evaluations, 6 rows each, one summarize
each, Inspect's scores and metrics) — so a lost row or a duplicate fails the test.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_bridge.records import read_span_file
from tests.support.bridge import OTEL_BRIDGE, subprocess_env
from tests.support.collector import free_port
from tests.support.e2e import Receiver
from tests.test_weave_sink import Run, check_matches_inspect, run_eval, unique
from tests.weave_server.harness import DUMMY_API_KEY, WeaveServer


@pytest.fixture(scope="module")
def recorded(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A real eval's span file and Inspect logs (span file only: nothing delivered live)."""
    run = run_eval(
        weave_server,
        unique("recorded"),
        tmp_path_factory.mktemp("recorded"),
        env={"INSPECT_OTEL_EXPORTERS": "file"},
    )
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    assert run.span_files
    return run


def _spans(run: Run) -> int:
    return sum(1 for path in run.span_files for _ in read_span_file(path))


def _receiver_env(url: str, project: str, workdir: Path) -> dict[str, str]:
    """The receiver's environment: the Weave sink pointed at ``url`` (what WeaveServer.env sets)."""
    entity, name = project.split("/")
    (workdir / "wandb-config").mkdir(parents=True, exist_ok=True)
    return subprocess_env(
        {
            "WF_TRACE_SERVER_URL": url,
            "WANDB_BASE_URL": url,
            "WANDB_API_KEY": DUMMY_API_KEY,
            "WANDB_CONFIG_DIR": str(workdir / "wandb-config"),
            "WANDB_ERROR_REPORTING": "false",
            "WANDB_SILENT": "true",
            "WANDB_ENTITY": entity,
            "WANDB_PROJECT": name,
            "INSPECT_OTEL_WEAVE_PROJECT": project,
            "INSPECT_OTEL_FLUSH_TIMEOUT": "2",  # a lost write is written again after 10 s
        }
    )


def _send(receiver: Receiver, run: Run) -> subprocess.CompletedProcess[str]:
    """Every span of the recording to the receiver over OTLP/HTTP; exit 0 = every request got its 200."""
    env = subprocess_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces"})
    return subprocess.run(
        [OTEL_BRIDGE, "sync", *map(str, run.span_files), "--to", "otlp", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _check_weave(server: WeaveServer, project: str, recorded: Run, receiver: Receiver) -> None:
    try:
        check_matches_inspect(server, Run(project, recorded.logs, recorded.span_files, recorded.proc, 0.0))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- receiver\n{receiver.log_tail(80)}") from exc


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.stop()


def test_weave_down_then_back_empty_every_acknowledged_evaluation_arrives_once(
    recorded: Run, tmp_path: Path, receivers: list[Receiver]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    project = unique("outage")
    receiver = Receiver(tmp_path, _receiver_env(url, project, tmp_path), to="weave")
    receivers.append(receiver)
    receiver.start()
    sent = _send(receiver, recorded)  # the Weave server is down: nothing listens on its port
    assert sent.returncode == 0, sent.stderr[-2000:]
    acknowledged = _spans(recorded)
    receiver.wait_until(lambda: receiver.health().get("status") == "degraded", 60, "degraded health")
    down = receiver.health()
    assert down["pending_bytes"] > 0 and down["failing"]["sink"] == "weave", down
    outage_until = time.monotonic() + 20  # longer than weave's own retries: the client gives up
    receiver.wait_until(lambda: time.monotonic() > outage_until, 30, "the outage")
    server = WeaveServer(port=port).start()  # same address, empty
    try:
        health = receiver.wait_idle(acknowledged, timeout=240)
        assert health["status"] == "ok" and health["dead_lettered_entries"] == 0, health
        _check_weave(server, project, recorded, receiver)
    finally:
        server.close()


class _FailingProxy:
    """A loopback HTTP proxy to the real server that answers 500 to everything while ``failing``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.failing = True
        self.refused = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.refuses(self.path, body):
                    proxy.refused += 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as resp:
                        status, data, rheaders = resp.status, resp.read(), resp.headers
                except urllib.error.HTTPError as err:
                    status, data, rheaders = err.code, err.read(), err.headers
                self.send_response(status)
                for key, value in rheaders.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuses(self, path: str, body: bytes | None) -> bool:
        """Whether this request gets a 500 (a subclass may refuse only some routes)."""
        return self.failing

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_weave_answering_500_for_a_while_loses_nothing(
    weave_server: WeaveServer, recorded: Run, tmp_path: Path, receivers: list[Receiver]
) -> None:
    proxy = _FailingProxy(weave_server.url)
    try:
        project = unique("five-hundred")
        receiver = Receiver(tmp_path, _receiver_env(proxy.url, project, tmp_path), to="weave")
        receivers.append(receiver)
        receiver.start()
        assert _send(receiver, recorded).returncode == 0
        receiver.wait_until(lambda: receiver.health().get("status") == "degraded", 60, "degraded health")
        receiver.wait_until(lambda: proxy.refused >= 5, 60, "several refused requests")
        proxy.failing = False
        health = receiver.wait_idle(_spans(recorded), timeout=240)
        assert health["status"] == "ok" and health["dead_lettered_entries"] == 0, health
        _check_weave(weave_server, project, recorded, receiver)
    finally:
        proxy.close()


@pytest.mark.parametrize("kill_after_s", [0.3, 1.5, 4.0])
def test_receiver_killed_mid_send_delivers_exactly_once_after_restart(
    weave_server: WeaveServer, recorded: Run, tmp_path: Path, receivers: list[Receiver], kill_after_s: float
) -> None:
    project = unique(f"kill-{kill_after_s}")
    receiver = Receiver(tmp_path, _receiver_env(weave_server.url, project, tmp_path), to="weave")
    receivers.append(receiver)
    receiver.start()
    sender = threading.Thread(target=_send, args=(receiver, recorded), daemon=True)
    sender.start()
    deadline = time.monotonic() + kill_after_s
    receiver.wait_until(lambda: time.monotonic() >= deadline, kill_after_s + 5, "the kill point")
    receiver.kill()
    sender.join(120)
    receiver.start()  # same port and spool: replays what was acknowledged but not committed
    assert _send(receiver, recorded).returncode == 0  # the sender's retry of everything
    receiver.wait_idle(1, timeout=240)
    receiver.wait_until(lambda: receiver.health().get("pending_bytes") == 0, 240, "spool drained")
    _check_weave(weave_server, project, recorded, receiver)
