"""OTLP/gRPC ``TraceService/Export`` on grpcio, with the same auth, validation and spool-before-ack rules.

The request is registered as raw bytes (no generated deserializer) so a malformed message is an
INVALID_ARGUMENT with a clear message instead of grpcio's generic INTERNAL. grpcio enforces the
size limit itself (RESOURCE_EXHAUSTED), on the decompressed message.
"""

from __future__ import annotations

from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_bridge.receiver.core import Receiver
from otel_bridge.receiver.requests import BadRequest, Unavailable, decode_protobuf

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _export(receiver: Receiver, body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
    metadata = {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}
    if not receiver.authorized(metadata.get("authorization")):
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or wrong bearer token (send metadata 'authorization: Bearer <token>')",
        )
    try:
        request = decode_protobuf(body)
    except BadRequest as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    try:
        outcome = receiver.accept(request, body)
    except BadRequest as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except Unavailable as exc:
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    return outcome.response()


def make_grpc_server(host: str, port: int, receiver: Receiver) -> tuple[grpc.Server, int]:
    """Bind (and start) an OTLP/gRPC server; returns it and the bound port."""
    limit = receiver.options.max_body_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otel-bridge-grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=64,
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                lambda body, context: _export(receiver, body, context),
                request_deserializer=None,
                response_serializer=ExportTraceServiceResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    address = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for OTLP/gRPC on {address} ({exc})") from exc
    if bound == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    server.start()
    return server, bound
