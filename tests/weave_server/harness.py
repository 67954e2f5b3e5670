"""Start the real Weave trace server (``server.py``) on loopback and query it over HTTP.

Runs in the project's venv and imports nothing from the server's venv: the server is a child
process, and every helper goes through the server's own HTTP query API (the same routes the Weave
UI and SDK read), so assertions see what a user of Weave would see.

    with WeaveServer() as server:
        subprocess.run([sys.executable, "my_client.py"], env=server.env("ent", "proj"), check=True)
        evals = server.evaluations("ent/proj")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.weave_server.venv import SERVER_SCRIPT, ensure_venv

T = TypeVar("T")

# Any 40-character string passes the client's key-shape check; the server accepts every key.
DUMMY_API_KEY = "weavetest" + "0" * 31

# Variables that would make a child weave client disabled, offline, prompting or pointed elsewhere.
_CLEARED_ENV = (
    "WEAVE_DISABLED",
    "WANDB_MODE",
    "WANDB_API_KEY",
    "WANDB_BASE_URL",
    "WF_TRACE_SERVER_URL",
    "WANDB_ENTITY",
    "WANDB_PROJECT",
    "WANDB_IDENTITY_TOKEN_FILE",
    "WANDB_RUN_ID",
    "WEAVE_PROJECT",
)


class WeaveServerError(RuntimeError):
    """The server failed to start or answered a helper's request with an error status."""


class WeaveServer:
    """A started trace server on 127.0.0.1 plus helpers to point clients at it and query it."""

    def __init__(
        self, *, startup_timeout: float = 120.0, request_timeout: float = 60.0, port: int = 0
    ) -> None:
        #: 0: a free port each start; a fixed port lets a test stop the server and restart it,
        #: empty, at the same address (what a real outage looks like to a client).
        self.port = port
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="weave-test-server-"))
        self.log_path = self._workdir / "server.log"
        self._log_file: Any = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> WeaveServer:
        """Build the server venv if needed, start server.py on a free port, wait for /health."""
        python = ensure_venv()
        live_log = os.environ.get("WEAVE_TEST_SERVER_LOG", "") not in ("", "0", "false")
        self._log_file = None if live_log else open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [str(python), str(SERVER_SCRIPT), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self._log_file,  # None: inherit, so request logs show live
            stdin=subprocess.DEVNULL,
            cwd=self._workdir,
        )
        self.url = self._read_listen_url()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                if self._get_json("/health").get("status") == "ok":
                    return self
            except (OSError, WeaveServerError):
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.stop()
                raise WeaveServerError(f"server did not become healthy:\n{self.log_tail()}")
            time.sleep(0.1)

    def _read_listen_url(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        found: list[str] = []
        stdout = self._proc.stdout

        def read() -> None:
            for line in iter(stdout.readline, b""):
                text = line.decode(errors="replace").strip()
                if text.startswith("listening on ") and not found:
                    found.append(text.removeprefix("listening on "))
            # keep draining so the child never blocks on a full pipe

        threading.Thread(target=read, daemon=True, name="weave-server-stdout").start()
        deadline = time.monotonic() + self.startup_timeout
        while not found:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise WeaveServerError(f"server did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        return found[0]

    def stop(self) -> None:
        """Stop the server process (only the one this object started)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        """Stop the server and remove its scratch directory (logs, client config dir)."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> WeaveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 60) -> str:
        """Last lines of the server's stderr (tracebacks of 5xx answers land here)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # ---- pointing clients at it ----------------------------------------------------------------

    def env(self, entity: str | None = None, project: str | None = None) -> dict[str, str]:
        """A complete environment for a child process whose weave/wandb client must use this server.

        It is ``os.environ`` minus variables that would disable Weave or point it elsewhere, plus
        the server URLs, a dummy API key (so nothing prompts), and a private wandb config dir.
        """
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
        config_dir = self._workdir / "wandb-config"
        config_dir.mkdir(exist_ok=True)
        env.update(
            {
                "WF_TRACE_SERVER_URL": self.url,
                "WANDB_BASE_URL": self.url,
                "WANDB_API_KEY": DUMMY_API_KEY,
                "WANDB_CONFIG_DIR": str(config_dir),
                "WANDB_ERROR_REPORTING": "false",
                "WANDB_SILENT": "true",
                "WEAVE_PRINT_CALL_LINK": "false",
            }
        )
        if entity:
            env["WANDB_ENTITY"] = entity
        if project:
            env["WANDB_PROJECT"] = project
        return env

    def run_python(
        self,
        code: str,
        project_id: str,
        *,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 300.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh interpreter of this venv pointed at the server.

        A subprocess keeps weave.init's process-global state (client, TracerProvider) out of the
        test process.  ``WEAVE_PROJECT`` is set to ``project_id`` for the code's convenience.
        """
        entity, project = project_id.split("/", 1)
        env = self.env(entity, project)
        env["WEAVE_PROJECT"] = project_id
        env.update(extra_env or {})
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self._workdir,
        )
        if check and proc.returncode != 0:
            raise WeaveServerError(
                f"client exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
                f"\n--- server log\n{self.log_tail()}"
            )
        return proc

    # ---- raw HTTP ----------------------------------------------------------------------------

    def _http(
        self, path: str, body: bytes | None, headers: Mapping[str, str], method: str = "POST"
    ) -> tuple[int, bytes]:
        if not self.url:
            raise WeaveServerError("server not started")
        req = urllib.request.Request(self.url + path, data=body, headers=dict(headers), method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout) as res:
                return res.status, res.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def request(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """POST JSON to any trace-server route and return the decoded JSON answer."""
        status, data = self._http(path, json.dumps(body or {}).encode(), {"Content-Type": "application/json"})
        if status != 200:
            raise WeaveServerError(f"POST {path} -> {status}: {data.decode(errors='replace')[:2000]}")
        return json.loads(data)

    def _get_json(self, path: str) -> Any:
        status, data = self._http(path, None, {}, method="GET")
        if status != 200:
            raise WeaveServerError(f"GET {path} -> {status}")
        return json.loads(data)

    def _stream(self, path: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        status, data = self._http(path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        if status != 200:
            raise WeaveServerError(f"POST {path} -> {status}: {data.decode(errors='replace')[:2000]}")
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    # ---- query helpers (the server's own query API) ------------------------------------------

    def calls(
        self,
        project_id: str,
        filter: Mapping[str, Any] | None = None,  # noqa: A002 - the API's own name
        *,
        query: Mapping[str, Any] | None = None,
        sort_by: list[Mapping[str, Any]] | None = None,
        limit: int | None = None,
        columns: list[str] | None = None,
        expand_columns: list[str] | None = None,
        include_costs: bool = False,
        include_feedback: bool = False,
    ) -> list[dict[str, Any]]:
        """Calls via /calls/stream_query; ``filter`` is a CallsFilter dict (op_names, parent_ids, ...)."""
        body: dict[str, Any] = {
            "project_id": project_id,
            "include_costs": include_costs,
            "include_feedback": include_feedback,
        }
        optional = {
            "filter": filter,
            "query": query,
            "sort_by": sort_by or [{"field": "started_at", "direction": "asc"}],
            "limit": limit,
            "columns": columns,
            "expand_columns": expand_columns,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._stream("/calls/stream_query", body)

    def call(self, project_id: str, call_id: str) -> dict[str, Any] | None:
        """One call via /call/read (None if absent)."""
        res = self.request("/call/read", {"project_id": project_id, "id": call_id})
        call: dict[str, Any] | None = res.get("call")
        return call

    def children(self, project_id: str, parent_id: str) -> list[dict[str, Any]]:
        """Direct children of a call, in start order."""
        return self.calls(project_id, {"parent_ids": [parent_id]})

    def evaluations(self, project_id: str) -> list[dict[str, Any]]:
        """What the Evals tab lists: calls of any version of the ``Evaluation.evaluate`` op."""
        return self.calls(project_id, {"op_names": [f"weave:///{project_id}/op/Evaluation.evaluate:*"]})

    def evaluation_status(self, project_id: str, call_id: str) -> dict[str, Any]:
        """/evaluations/status: {"code": "not_found"|"running"|"failed"|"complete", ...}."""
        res = self.request("/evaluations/status", {"project_id": project_id, "call_id": call_id})
        status: dict[str, Any] = res["status"]
        return status

    def objs(
        self,
        project_id: str,
        filter: Mapping[str, Any] | None = None,  # noqa: A002 - the API's own name
        *,
        limit: int | None = None,
        metadata_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Object versions via /objs/query; ``filter`` is an ObjectVersionFilter dict."""
        body: dict[str, Any] = {"project_id": project_id, "metadata_only": metadata_only}
        if filter is not None:
            body["filter"] = dict(filter)
        if limit is not None:
            body["limit"] = limit
        objs: list[dict[str, Any]] = self.request("/objs/query", body)["objs"]
        return objs

    def obj(self, project_id: str, object_id: str, digest: str = "latest") -> dict[str, Any]:
        """One object version via /obj/read."""
        res = self.request("/obj/read", {"project_id": project_id, "object_id": object_id, "digest": digest})
        obj: dict[str, Any] = res["obj"]
        return obj

    def read_refs(self, refs: list[str]) -> list[Any]:
        """Resolve ``weave:///`` refs via /refs/read_batch."""
        vals: list[Any] = self.request("/refs/read_batch", {"refs": refs})["vals"]
        return vals

    def table_rows(self, project_id: str, digest: str) -> list[dict[str, Any]]:
        """Rows of a table via /table/query: [{"digest", "val", ...}].

        ``digest`` may also be a table ref (``weave:///E/P/table/<digest>``, e.g. a Dataset's rows).
        """
        if digest.startswith("weave:///"):
            digest = digest.rstrip("/").rsplit("/", 1)[-1]
        rows: list[dict[str, Any]] = self.request(
            "/table/query", {"project_id": project_id, "digest": digest}
        )["rows"]
        return rows

    def feedback(self, project_id: str, query: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Feedback rows via /feedback/query."""
        body: dict[str, Any] = {"project_id": project_id}
        if query is not None:
            body["query"] = dict(query)
        result: list[dict[str, Any]] = self.request("/feedback/query", body)["result"]
        return result

    def post_otlp(self, project_id: str | None, request_bytes: bytes) -> ExportTraceServiceResponse:
        """POST a serialized ExportTraceServiceRequest to /otel/v1/traces, as an OTLP exporter would.

        ``project_id`` goes in the ``project_id`` header; pass None to rely on the resource
        attributes ``wandb.entity`` / ``wandb.project`` instead.
        """
        headers = {"Content-Type": "application/x-protobuf", "wandb-api-key": DUMMY_API_KEY}
        if project_id is not None:
            headers["project_id"] = project_id
        status, data = self._http("/otel/v1/traces", request_bytes, headers)
        if status != 200:
            raise WeaveServerError(f"OTLP export -> {status}: {data.decode(errors='replace')[:2000]}")
        return ExportTraceServiceResponse.FromString(data)

    def agent_spans(self, project_id: str) -> list[dict[str, Any]]:
        """The spans the Agents endpoint stored for ``project_id``, every column weave extracted."""
        rows: list[dict[str, Any]] = self.request("/_harness/agent_spans", {"project_id": project_id})
        return rows

    def wait_for(self, fetch: Callable[[], T], ready: Callable[[T], bool], timeout: float = 30.0) -> T:
        """Poll ``fetch`` until ``ready`` (for writers that flush in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            value = fetch()
            if ready(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.2)
