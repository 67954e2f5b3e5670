"""A long-running receiver stays flat: 50 evals in a row through one `otel-bridge serve`.

Each eval is a real recorded eval (the demo's span file) as another run: every id fresh
(``bench.scale_spans.fresh_copy``), sent over OTLP/HTTP as the collector would. Oracles: the
Weave server's own evaluations (every one complete, two per eval) and the offline W&B runs'
transaction logs (every run finished with exit code 0); memory and open descriptors of the
receiver process, read by psutil, after the 5th and the 50th eval's delivery.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

import psutil
import pytest

from bench.scale_spans import fresh_copy
from otel_bridge.otlp_json import json_to_request
from tests.support.demo_spans import demo_span_file
from tests.support.e2e import sink_env
from tests.support.wandb_log import WandbRun, find_run_dirs, load_run
from tests.test_receiver import ReceiverProcess
from tests.weave_server.harness import WeaveServer

EVALS = 50
PAIRS = 2  # the demo eval: one task on two models


def _post(port: int, body: bytes) -> None:
    deadline = time.monotonic() + 60
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status == 200:
            return
        assert response.status == 503 and time.monotonic() < deadline, response.status
        time.sleep(0.1)  # the spool's backlog is over its limit: retry, as an exporter does


def _complete(server: WeaveServer, project: str) -> int:
    evals = server.evaluations(project)
    return sum(server.evaluation_status(project, e["id"]).get("code") == "complete" for e in evals)


def _wait_complete(server: WeaveServer, project: str, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while (done := _complete(server, project)) < count:
        assert time.monotonic() < deadline, f"{done} of {count} evaluations complete"
        time.sleep(0.5)


def _footprint(pid: int) -> tuple[int, int]:
    proc = psutil.Process(pid)
    return proc.memory_info().rss, proc.num_fds()


@dataclass
class Soak:
    footprint: dict[int, tuple[int, int]]  # after the nth eval: RSS bytes, open fds
    complete: int
    runs: list[WandbRun]
    exit_code: int
    log: str


@pytest.fixture(scope="module")
def soak(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> Soak:
    tmp_path = tmp_path_factory.mktemp("soak")
    project = f"soak/receiver-{int(time.time())}"
    wandb_dir = tmp_path / "wandb"
    env = sink_env(weave_server, project, wandb_dir)  # the receiver's Weave + offline W&B settings
    receiver = ReceiverProcess(tmp_path / "spool", tmp_path / "spans", "weave,wandb", env).start()
    assert receiver.proc is not None
    source = demo_span_file()
    after: dict[int, tuple[int, int]] = {}
    try:
        for n in range(1, EVALS + 1):
            for line in fresh_copy(source, n):
                _post(receiver.http_port, json_to_request(line).SerializeToString())
            if n in (5, EVALS):
                _wait_complete(weave_server, project, n * PAIRS)
                time.sleep(2)  # the W&B run of the last eval finishes after its Weave evaluations
                after[n] = _footprint(receiver.proc.pid)
        code = receiver.stop()
    finally:
        if receiver.proc.poll() is None:
            receiver.proc.kill()
    runs = [load_run(d) for d in find_run_dirs(wandb_dir)]
    return Soak(after, _complete(weave_server, project), runs, code, "".join(receiver.lines[-40:]))


@pytest.mark.timeout(900)
def test_fifty_evals_in_a_row_are_all_complete_and_fds_flat(soak: Soak) -> None:
    assert soak.exit_code == 0, soak.log
    assert soak.complete == EVALS * PAIRS
    assert len(soak.runs) == EVALS and all(r.exit_code == 0 for r in soak.runs)
    fds5, fds50 = soak.footprint[5][1], soak.footprint[EVALS][1]
    assert fds50 <= fds5 * 1.10, f"{fds5} open fds after 5 evals, {fds50} after {EVALS}"


@pytest.mark.timeout(900)
def test_fifty_evals_in_a_row_keep_the_receiver_rss_flat(soak: Soak) -> None:
    rss5, rss50 = soak.footprint[5][0], soak.footprint[EVALS][0]
    fds = soak.footprint[5][1], soak.footprint[EVALS][1]
    print(f"receiver after 5 / {EVALS} evals: RSS {rss5 / 2**20:.1f} / {rss50 / 2**20:.1f} MB, fds {fds}")
    assert rss50 <= rss5 * 1.10, (
        f"RSS {rss5 / 2**20:.0f} MB after 5 evals, {rss50 / 2**20:.0f} MB after {EVALS}"
    )
