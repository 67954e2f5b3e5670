"""/healthz: status and counts for anyone; sink problem text only with the receiver token.

A sink's problem line can hold a server URL, a project name or an upstream error's text; the
receiver may listen beyond loopback. The planted marker in a problem line is the oracle.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

from otel_bridge.receiver.requests import ReceiverOptions
from otel_bridge.receiver.server import ReceiverServer
from otel_bridge.records import SpanRecord
from otel_bridge.sinks.base import RecordSink

MARKER = f"private-project-{uuid.uuid4().hex}"


class TroubledSink(RecordSink):
    """Consumes nothing and reports a problem naming a private place (a stand-in for a sink whose
    server refused it: the HTTP layer is what is under test)."""

    name = "troubled"

    def consume(self, records: Sequence[SpanRecord]) -> None:
        return None

    def problem(self) -> str | None:
        return f"https://wandb.example/{MARKER} refused the upload"


def _get(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz", headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _serve(tmp_path: Path, token: str | None) -> ReceiverServer:
    server = ReceiverServer(
        [TroubledSink()], tmp_path / "spool", ReceiverOptions(token=token), http_port=0, grpc_port=0
    )
    server.start()
    return server


def test_healthz_shows_problem_text_only_with_the_token(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    server = _serve(tmp_path, token)
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            status, body = _get(server.http_port, headers)
            assert status == 200 and MARKER.encode() not in body, headers
            doc = json.loads(body)
            assert doc["status"] == "ok" and doc["sinks"] == {"troubled": "problem"}
            assert isinstance(doc["delivered_spans"], int)
        status, body = _get(server.http_port, {"Authorization": f"Bearer {token}"})
        assert status == 200 and MARKER in json.loads(body)["sinks"]["troubled"]
    finally:
        server.stop(10)


def test_healthz_without_a_configured_token_shows_no_problem_text(tmp_path: Path) -> None:
    server = _serve(tmp_path, None)
    try:
        status, body = _get(server.http_port, {"Authorization": "Bearer anything"})
        assert status == 200 and MARKER.encode() not in body
        assert json.loads(body)["sinks"] == {"troubled": "problem"}
    finally:
        server.stop(10)
