"""``serve()``: both transports around one spool and one sink worker, with the bind policy and signals.

Binding anything but loopback without INSPECT_OTEL_RECEIVER_TOKEN is refused: the receiver writes
to W&B with the operator's credentials, so an open port would let anyone on the network write there.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import TextIO

import grpc

from otel_bridge.config import Settings
from otel_bridge.receiver.core import Receiver
from otel_bridge.receiver.grpc import make_grpc_server
from otel_bridge.receiver.http import make_http_server
from otel_bridge.receiver.requests import ReceiverOptions
from otel_bridge.receiver.spool import Spool, SpoolInUse
from otel_bridge.sinks.base import RecordSink
from otel_bridge.sinks.file import FileRecordSink

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 4320
DEFAULT_GRPC_PORT = 4321
RECORD_SINKS = ("weave", "wandb", "file")


class ReceiverConfigError(RuntimeError):
    """The receiver cannot start as configured (message says what to change)."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if token is None and not is_loopback(host):
        raise ReceiverConfigError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could write to "
            "your W&B projects. Set INSPECT_OTEL_RECEIVER_TOKEN (clients then send "
            "'Authorization: Bearer <token>'), or bind 127.0.0.1."
        )


def instance_id(spool_dir: Path) -> str:
    """A stable id per spool directory (= per receiver), used to name its span files."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / "instance"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except OSError:
        pass
    value = uuid.uuid4().hex[:12]
    path.write_text(value, encoding="utf-8")
    return value


def build_sinks(names: Sequence[str], settings: Settings, spool_dir: Path) -> list[RecordSink]:
    """``weave``/``wandb`` (the shared translators), ``file`` (span files) or ``module:factory``.

    A ``module:factory`` entry is called with the Settings and must return a RecordSink: custom
    destinations without forking the receiver.
    """
    sinks: list[RecordSink] = []
    # the destinations are these names, not INSPECT_OTEL_EXPORTERS (sinks cross-reference each other)
    settings = settings.with_exporters(tuple(n for n in names if ":" not in n))
    for name in names:
        if name == "file":
            sinks.append(FileRecordSink(settings.core.span_dir, prefix=f"received-{instance_id(spool_dir)}-"))
        elif name in ("weave", "wandb"):
            from otel_bridge.sinks.registry import make_record_sink

            try:
                sink = make_record_sink(name, settings)
            except ImportError as exc:
                raise ReceiverConfigError(f"the {name} sink is not available ({exc})") from exc
            if sink is None:
                raise ReceiverConfigError(f"the {name} sink is not available")
            sinks.append(sink)
        elif ":" in name:
            module, _, attr = name.partition(":")
            try:
                factory = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ReceiverConfigError(f"cannot load the sink factory {name!r} ({exc})") from exc
            sinks.append(factory(settings))
        else:
            raise ReceiverConfigError(
                f"unknown sink {name!r} (use {', '.join(RECORD_SINKS)} or package.module:factory)"
            )
    if not sinks:
        raise ReceiverConfigError("no sink selected (use --to weave,wandb,file)")
    return sinks


class ReceiverServer:
    """The running receiver: spool, sink worker, OTLP/HTTP and OTLP/gRPC; tests drive it directly."""

    def __init__(
        self,
        sinks: Sequence[RecordSink],
        spool_dir: Path,
        options: ReceiverOptions,
        host: str = DEFAULT_HOST,
        http_port: int = DEFAULT_HTTP_PORT,
        grpc_port: int | None = DEFAULT_GRPC_PORT,
    ) -> None:
        self.sinks = list(sinks)
        self.spool_dir = spool_dir
        self.options = options
        self.host = host
        self._http_port = http_port
        self._grpc_port = grpc_port
        self.receiver: Receiver | None = None
        self.replayed_entries = 0
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None

    def start(self) -> ReceiverServer:
        check_bind(self.host, self.options.token)
        spool = Spool(self.spool_dir, self.options.spool_max_bytes, self.options.dedup_spans)
        receiver = Receiver(self.sinks, spool, self.options)
        self.replayed_entries = receiver.start()  # before listening: replayed keys dedup early retries
        grpc_server = None
        try:
            http_server = make_http_server(self.host, self._http_port, receiver)
            try:
                if self._grpc_port is not None:
                    grpc_server, self._grpc_port = make_grpc_server(self.host, self._grpc_port, receiver)
            except OSError:
                http_server.server_close()
                raise
        except OSError:
            receiver.stop(0)
            raise
        self._http_port = int(http_server.server_address[1])
        self._http = http_server
        self._http_thread = threading.Thread(
            target=http_server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="otel-bridge-http",
            daemon=True,
        )
        self._http_thread.start()
        self._grpc = grpc_server
        self.receiver = receiver
        return self

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop listening, then deliver and flush what was accepted. True when nothing is left over."""
        if self.receiver is None:
            return True
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait()
        drained = self.receiver.stop(self.options.drain_timeout_s if timeout_s is None else timeout_s)
        self.receiver = None
        return drained

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def grpc_port(self) -> int | None:
        return self._grpc_port

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    settings: Settings,
    host: str = DEFAULT_HOST,
    http_port: int = DEFAULT_HTTP_PORT,
    grpc_port: int | None = DEFAULT_GRPC_PORT,
    sinks: Sequence[RecordSink] | None = None,
    spool_dir: Path | None = None,
    *,
    options: ReceiverOptions | None = None,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); returns the process exit code."""
    out = out or sys.stderr
    options = options or ReceiverOptions.from_settings(settings)
    spool_dir = spool_dir or settings.receiver.spool_dir
    stop_event = stop or threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    if threading.current_thread() is threading.main_thread():  # before "listening": no signal is missed
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    for problem in settings.problems:
        print(f"otel-bridge serve: {problem}", file=out, flush=True)
    try:
        check_bind(host, options.token)
        if sinks is None:
            sinks = build_sinks(default_sink_names(settings), settings, spool_dir)
        server = ReceiverServer(sinks, spool_dir, options, host, http_port, grpc_port).start()
    except (ReceiverConfigError, SpoolInUse, OSError) as exc:
        print(f"otel-bridge serve: {exc}", file=out, flush=True)
        for sink in sinks or ():
            with contextlib.suppress(Exception):
                sink.close()
        return 2
    if server.replayed_entries:
        print(
            f"otel-bridge serve: replaying {server.replayed_entries} spooled request(s) not yet delivered",
            file=out,
            flush=True,
        )
    if options.token is not None:
        print(
            "otel-bridge serve: a bearer token is required (INSPECT_OTEL_RECEIVER_TOKEN): clients send "
            "'Authorization: Bearer <token>'. Plain HTTP: keep it on a private network or put TLS in front.",
            file=out,
            flush=True,
        )
    shown = f"[{host}]" if ":" in host else host
    grpc_text = f" grpc={shown}:{server.grpc_port}" if server.grpc_port is not None else ""
    print(
        f"otel-bridge serve: listening http={shown}:{server.http_port}{grpc_text} "
        f"(OTLP/HTTP POST /v1/traces, GET /healthz); sinks: {', '.join(s.name for s in server.sinks)}; "
        f"spool: {spool_dir}",
        file=out,
        flush=True,
    )
    while not stop_event.wait(0.5):
        pass
    print("otel-bridge serve: stopping; delivering accepted spans…", file=out, flush=True)
    receiver = server.receiver
    drained = server.stop()
    delivered = receiver.delivered_spans if receiver is not None else 0
    if drained:
        print(f"otel-bridge serve: stopped; {delivered} span(s) delivered", file=out, flush=True)
        return 0
    print(
        f"otel-bridge serve: stopped with spooled spans not yet delivered; they are replayed on next start "
        f"from {spool_dir}",
        file=out,
        flush=True,
    )
    return 1


def default_sink_names(settings: Settings) -> list[str]:
    """The record sinks among INSPECT_OTEL_EXPORTERS (weave, wandb, file); ``file`` when none."""
    names = [n for n in settings.core.exporters if n in RECORD_SINKS]
    return names or ["file"]
