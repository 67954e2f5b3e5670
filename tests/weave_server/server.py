"""A real Weave trace server (weave 0.53.12's InMemoryTraceServer) behind a loopback HTTP API.

Run with the interpreter from ``tests/weave_server/venv.py``, never the project's venv:

    python server.py --port 8123

weave 0.54 (the client the project ships against) has no server code, so this program loads the
pure-Python copy of the production ClickHouse server from the pinned old wheel and puts the same
adapter production uses (``ExternalTraceServer`` + an ``IdConverter``) in front of it.  On top of
that it answers the few W&B GraphQL queries ``weave.init`` makes and Weave's OTLP endpoint.

Set ``WEAVE_TEST_SERVER_LOG=1`` to log every request (and every unknown route/query) to stderr.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import re
import sys
import threading
import traceback
import types
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------------------------------
# Import shims.  The old wheel's server modules import cloud SDKs (S3/GCS/Azure buckets, Kafka,
# ClickHouse driver, Redis, LiteLLM, Datadog) at module level although the in-memory server never
# calls them.  Installing them costs ~400 MB, so imports of those packages resolve to inert stub
# modules instead.  The wheel also lacks ``weave/trace_server/model_providers`` (a build-time
# generated module), which only the LLM playground reads.
# --------------------------------------------------------------------------------------------

STUBBED_PACKAGES: tuple[str, ...] = (
    "litellm",
    "openai",
    "boto3",
    "botocore",
    "azure",
    "google.cloud",
    "google.oauth2",
    "google.auth",
    "google.api_core",
    "confluent_kafka",
    "ddtrace",
    "clickhouse_connect",
    "redis",
)


class _StubMeta(type):
    """Metaclass of stub attributes: any attribute, call, subscript or union yields a stub."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls

    def __getitem__(cls, item: Any) -> Any:
        return cls

    def __or__(cls, other: Any) -> Any:
        return cls

    def __ror__(cls, other: Any) -> Any:
        return cls


def _stub_class(name: str) -> type:
    # Exception base: stubs are also used in ``except StubbedError:`` clauses.
    return _StubMeta(name, (Exception,), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves imports of ``STUBBED_PACKAGES`` (and their submodules) to ``_StubModule``s."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == p or fullname.startswith(p + ".") for p in STUBBED_PACKAGES):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _install_import_shims() -> None:
    sys.meta_path.insert(0, _StubFinder())
    pkg = types.ModuleType("weave.trace_server.model_providers")
    pkg.__path__ = []
    mod = types.ModuleType("weave.trace_server.model_providers.model_providers")

    class LLMModelProviderInfo(typing.TypedDict, total=False):
        litellm_provider: str
        api_key_name: str

    mod.VERTEX_PROVIDER_NAMES = frozenset()  # type: ignore[attr-defined]
    mod.LLMModelProviderInfo = LLMModelProviderInfo  # type: ignore[attr-defined]
    mod.read_model_to_provider_info_map = lambda *a, **k: {}  # type: ignore[attr-defined]
    sys.modules[pkg.__name__] = pkg
    sys.modules[mod.__name__] = mod


_install_import_shims()

# ruff: noqa: E402  (the imports below must run after the shims are installed)
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans
from pydantic import BaseModel, ValidationError
from weave.shared.errors import _get_error_registry
from weave.trace_server import errors as tsi_errors
from weave.trace_server import trace_server_interface as tsi
from weave.trace_server.external_to_internal_trace_server_adapter import (
    ExternalTraceServer,
    IdConverter,
)
from weave.trace_server.in_memory_trace_server import InMemoryTraceServer
from weave.trace_server.opentelemetry.genai_extraction import extract_genai_span
from weave.trace_server.opentelemetry.python_spans import Resource, Span
from weave.version import VERSION as SERVER_WEAVE_VERSION

LOG = os.environ.get("WEAVE_TEST_SERVER_LOG", "") not in ("", "0", "false")
USER_ID = "VXNlcjox"  # base64("User:1"), the shape W&B user ids have
USERNAME = "weave-test-user"
DEFAULT_ENTITY = os.environ.get("WEAVE_TEST_SERVER_DEFAULT_ENTITY", "weave-test-entity")


def log(msg: str) -> None:
    if LOG:
        print(f"[weave-test-server] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Id conversion: production maps "entity/project" to opaque internal ids; refs stored internally
# use those ids, so conversion must be reversible and free of '/' and ':'.
# --------------------------------------------------------------------------------------------


class HexIdConverter(IdConverter):
    """Reversible external<->internal ids (hex of the external id), like production's opaque ids."""

    def ext_to_int_project_id(self, project_id: str) -> str:
        if project_id.count("/") != 1 or not all(project_id.split("/")):
            raise tsi_errors.InvalidRequest(f"Invalid project_id {project_id!r}: expected 'entity/project'")
        return "p" + project_id.encode().hex()

    def int_to_ext_project_id(self, project_id: str) -> str | None:
        try:
            return bytes.fromhex(project_id[1:]).decode()
        except ValueError:
            return None

    def ext_to_int_run_id(self, run_id: str) -> str:
        """``entity/project/run`` (what the SDK sends) → ``<internal project>:run`` (what the
        server's OTLP mapping stores for a span's bare ``wandb.wb_run_id``)."""
        project, sep, run = run_id.rpartition("/")
        return f"{self.ext_to_int_project_id(project)}:{run}" if sep and "/" in project else run_id

    def int_to_ext_run_id(self, run_id: str) -> str:
        project, sep, run = run_id.partition(":")
        ext = self.int_to_ext_project_id(project) if sep else None
        return f"{ext}/{run}" if ext else run_id

    def ext_to_int_user_id(self, user_id: str) -> str:
        return user_id

    def int_to_ext_user_id(self, user_id: str) -> str:
        return user_id


# --------------------------------------------------------------------------------------------
# Routes.  Each maps to a trace-server method; the request model comes from that method's
# annotation on the server interface, so fields the old models do not know are dropped
# (``extra="ignore"``) exactly where an old production server would drop them.
# --------------------------------------------------------------------------------------------

JSON_ROUTES: dict[str, str] = {
    "/call/start": "call_start",
    "/call/end": "call_end",
    "/call/upsert_batch": "call_start_batch",
    "/call/read": "call_read",
    "/call/update": "call_update",
    "/calls/delete": "calls_delete",
    "/calls/query": "calls_query",
    "/calls/query_stats": "calls_query_stats",
    "/calls/stats": "call_stats",
    "/calls/usage": "calls_usage",
    "/calls/score": "calls_score",
    "/trace/usage": "trace_usage",
    "/obj/create": "obj_create",
    "/obj/read": "obj_read",
    "/obj/delete": "obj_delete",
    "/objs/query": "objs_query",
    "/tags": "tags_list",
    "/aliases": "aliases_list",
    "/table/create": "table_create",
    "/table/create_from_digests": "table_create_from_digests",
    "/table/update": "table_update",
    "/table/query": "table_query",
    "/table/query_stats": "table_query_stats",
    "/table/query_stats_batch": "table_query_stats_batch",
    "/refs/read_batch": "refs_read_batch",
    "/files/query_stats": "files_stats",
    "/feedback/create": "feedback_create",
    "/feedback/batch/create": "feedback_create_batch",
    "/feedback/query": "feedback_query",
    "/feedback/purge": "feedback_purge",
    "/feedback/replace": "feedback_replace",
    "/feedback/stats": "feedback_stats",
    "/feedback/aggregate": "feedback_aggregate",
    "/feedback/payload_schema": "feedback_payload_schema",
    "/cost/create": "cost_create",
    "/cost/query": "cost_query",
    "/cost/purge": "cost_purge",
    "/evaluations/status": "evaluation_status",
    "/evaluations/evaluate_model": "evaluate_model",
    "/evaluations/rescore": "rescore",
    "/project/stats": "project_stats",
    "/project/ttl_settings/read": "project_ttl_settings_read",
    "/project/ttl_settings/update": "project_ttl_settings_update",
}

STREAM_ROUTES: dict[str, str] = {
    "/calls/stream_query": "calls_query_stream",
    "/threads/stream_query": "threads_query_stream",
    "/table/query_stream": "table_query_stream",
    "/annotation_queues/query": "annotation_queues_query_stream",
}

# Routes whose path carries parameters: (method, regex, HTTP verb, streaming?).
_SEG = r"([^/]+)"
PATTERN_ROUTES: list[tuple[str, re.Pattern[str], str, bool]] = [
    ("call_start_v2", re.compile(rf"/v2/{_SEG}/{_SEG}/call/start"), "POST", False),
    ("call_end_v2", re.compile(rf"/v2/{_SEG}/{_SEG}/call/end"), "POST", False),
    ("calls_complete", re.compile(rf"/v2/{_SEG}/{_SEG}/calls/complete"), "POST", False),
    (
        "obj_add_tags",
        re.compile(r"/objs/(?P<object_id>[^/]+)/versions/(?P<digest>[^/]+)/tags"),
        "POST",
        False,
    ),
    (
        "obj_remove_tags",
        re.compile(r"/objs/(?P<object_id>[^/]+)/versions/(?P<digest>[^/]+)/tags/remove"),
        "POST",
        False,
    ),
    ("obj_set_aliases", re.compile(r"/objs/(?P<object_id>[^/]+)/aliases"), "POST", False),
    ("obj_remove_aliases", re.compile(r"/objs/(?P<object_id>[^/]+)/aliases/remove"), "POST", False),
]
# v2 resource routes (ops, datasets, scorers, ...): create/list/read/delete by HTTP verb.
for _kind, _singular in [
    ("ops", "op"),
    ("datasets", "dataset"),
    ("scorers", "scorer"),
    ("evaluations", "evaluation"),
    ("models", "model"),
]:
    _base = rf"/v2/{_SEG}/{_SEG}/{_kind}"
    PATTERN_ROUTES += [
        (f"{_singular}_create", re.compile(_base), "POST", False),
        (f"{_singular}_list", re.compile(_base), "GET", True),
        (
            f"{_singular}_read",
            re.compile(_base + r"/(?P<object_id>[^/]+)/versions/(?P<digest>[^/]+)"),
            "GET",
            False,
        ),
        (f"{_singular}_delete", re.compile(_base + r"/(?P<object_id>[^/]+)"), "DELETE", False),
    ]
for _kind, _singular, _id in [
    ("evaluation_runs", "evaluation_run", "evaluation_run_id"),
    ("predictions", "prediction", "prediction_id"),
    ("scores", "score", "score_id"),
]:
    _base = rf"/v2/{_SEG}/{_SEG}/{_kind}"
    PATTERN_ROUTES += [
        (f"{_singular}_create", re.compile(_base), "POST", False),
        (f"{_singular}_list", re.compile(_base), "GET", True),
        (f"{_singular}_read", re.compile(_base + rf"/(?P<{_id}>[^/]+)"), "GET", False),
        (f"{_singular}_delete", re.compile(_base + rf"/(?P<{_id}>[^/]+)"), "DELETE", False),
        (f"{_singular}_finish", re.compile(_base + rf"/(?P<{_id}>[^/]+)/finish"), "POST", False),
    ]
PATTERN_ROUTES.append(
    ("eval_results_query", re.compile(rf"/v2/{_SEG}/{_SEG}/eval_results/query"), "POST", False)
)


class HttpError(Exception):
    """An error answered with a specific status and a JSON ``{"reason": ...}`` body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _request_model(method_name: str) -> type[BaseModel]:
    fn = getattr(tsi.FullTraceServerInterface, method_name, None) or getattr(InMemoryTraceServer, method_name)
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    model = hints.get(params[0]) if params else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise HttpError(501, f"{method_name} has no request model")
    return model


def _inject_user_id(value: Any) -> None:
    """Set ``wb_user_id`` on every request (sub)model that has one, as production auth does."""
    if isinstance(value, BaseModel):
        if "wb_user_id" in type(value).model_fields:
            value.wb_user_id = USER_ID  # type: ignore[attr-defined]
        for item in value.__dict__.values():  # __dict__: no deprecated-field warnings
            _inject_user_id(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _inject_user_id(item)


def _to_jsonable(res: Any) -> Any:
    if isinstance(res, BaseModel):
        return res.model_dump(mode="json", by_alias=True)
    if isinstance(res, dict):
        return {k: _to_jsonable(v) for k, v in res.items()}
    if isinstance(res, list | tuple):
        return [_to_jsonable(v) for v in res]
    return res


class WeaveTestServer:
    """Owns the trace server and turns HTTP requests into trace-server calls."""

    def __init__(self) -> None:
        # Some newer interface methods are unimplemented in the wheel; nothing we route calls them.
        self.internal = InMemoryTraceServer()  # type: ignore[abstract]
        self.server = ExternalTraceServer(self.internal, HexIdConverter())
        self.lock = threading.Lock()
        self.projects: dict[str, dict[str, Any]] = {}

    # ---- trace server API -------------------------------------------------------------------

    def call(self, method_name: str, body: dict[str, Any]) -> Any:
        model = _request_model(method_name)
        req = model.model_validate(body)
        _inject_user_id(req)
        method: Callable[[Any], Any] = getattr(self.server, method_name)
        return method(req)

    def file_create(self, fields: dict[str, tuple[str | None, bytes]]) -> Any:
        if "project_id" not in fields or "file" not in fields:
            raise HttpError(400, "multipart body needs 'project_id' and 'file' parts")
        filename, content = fields["file"]
        body: dict[str, Any] = {
            "project_id": fields["project_id"][1].decode(),
            "name": filename or "file",
            "content": content,
        }
        if "expected_digest" in fields:
            body["expected_digest"] = fields["expected_digest"][1].decode()
        return self.server.file_create(tsi.FileCreateReq.model_validate(body))

    def file_content(self, body: dict[str, Any]) -> bytes:
        res = self.server.file_content_read(tsi.FileContentReadReq.model_validate(body))
        return bytes(res.content)

    def otel_export(self, payload: bytes, header_project: str | None) -> ExportTraceServiceResponse:
        """Split the OTLP request per project (resource attributes win over the header), export each."""
        rejected = 0
        messages: list[str] = []
        for project_id, spans in _by_project(payload, header_project).items():
            entity, project = project_id.split("/", 1)
            req = tsi.OTelExportReq(
                project_id=project_id,
                wb_user_id=USER_ID,
                processed_spans=[
                    tsi.ProcessedResourceSpans(entity=entity, project=project, run_id=None, resource_spans=rs)
                    for rs in spans
                ],
            )
            res = self.server.otel_export(req)
            if res.partial_success is not None and res.partial_success.rejected_spans:
                rejected += res.partial_success.rejected_spans
                messages.append(res.partial_success.error_message)
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = "; ".join(messages)
        return response

    def agents_otel_export(self, payload: bytes, header_project: str | None) -> ExportTraceServiceResponse:
        """The Agents view's ingest (``/agents/otel/v1/traces``): weave's own span parse and GenAI
        extraction (``extract_genai_span``, the pure step of production's ClickHouse ingest; its
        redaction, blob stripping and sampling are not run), stored as the server's agent spans."""
        rejected, messages = 0, []
        for project_id, spans in _by_project(payload, header_project).items():
            internal = HexIdConverter().ext_to_int_project_id(project_id)
            for rs in spans:
                resource = Resource.from_proto(rs.resource)
                for proto in (p for ss in rs.scope_spans for p in ss.spans):
                    try:
                        row = extract_genai_span(Span.from_proto(proto, resource), internal, USER_ID)
                    except Exception as e:  # production counts a span it cannot read as rejected
                        rejected += 1
                        messages.append(f"{type(e).__name__}: {e}")
                        continue
                    self.internal._insert_agent_span(row)
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = "; ".join(messages[:5])
        return response

    def agent_spans(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Every agent span of ``project_id``, with every extracted column (test query route)."""
        internal = HexIdConverter().ext_to_int_project_id(str(body.get("project_id")))
        with self.internal.lock:
            rows = [r for r in self.internal._agent_spans.values() if r.project_id == internal]
        return [r.model_dump(mode="json") for r in sorted(rows, key=lambda r: r.started_at)]

    # ---- W&B GraphQL -----------------------------------------------------------------------

    def graphql(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer the W&B API queries weave.init / wandb.Api make, minimally but validly."""
        query: str = body.get("query") or ""
        variables: dict[str, Any] = body.get("variables") or {}
        data: dict[str, Any] = {}
        entity = variables.get("entity") or variables.get("entityName") or DEFAULT_ENTITY
        viewer = {
            "id": USER_ID,
            "username": USERNAME,
            "email": f"{USERNAME}@example.invalid",
            "admin": False,
            "entity": DEFAULT_ENTITY,
            "defaultEntity": {"id": "RW50aXR5OjE=", "name": DEFAULT_ENTITY},
            "flags": "{}",
            "teams": {"edges": [{"node": {"name": DEFAULT_ENTITY}}]},
            "defaultFramework": None,
            "photoUrl": None,
            "apiKeys": {"edges": []},
            "userInfo": None,
        }
        if re.search(r"\bviewer\b", query):
            data["viewer"] = viewer
        if re.search(r"\bupsertModel\b|\bupsertProject\b", query):
            name = variables.get("name") or variables.get("project") or "project"
            proj = self._project(entity, name)
            data["upsertModel"] = {"project": proj, "model": proj, "inserted": True}
        if re.search(r"\bproject\s*\(", query) and "upsertModel" not in data:
            name = variables.get("name") or variables.get("project") or variables.get("projectName")
            data["project"] = self._project(entity, name) if name else None
        if re.search(r"\bentity\s*\(", query):
            data["entity"] = {
                "id": "RW50aXR5OjE=",
                "name": entity,
                "readOnly": False,
                "isTeam": False,
                "readOnlyAdmin": False,
            }
        if re.search(r"\bserverInfo\b", query):
            data["serverInfo"] = {
                "cliVersionInfo": {},
                "latestLocalVersionInfo": None,
                "features": [],
                "frontendHost": None,
            }
        if "__type" in query or "__schema" in query:
            data["__type"] = None
            data["__schema"] = None
        if not data:
            # An explicit GraphQL error beats an empty answer the caller would misread.
            log(f"unanswered GraphQL query: {query[:300]!r} variables={variables!r}")
            return {"data": None, "errors": [{"message": "weave test server: unsupported GraphQL query"}]}
        return {"data": data}

    def _project(self, entity: str, name: str) -> dict[str, Any]:
        with self.lock:
            key = f"{entity}/{name}"
            if key not in self.projects:
                pid = base64.b64encode(f"Project:{len(self.projects) + 1}".encode()).decode()
                self.projects[key] = {
                    "id": pid,
                    "name": name,
                    "entityName": entity,
                    "entity": {"id": "RW50aXR5OjE=", "name": entity},
                    "description": None,
                    "access": "PRIVATE",
                    "views": "{}",
                    "readOnly": False,
                    "isBenchmark": False,
                }
            return self.projects[key]


def _by_project(payload: bytes, header_project: str | None) -> dict[str, list[ResourceSpans]]:
    """An OTLP request's resource spans per project (resource attributes win over the header)."""
    try:
        request = ExportTraceServiceRequest.FromString(payload)
    except DecodeError as e:
        raise HttpError(400, f"body is not a protobuf ExportTraceServiceRequest: {e}") from e
    by_project: dict[str, list[ResourceSpans]] = {}
    for rs in request.resource_spans:
        attrs = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
        entity, project = attrs.get("wandb.entity"), attrs.get("wandb.project")
        if entity and project:
            project_id = f"{entity}/{project}"
        elif project and "/" in project:
            project_id = project
        elif header_project:
            project_id = header_project
        else:
            raise HttpError(
                400,
                "no project: set resource attributes wandb.entity and wandb.project, "
                "or the project_id header",
            )
        by_project.setdefault(project_id, []).append(rs)
    return by_project


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not msg.is_multipart():
        raise HttpError(400, "expected a multipart/form-data body")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def _decode_body(raw: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    return raw


class Handler(BaseHTTPRequestHandler):
    """One HTTP request.  Every failure becomes a JSON error answer; the server never dies."""

    protocol_version = "HTTP/1.1"
    timeout = 120  # a client that lies about Content-Length cannot pin a thread forever
    app: WeaveTestServer  # set on the subclass built in main()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log(format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ---- plumbing ----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        return _decode_body(raw, self.headers.get("Content-Encoding"))

    def _json_body(self, raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise HttpError(400, f"invalid JSON body: {e}") from e
        if not isinstance(body, dict):
            raise HttpError(400, "JSON body must be an object")
        return body

    def _dispatch(self, verb: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/traces/"):  # WANDB_BASE_URL/traces is the default trace URL
            path = path[len("/traces") :]
        try:
            raw = self._read_body()
            log(f"{verb} {path} {raw[:400]!r}")
            self._route(verb, path, raw, parse_qs(url.query))
        except HttpError as e:
            self._send_json(e.status, {"reason": e.reason})
        except ValidationError as e:
            self._send_json(422, {"reason": str(e), "detail": json.loads(e.json())})
        except Exception as e:  # noqa: BLE001 - a bad request must not kill the server
            status, payload = _error_answer(e)
            if status >= 500:
                traceback.print_exc(file=sys.stderr)
            log(f"-> {status} {payload}")
            self._send_json(status, payload)

    def _route(self, verb: str, path: str, raw: bytes, query: dict[str, list[str]]) -> None:
        app = self.app
        if path in ("/health", "/"):
            self._send_json(200, {"status": "ok"})
        elif path == "/server_info":
            self._send_json(
                200,
                {"min_required_weave_python_version": "0.0.0", "trace_server_version": SERVER_WEAVE_VERSION},
            )
        elif path == "/graphql":
            self._send_json(200, app.graphql(self._json_body(raw)))
        elif path in ("/otel/v1/traces", "/agents/otel/v1/traces"):
            self._otlp(path, raw)
        elif path == "/_harness/agent_spans":  # not a production route: the stored agent spans
            self._send_json(200, app.agent_spans(self._json_body(raw)))
        elif path == "/file/create":
            fields = _parse_multipart(self.headers.get("Content-Type", ""), raw)
            self._send_json(200, _to_jsonable(app.file_create(fields)))
        elif path == "/file/content":
            self._send(200, app.file_content(self._json_body(raw)), "application/octet-stream")
        elif path in JSON_ROUTES:
            self._send_json(200, _to_jsonable(app.call(JSON_ROUTES[path], self._json_body(raw))))
        elif path in STREAM_ROUTES:
            self._send_jsonl(app.call(STREAM_ROUTES[path], self._json_body(raw)))
        else:
            self._route_pattern(verb, path, raw, query)

    def _route_pattern(self, verb: str, path: str, raw: bytes, query: dict[str, list[str]]) -> None:
        for method_name, pattern, route_verb, streaming in PATTERN_ROUTES:
            m = pattern.fullmatch(path)
            if m is None or verb != route_verb:
                continue
            body = self._json_body(raw)
            body.update({k: v[-1] for k, v in query.items()})
            groups = m.groups()
            if path.startswith("/v2/") and "project_id" in _request_model(method_name).model_fields:
                body["project_id"] = f"{groups[0]}/{groups[1]}"
            body.update(m.groupdict())
            if method_name == "calls_complete" and path.startswith("/v2/"):
                for item in body.get("batch") or []:
                    if isinstance(item, dict):
                        item.setdefault("project_id", f"{groups[0]}/{groups[1]}")
            res = self.app.call(method_name, body)
            if streaming or isinstance(res, Iterator):
                self._send_jsonl(res)
            else:
                self._send_json(200, _to_jsonable(res))
            return
        log(f"unknown route {verb} {path}")
        raise HttpError(404, f"no route {verb} {path}")

    def _send_jsonl(self, rows: Iterable[Any]) -> None:
        lines = [json.dumps(_to_jsonable(row)) for row in rows]
        body = ("\n".join(lines) + ("\n" if lines else "")).encode()
        self._send(200, body, "application/jsonl")

    def _otlp(self, path: str, raw: bytes) -> None:
        ctype = self.headers.get("Content-Type", "application/x-protobuf")
        if "json" in ctype:
            raise HttpError(415, "only OTLP/HTTP protobuf is supported (as in production)")
        if path.startswith("/agents/"):  # the Agents view (0.54's global TracerProvider exports here too)
            res = self.app.agents_otel_export(raw, self.headers.get("project_id"))
        else:
            res = self.app.otel_export(raw, self.headers.get("project_id"))
        self._send(200, res.SerializeToString(), "application/x-protobuf")


def _error_answer(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Map an exception to (status, body) with weave's own error registry, walking the MRO."""
    registry = _get_error_registry()
    for cls in type(exc).__mro__:
        definition = registry.get_definition(cls)
        if definition is not None:
            try:
                return definition.get_status_code(exc), definition.formatter(exc)
            except Exception:  # noqa: BLE001
                break
    return 500, {"reason": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    handler = type("BoundHandler", (Handler,), {"app": WeaveTestServer()})
    httpd = ThreadingHTTPServer((args.host, args.port), handler)
    httpd.daemon_threads = True
    # The harness reads this line to learn the port when --port 0 is used.
    print(f"listening on http://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
