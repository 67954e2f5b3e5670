"""Build and run the real OpenTelemetry Collector distribution and Jaeger v2 for end-to-end tests.

Why this exists: there is no docker engine on the test machines, so the tests build the same
collector docker-compose describes (``collector/builder-config.yaml`` via ``collector/build.sh``,
cached) and run it with *the very config file compose mounts*, changing addresses and ports through
environment variables only. Processes bind 127.0.0.1 on free ports, log to files (shown when a
readiness wait fails) and can be stopped gracefully or killed with SIGKILL to test crash recovery.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = REPO / "collector"
BUILD_SCRIPT = COLLECTOR_DIR / "build.sh"
COLLECTOR_CONFIG = COLLECTOR_DIR / "otelcol-config.yaml"
BACKENDS_DIR = COLLECTOR_DIR / "backends"
JAEGER_CONFIG = COLLECTOR_DIR / "jaeger-config.yaml"

# Short batching and retry intervals so tests run in seconds (production defaults: 1 s / 5 s / 30 s).
FAST_ENV: dict[str, str] = {
    "OTELCOL_BATCH_TIMEOUT": "100ms",
    "OTELCOL_RETRY_INITIAL_INTERVAL": "100ms",
    "OTELCOL_RETRY_MAX_INTERVAL": "500ms",
    "OTELCOL_LOG_LEVEL": "info",
}
BUILD_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Binaries:
    """Paths of the built executables."""

    collector: Path
    jaeger: Path


@functools.cache
def build_binaries() -> Binaries:
    """Run ``collector/build.sh all`` once per process (a no-op when the cache is warm)."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "all"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"collector/build.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    paths = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    try:
        return Binaries(collector=Path(paths["collector"]), jaeger=Path(paths["jaeger"]))
    except KeyError as exc:
        raise RuntimeError(f"build.sh printed no {exc} path:\n{proc.stdout}\n{proc.stderr}") from exc


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bound and released), never one handed out before
    in this process: the kernel may offer a released port again, and two services of one test
    would then race for it (a collector once failed with "bind: address already in use")."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET returning (status, body); connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a collector or Jaeger running after the test process ends (e.g. on a timeout)."""
    for proc in list(_LIVE):
        proc.kill()


class ManagedProcess:
    """A child process with a log file, readiness wait, graceful stop and SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the process (appending to its log) and wait until ``ready()``."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _LIVE.add(self)
        self.wait_until(self.ready, timeout=60.0, what="ready")

    def ready(self) -> bool:
        """Subclasses: whether the service answers."""
        return True

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until true; fail fast with the log tail if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"{self.name} exited ({code}) before {what}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} not {what} after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (the collector flushes/persists on shutdown); SIGKILL if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (kill -9): no shutdown hooks run, exactly like a crash or OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_text(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        """The end of the log, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _base_env() -> dict[str, str]:
    """A clean environment: no OTEL_* / collector vars leak in from the developer's shell."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "TZ")}


class Collector(ManagedProcess):
    """The built collector running ``collector/otelcol-config.yaml`` (+ overlays), configured by env only.

    ``overlays`` are file names in ``collector/backends`` (e.g. ``"otlp-stripped.yaml"``). Ports are
    picked once, so ``start()`` after ``stop()``/``kill()`` restarts at the same addresses with the same
    storage directory -- what a restarted container with its volume looks like.
    """

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        *,
        bridge_endpoint: str,
        jaeger_endpoint: str,
        overlays: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        storage_dir: Path | None = None,
    ) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.health_port, self.metrics_port = free_port(), free_port()
        self.prometheus_port = free_port()  # the metrics pipeline's exporter (collectors never share 8889)
        self.storage_dir = storage_dir or workdir / "otelcol-storage"
        full_env = _base_env() | FAST_ENV
        full_env |= {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.grpc_port}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{self.health_port}",
            "OTELCOL_METRICS_PORT": str(self.metrics_port),
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{self.prometheus_port}",
            "OTELCOL_STORAGE_DIR": str(self.storage_dir),
            "BRIDGE_RECEIVER_ENDPOINT": bridge_endpoint,
            "JAEGER_OTLP_ENDPOINT": jaeger_endpoint,
        }
        full_env |= dict(env or {})
        argv = [str(binary), *config_args(overlays)]
        super().__init__("collector", argv, full_env, workdir / "collector.log")

    def ready(self) -> bool:
        """health_check answers 200 once every pipeline has started."""
        return http_get(self.health_url, timeout=1.0)[0] == 200

    @property
    def health_url(self) -> str:
        """The health_check extension's URL."""
        return f"http://127.0.0.1:{self.health_port}/"

    @property
    def prometheus_url(self) -> str:
        """The Prometheus exposition of the metrics pipeline (what a Prometheus server scrapes)."""
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_http_traces_url(self) -> str:
        """Traces URL of the OTLP/HTTP receiver (what the Python HTTP exporter wants)."""
        return f"{self.otlp_http_endpoint}/v1/traces"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """``host:port`` of the OTLP/gRPC receiver."""
        return f"127.0.0.1:{self.grpc_port}"


def config_args(overlays: Sequence[str] = ()) -> list[str]:
    """``--config`` flags for the base config plus overlays from ``collector/backends``."""
    files = [COLLECTOR_CONFIG, *(BACKENDS_DIR / name for name in overlays)]
    return [f"--config={f}" for f in files]


def validate_config(
    binary: Path, overlays: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``<collector> validate`` on the base config plus overlays (exit 0 = loads and validates)."""
    return subprocess.run(
        [str(binary), "validate", *config_args(overlays)],
        env=_base_env() | dict(env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Jaeger(ManagedProcess):
    """Jaeger v2 (in-memory storage) with ``collector/jaeger-config.yaml`` on free loopback ports."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.otlp_grpc_port, self.otlp_http_port = free_port(), free_port()
        self.query_http_port, self.query_grpc_port = free_port(), free_port()
        env = _base_env() | {
            "JAEGER_OTLP_GRPC_LISTEN": f"127.0.0.1:{self.otlp_grpc_port}",
            "JAEGER_OTLP_HTTP_LISTEN": f"127.0.0.1:{self.otlp_http_port}",
            "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{self.query_http_port}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{self.query_grpc_port}",
            "JAEGER_BATCH_TIMEOUT": "50ms",
        }
        super().__init__("jaeger", [str(binary), f"--config={JAEGER_CONFIG}"], env, workdir / "jaeger.log")

    def ready(self) -> bool:
        """The query API answers."""
        return http_get(f"{self.query_url}/api/services", timeout=1.0)[0] == 200

    @property
    def query_url(self) -> str:
        """Base URL of the query API (and UI, when assets are present)."""
        return f"http://127.0.0.1:{self.query_http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """``host:port`` for an OTLP/gRPC exporter (the collector's JAEGER_OTLP_ENDPOINT)."""
        return f"127.0.0.1:{self.otlp_grpc_port}"

    def _api(self, path: str) -> Any:
        status, body = http_get(f"{self.query_url}{path}")
        if status != 200:
            raise RuntimeError(f"jaeger {path}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)

    def services(self) -> list[str]:
        """Service names Jaeger has seen."""
        return list(self._api("/api/services").get("data") or [])

    def traces(self, service: str, limit: int = 1000) -> list[dict[str, Any]]:
        """``GET /api/traces?service=...``: Jaeger's JSON traces (``traceID``, ``spans``, ``processes``)."""
        query = urllib.parse.urlencode({"service": service, "limit": limit, "lookback": "1h"})
        return list(self._api(f"/api/traces?{query}").get("data") or [])

    def wait_for_spans(self, service: str, n_spans: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until the service's traces hold at least ``n_spans`` distinct spans; return the traces."""
        deadline = time.monotonic() + timeout
        while True:
            traces = self.traces(service) if service in self.services() else []
            count = len({(s["traceID"], s["spanID"]) for t in traces for s in t["spans"]})
            if count >= n_spans:
                return traces
            if time.monotonic() >= deadline:
                raise TimeoutError(f"jaeger: {count}/{n_spans} spans for {service!r} after {timeout:.0f} s")
            time.sleep(0.2)
