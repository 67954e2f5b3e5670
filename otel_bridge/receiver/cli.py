"""``otel-bridge serve`` argument parsing; the lead wires ``add_serve_command`` into ``otel_bridge.cli``.

Also runnable on its own (``python -m otel_bridge.receiver.cli serve ...``), which the tests use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otel_bridge.config import load_settings
from otel_bridge.receiver.server import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    ReceiverConfigError,
    build_sinks,
    default_sink_names,
    serve,
)


def add_serve_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``serve``; its handler is ``run_serve`` (also set as ``func``)."""
    p = subparsers.add_parser(
        "serve",
        help="receive OTLP traces (from a collector) and translate them to W&B Weave / W&B Models",
        description=(
            "OTLP/HTTP (POST /v1/traces, protobuf or JSON) and OTLP/gRPC receiver feeding the Weave and "
            "W&B translators. Binds 127.0.0.1 by default; any other address requires "
            "INSPECT_OTEL_RECEIVER_TOKEN. Accepted requests are spooled to disk before they are "
            "acknowledged and replayed after a restart."
        ),
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_HTTP_PORT, help="OTLP/HTTP port (default 4320, 0 = any)"
    )
    p.add_argument(
        "--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="OTLP/gRPC port (default 4321, 0 = any)"
    )
    p.add_argument("--no-grpc", action="store_true", help="do not listen for OTLP/gRPC")
    p.add_argument(
        "--to",
        default=None,
        help="comma-separated sinks: weave, wandb, file (span files in INSPECT_OTEL_DIR), or "
        "package.module:factory (default: the weave/wandb/file entries of INSPECT_OTEL_EXPORTERS, else file)",
    )
    p.add_argument(
        "--spool-dir",
        type=Path,
        default=None,
        help="write-ahead spool, one per receiver "
        "(default INSPECT_OTEL_RECEIVER_SPOOL_DIR or ./otel-receiver-spool)",
    )
    p.add_argument(
        "--span-dir", type=Path, default=None, help="where the file sink writes (default INSPECT_OTEL_DIR)"
    )
    p.set_defaults(func=run_serve)
    return p


def run_serve(args: argparse.Namespace) -> int:
    """Build sinks from the arguments and environment, then ``serve`` until SIGTERM/SIGINT."""
    settings = load_settings()
    if args.span_dir is not None:
        settings = settings.with_span_dir(args.span_dir)
    spool_dir: Path = args.spool_dir or settings.receiver.spool_dir
    names = [n.strip() for n in args.to.split(",") if n.strip()] if args.to else default_sink_names(settings)
    try:
        from otel_bridge.receiver.server import check_bind

        check_bind(args.host, settings.receiver.token)  # before any sink logs in anywhere
        sinks = build_sinks(names, settings, spool_dir)
    except ReceiverConfigError as exc:
        print(f"otel-bridge serve: {exc}", file=sys.stderr, flush=True)
        return 2
    return serve(
        settings,
        host=args.host,
        http_port=args.port,
        grpc_port=None if args.no_grpc else args.grpc_port,
        sinks=sinks,
        spool_dir=spool_dir,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_command(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
