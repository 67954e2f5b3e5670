"""OTLP/HTTP ``POST /v1/traces`` (protobuf and JSON, gzip/deflate) and ``GET /healthz`` on the stdlib server.

Stdlib ``ThreadingHTTPServer`` keeps the receiver dependency-light; the request volume is a few
export batches per second from collectors, not end-user traffic. Every refusal is a 4xx with a
``google.rpc.Status`` body in the request's encoding (the OTLP spec), limits are checked before a
byte is buffered where possible, and compressed bodies are inflated with a hard output cap.
"""

from __future__ import annotations

import json
import socket
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from otel_bridge.receiver.core import Receiver, health_json
from otel_bridge.receiver.requests import BadRequest, Unavailable, decode_json, decode_protobuf

TRACES_PATH = "/v1/traces"
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"
_DISCARD_CAP = 256 * 1024 * 1024


def _summary(body: bytes) -> bytes:
    """/healthz without the receiver token: status and counts; each sink only "ok" or "problem"."""
    doc = json.loads(body)
    sinks = doc.get("sinks") or {}
    doc["sinks"] = {name: "ok" if problem is None else "problem" for name, problem in sinks.items()}
    return json.dumps(doc).encode()


class TooLarge(ValueError):
    """Over the configured body limit (→ 413)."""


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompress ``data`` but never produce more than ``limit`` bytes (zip bombs → TooLarge)."""
    if encoding in ("", "identity"):
        return data
    wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    try:
        return _inflate(data, wbits, limit)
    except zlib.error as exc:
        if wbits == zlib.MAX_WBITS:  # "deflate" is sometimes sent raw, without the zlib header
            try:
                return _inflate(data, -zlib.MAX_WBITS, limit)
            except zlib.error:
                pass
        raise BadRequest(f"body is not valid {encoding} data ({exc})") from exc


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    out = bytearray()
    d = zlib.decompressobj(wbits)
    buf = data
    while True:
        out += d.decompress(buf, limit + 1 - len(out))
        if len(out) > limit:
            raise TooLarge(f"the decompressed body exceeds the limit of {limit} bytes")
        buf = d.unconsumed_tail
        if d.eof:
            rest = d.unused_data
            if wbits > zlib.MAX_WBITS and rest.strip(b"\0"):  # concatenated gzip members
                d = zlib.decompressobj(wbits)
                buf = rest
                continue
            return bytes(out)
        if not buf:
            raise BadRequest("the compressed body is truncated")


def _status_body(code: int, message: str, as_json: bool) -> tuple[bytes, str]:
    if as_json:
        return json.dumps({"code": code, "message": message}).encode(), JSON_TYPE
    return status_pb2.Status(code=code, message=message).SerializeToString(), PROTOBUF_TYPES[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


def make_http_server(host: str, port: int, receiver: Receiver) -> ThreadingHTTPServer:
    """Bind (not yet serving) an OTLP/HTTP server for ``receiver``."""

    class Handler(_OtlpHandler):
        pass

    Handler.receiver = receiver
    server_cls: type[ThreadingHTTPServer] = _Server
    if ":" in host:

        class _Server6(_Server):
            address_family = socket.AF_INET6

        server_cls = _Server6
    return server_cls((host.strip("[]"), port), Handler)


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otel-bridge-receiver"
    timeout = 30  # a client that stalls mid-body is dropped, its thread freed
    receiver: Receiver

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per export batch would drown the useful messages

    # -- responses -------------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name.replace("_", "-"), value)
        if close or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _fail(self, status: int, code: int, message: str, *, skip_body: bool = False, **headers: str) -> None:
        """Refuse with a Status body in the request's encoding.

        ``skip_body``: the body was not read. A known, acceptable Content-Length is read and thrown
        away so the connection stays usable; otherwise the connection is closed after a short,
        bounded drain (closing on unread bytes would reset it and lose the reply).
        """
        body, ctype = _status_body(code, message, self._wants_json())
        if not skip_body:
            self._send(status, body, ctype, headers=headers)
            return
        declared = self._declared_length()
        small = 0 <= declared <= min(self.receiver.options.max_body_bytes, 1024 * 1024)
        if small and len(self.rfile.read(declared)) == declared:
            self._send(status, body, ctype, headers=headers)
            return
        self._send(status, body, ctype, close=True, headers=headers)
        self._drain_briefly()

    def _drain_briefly(self) -> None:
        remaining = _DISCARD_CAP
        try:
            self.connection.settimeout(1.0)
            while remaining > 0:
                chunk = self.rfile.read1(65536)
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _wants_json(self) -> bool:
        return self._content_type() == JSON_TYPE

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib answers 501/505 to odd methods or versions; those are client errors here."""
        if code in (501, 505):
            code = 405 if code == 501 else 400
        super().send_error(code, message, explain)

    # -- GET -------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path in ("/healthz", "/health", "/"):
            ok, body = health_json(self.receiver)
            self._send(200 if ok else 503, body if self._may_see_details() else _summary(body), JSON_TYPE)
        elif path == TRACES_PATH:
            self._fail(405, code_pb2.INVALID_ARGUMENT, "use POST for /v1/traces", Allow="POST")
        else:
            self._fail(
                404, code_pb2.NOT_FOUND, f"no such path {path!r}; OTLP traces go to POST {TRACES_PATH}"
            )

    def _may_see_details(self) -> bool:
        """Sink problem text (URLs, project names, error text) only for a request with the token."""
        header = self.headers.get("Authorization")
        return self.receiver.options.token is not None and bool(header) and self.receiver.authorized(header)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        ok, _ = health_json(self.receiver)
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _not_allowed(self) -> None:
        self._fail(405, code_pb2.INVALID_ARGUMENT, "method not allowed", skip_body=True, Allow="POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815 - stdlib naming

    # -- POST ------------------------------------------------------------------------------------
    def _declared_length(self) -> int:
        """Content-Length as int; -1 when unknown (chunked, absent or malformed)."""
        if (self.headers.get("Transfer-Encoding") or "").strip():
            return -1
        raw = (self.headers.get("Content-Length") or "").strip()
        return int(raw) if raw.isdigit() else -1

    def _precheck(self) -> tuple[int, int, str] | None:
        """Refusals decidable from the headers alone: (status, grpc code, message)."""
        limit = self.receiver.options.max_body_bytes
        if self.path.split("?", 1)[0] != TRACES_PATH:
            return 404, code_pb2.NOT_FOUND, f"no such path; OTLP traces go to POST {TRACES_PATH}"
        if not self.receiver.authorized(self.headers.get("Authorization")):
            return (
                401,
                code_pb2.UNAUTHENTICATED,
                "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
            )
        ctype = self._content_type()
        if ctype not in PROTOBUF_TYPES and ctype != JSON_TYPE:
            return (
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Type {ctype or '(none)'!r}; "
                "send application/x-protobuf or application/json",
            )
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            return (
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Encoding {encoding!r}; use gzip or none",
            )
        te = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if te and te != "chunked":
            return 400, code_pb2.INVALID_ARGUMENT, f"unsupported Transfer-Encoding {te!r}"
        raw = self.headers.get("Content-Length")
        if te != "chunked":
            if raw is None:
                return 411, code_pb2.INVALID_ARGUMENT, "Content-Length is required"
            if not raw.strip().isdigit():
                return 400, code_pb2.INVALID_ARGUMENT, f"Content-Length {raw!r} is not a byte count"
            if int(raw) > limit:
                return (
                    413,
                    code_pb2.RESOURCE_EXHAUSTED,
                    f"body of {int(raw)} bytes exceeds the limit of {limit} bytes",
                )
        return None

    def handle_expect_100(self) -> bool:
        """Refuse before the client uploads a body we would reject anyway."""
        refusal = self._precheck()
        if refusal is not None:
            status, code, message = refusal
            body, ctype = _status_body(code, message, self._wants_json())
            self._send(status, body, ctype, close=True)
            return False
        return super().handle_expect_100()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        try:
            self._post()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception as exc:  # a bug: answer 500 (retryable) rather than drop the connection
            self.receiver.note_internal_error(exc)
            self._send(500, f"internal error: {type(exc).__name__}".encode(), "text/plain", close=True)

    def _post(self) -> None:
        refusal = self._precheck()
        if refusal is not None:
            status, code, message = refusal
            headers = {"WWW_Authenticate": "Bearer"} if status == 401 else {}
            self._fail(status, code, message, skip_body=True, **headers)
            return
        limit = self.receiver.options.max_body_bytes
        try:
            raw = self._read_body(limit)
            body = inflate(raw, (self.headers.get("Content-Encoding") or "").strip().lower(), limit)
        except TooLarge as exc:
            self._fail(413, code_pb2.RESOURCE_EXHAUSTED, str(exc))
            if self.close_connection:  # a chunked body cut short: the rest is still coming
                self._drain_briefly()
            return
        except BadRequest as exc:
            self._fail(400, code_pb2.INVALID_ARGUMENT, str(exc))
            return
        as_json = self._wants_json()
        try:
            request = decode_json(body) if as_json else decode_protobuf(body)
        except BadRequest as exc:
            self._fail(400, code_pb2.INVALID_ARGUMENT, str(exc))
            return
        try:
            outcome = self.receiver.accept(request, None if as_json else body)
        except BadRequest as exc:
            self._fail(400, code_pb2.INVALID_ARGUMENT, str(exc))
            return
        except Unavailable as exc:
            self._fail(503, code_pb2.UNAVAILABLE, str(exc), Retry_After="5")
            return
        response = outcome.response()
        if as_json:
            payload = json.dumps(json_format.MessageToDict(response)).encode()
            self._send(200, payload, JSON_TYPE)
        else:
            self._send(200, response.SerializeToString(), PROTOBUF_TYPES[0])

    def _read_body(self, limit: int) -> bytes:
        if self._declared_length() == -1:
            return self._read_chunked(limit)
        length = int((self.headers.get("Content-Length") or "0").strip())
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise BadRequest(f"the body ended after {len(data)} of {length} bytes (Content-Length)")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequest("malformed chunked body") from None
            if size < 0:
                self.close_connection = True
                raise BadRequest("malformed chunked body")
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return bytes(out)
            if len(out) + size > limit:
                self.close_connection = True
                raise TooLarge(f"the body exceeds the limit of {limit} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                self.close_connection = True
                raise BadRequest("the chunked body is truncated")
            out += chunk
            self.rfile.readline(1024)
