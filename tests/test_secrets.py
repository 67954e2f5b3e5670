"""Secrets never leave, and content off means no free text: proven with planted markers.

Real evals (tests/support/planted.py: a scripted provider, real tools, scorers and errors) run
in a child process with every exporter on — the span file, OTLP over loopback to a capture
server, W&B offline and Weave (the local trace server), each in its worker process — once with
content capture and once without. Then every exported byte is searched for the raw markers:
every file under WANDB_DIR, WANDB_DATA_DIR (the artifact staging area) and WANDB_CACHE_DIR (zip,
gzip and zstd opened, the ``.wandb`` log reassembled into its records), every OTLP request
body, every span file and the eval's redacted log copies beside them, and everything the Weave
server holds for the project (calls, objects, table rows, feedback), plus what ``otel-bridge
sync`` and the receiver write from the span files into fresh W&B offline runs, in processes
without the eval's late secret. The oracle is the planted strings: nothing here reads the
bridge's own lists.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import read_eval_log

from tests.support.bridge import OTEL_BRIDGE, ROOT, subprocess_env
from tests.support.collector import Binaries, Collector, Jaeger
from tests.support.otlp_capture import OtlpCapture
from tests.support.planted import CONTENT, PATTERN, SECRETS, make_markers
from tests.support.wandb_log import read_records
from tests.test_receiver import ReceiverProcess
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]

PATHS = ("span file", "otlp", "wandb", "weave", "sync", "receiver")


@dataclass
class Exported:
    """Every byte one child run exported, by path, and the eval results."""

    markers: dict[str, str]
    root: Path
    blobs: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)  # path -> (name, bytes)
    runs: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    def add(self, path: str, name: str, data: bytes) -> None:
        self.blobs.setdefault(path, []).append((name, data))

    def hits(self, marker: str, path: str | None = None) -> list[str]:
        needle = marker.encode()
        return [
            f"{p}:{name}"
            for p, items in self.blobs.items()
            if path is None or p == path
            for name, data in items
            if needle in data
        ]


def _unpacked(name: str, data: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """A file's bytes and, for archives and compressed files, what they hold."""
    yield name, data
    if depth > 3:
        return
    inner: list[tuple[str, bytes]] = []
    try:
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                inner = [(f"{name}!{i.filename}", z.read(i)) for i in z.infolist()]
        elif data[:2] == b"\x1f\x8b":
            inner = [(f"{name}!gunzip", gzip.decompress(data))]
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            import zstandard

            inner = [(f"{name}!unzstd", zstandard.ZstdDecompressor().decompressobj().decompress(data))]
    except Exception as exc:  # an archive this test cannot open must not pass silently
        raise AssertionError(f"cannot open {name}: {exc!r}") from exc
    for inner_name, inner_data in inner:
        yield from _unpacked(inner_name, inner_data, depth + 1)


def _collect_dir(out: Exported, path: str, directory: Path, skip: str | None = None) -> None:
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and skip not in p.parts):
        data = file.read_bytes()
        for name, blob in _unpacked(str(file.relative_to(directory)), data):
            out.add(path, name, blob)
        if file.suffix == ".wandb":  # records are split into chunks at 32 KiB block boundaries
            for i, record in enumerate(read_records(file, strict=False)):
                out.add(path, f"{file.name}#record{i}", record.SerializeToString())
        if file.suffix == ".eval":  # read back by Inspect itself too
            out.add(path, f"{file.name}#inspect", read_eval_log(str(file)).model_dump_json().encode())


def _collect_weave(out: Exported, server: WeaveServer, project: str) -> None:
    calls = server.calls(project)
    text = json.dumps(calls, default=str)
    out.add("weave", "calls", text.encode())
    objs = server.objs(project)
    out.add("weave", "objs", json.dumps(objs, default=str).encode())
    out.add("weave", "feedback", json.dumps(server.feedback(project), default=str).encode())
    for digest in sorted(set(_table_digests(text + json.dumps(objs, default=str)))):
        rows = server.table_rows(project, digest)
        out.add("weave", f"table {digest}", json.dumps(rows, default=str).encode())


def _table_digests(text: str) -> Iterator[str]:
    marker = "/table/"
    start = text.find(marker)
    while start != -1:
        digest = text[start + len(marker) :].split('"', 1)[0].split("/", 1)[0]
        if digest:
            yield digest
        start = text.find(marker, start + 1)


def _run(content: bool, server: WeaveServer, root: Path) -> Exported:
    markers = make_markers()
    markers_file = root / "markers.json"
    root.mkdir(parents=True, exist_ok=True)
    markers_file.write_text(json.dumps(markers))
    project = f"test-entity/secrets-{uuid.uuid4().hex[:10]}"
    out = Exported(markers, root)
    with OtlpCapture() as capture:
        env = subprocess_env()
        weave_env = server.env(*project.split("/"))  # the W&B/Weave client pointed at the local server
        env.update({k: v for k, v in weave_env.items() if k.startswith(("WANDB_", "WF_", "WEAVE_"))})
        env.update(
            {
                "INSPECT_OTEL_ENABLED": "1",
                "INSPECT_OTEL_EXPORTERS": "file,otlp,wandb,weave",
                "INSPECT_OTEL_DIR": str(root / "spans"),
                "INSPECT_OTEL_CAPTURE_CONTENT": "true" if content else "false",
                "INSPECT_OTEL_REDACT_PATTERNS": PATTERN,
                "INSPECT_OTEL_WEAVE_PROJECT": project,
                "INSPECT_OTEL_WANDB_PROJECT": "secrets",
                "INSPECT_OTEL_FLUSH_TIMEOUT": "30",
                "INSPECT_REQUIRED_HOOKS": "otel_bridge",
                "INSPECT_LOG_DIR": str(root / "inspect-logs"),  # the user's own logs: not searched
                "OTEL_EXPORTER_OTLP_ENDPOINT": capture.http_endpoint,
                "PLANTED_SERVICE_TOKEN": markers["secret.env"],
                "PLANTED_SANDBOX_TOKEN": markers["secret.sandbox"],
                "WANDB_MODE": "offline",
                "WANDB_DIR": str(root / "wandb"),
                "WANDB_DATA_DIR": str(root / "wandb-data"),
                "WANDB_CACHE_DIR": str(root / "wandb-cache"),
            }
        )
        env.pop("LATE_DEPLOY_API_KEY", None)
        proc = subprocess.run(
            [sys.executable, "-m", "tests.support.planted", str(markers_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        out.runs = json.loads(proc.stdout.strip().splitlines()[-1])
        out.stderr = proc.stderr
        spans = (root / "spans").glob("*.jsonl")
        expected = sum(len(p.read_text().splitlines()) for p in spans)  # one request per line: a floor
        capture.wait_for(1, timeout=30)
        for i, request in enumerate(capture.received):
            out.add("otlp", f"request{i}", request.body)
        assert expected > 0
    # the eval's redacted copies of its logs (beside the span files), which W&B uploads: a path of their own
    _collect_dir(out, "span file", root / "spans", skip="redacted-logs")
    if (root / "spans" / "redacted-logs").exists():
        _collect_dir(out, "log copy", root / "spans" / "redacted-logs")
    for name in ("wandb", "wandb-data", "wandb-cache"):
        if (root / name).exists():
            _collect_dir(out, "wandb", root / name)
    _collect_weave(out, server, project)
    # sync: the span files into a fresh W&B offline run, as a user replaying them would
    sync_env = {**env, "WANDB_DIR": str(root / "sync-wandb"), "WANDB_DATA_DIR": str(root / "sync-data")}
    sync_env["INSPECT_OTEL_EXPORTERS"] = "wandb"
    result = subprocess.run(
        [OTEL_BRIDGE, "sync", "--to", "wandb", str(root / "spans")],
        cwd=ROOT,
        env=sync_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("sync-wandb", "sync-data"):
        if (root / name).exists():
            _collect_dir(out, "sync", root / name)
    _through_the_receiver(out, env, root)
    # the user's own Inspect logs really hold the markers (so their absence elsewhere means something)
    user_logs = b"".join(p.read_bytes() for p in (root / "inspect-logs").glob("*.eval"))
    assert user_logs
    return out


def _through_the_receiver(out: Exported, env: dict[str, str], root: Path) -> None:
    """The span files sent over OTLP to ``otel-bridge serve`` (W&B offline and file sinks): every file
    it wrote (spool, span files, W&B run and staging directories) is searched."""
    rx = root / "receiver"
    # started from the eval's environment, its secrets included (the receiver redacts the log
    # artifact copy with the secrets it knows; see test_late_secret_in_the_log_artifact)
    keep = ("WANDB_", "INSPECT_OTEL_CAPTURE", "INSPECT_OTEL_REDACT", "PLANTED_")
    rx_env = {k: v for k, v in env.items() if k.startswith(keep)}
    rx_env.update({"WANDB_DIR": str(rx / "wandb"), "WANDB_DATA_DIR": str(rx / "wandb-data")})
    rx_env.update({"WANDB_MODE": "offline", "INSPECT_OTEL_WANDB_PROJECT": "secrets-receiver"})
    receiver = ReceiverProcess(rx / "spool", rx / "spans", "wandb,file", rx_env).start()
    try:
        sync_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.http_port}"}
        result = subprocess.run(
            [OTEL_BRIDGE, "sync", "--to", "otlp", "--quiet", str(root / "spans")],
            cwd=ROOT,
            env=sync_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        assert receiver.stop() == 0, "".join(receiver.lines)[-3000:]
    _collect_dir(out, "receiver", rx)


@pytest.fixture(scope="module")
def exported(weave_server: WeaveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Exported]:
    return {
        content: _run(content, weave_server, tmp_path_factory.mktemp(f"content-{content}"))
        for content in (True, False)
    }


def _user_log_text(run: Exported) -> str:
    """Inspect's own logs, read by Inspect: the ground truth that every marker was really planted."""
    return "".join(read_eval_log(r["location"]).model_dump_json() for r in run.runs)


@pytest.mark.parametrize("content", [True, False], ids=["content-on", "content-off"])
def test_every_marker_was_planted(exported: dict[bool, Exported], content: bool) -> None:
    run = exported[content]
    assert [r["status"] for r in run.runs] == ["success", "success"]
    text = _user_log_text(run)
    missing = [k for k in run.markers if run.markers[k] not in text]
    assert missing == [], "markers the eval did not really produce"
    assert set(run.blobs) == {*PATHS, *(["log copy"] if content else [])}, "a path exported nothing"


@pytest.mark.parametrize("content", [True, False], ids=["content-on", "content-off"])
@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_never_leave(exported: dict[bool, Exported], content: bool, secret: str) -> None:
    run = exported[content]
    assert run.hits(run.markers[f"secret.{secret}"]) == []


def _in_later_log_copy(hit: str) -> bool:
    """A file inside a W&B log artifact written later by ``sync`` or the receiver."""
    return hit.startswith(("sync:", "receiver:")) and ("artifacts/staging/" in hit or ".eval!" in hit)


def test_late_secret_in_the_log_artifact(exported: dict[bool, Exported]) -> None:
    """A secret exported into the eval's environment after the W&B worker started (between the two
    evals): the eval's process tells the worker (worker_protocol's secrets frame), so the redacted
    log copy the worker uploads does not hold it, and it is in no W&B byte of the live run. The
    oracle: Inspect's own log of the second eval holds it (the copy had it to redact)."""
    run = exported[True]
    late = run.markers["secret.late"]
    assert late in read_eval_log(run.runs[1]["location"]).model_dump_json()
    staged = [n for n, _ in run.blobs["wandb"] if "artifacts/staging/" in n or ".eval!" in n]
    assert staged, "the live run uploaded no log copy"
    assert run.hits(late, "wandb") == []


def test_late_secret_in_a_later_process_log_copy(exported: dict[bool, Exported]) -> None:
    """``otel-bridge sync`` and the receiver run later, in processes whose environment lacks the
    eval's late secret, and each uploads a W&B log artifact: the eval's own redacted copy (named
    on its task spans), so neither holds the secret. The oracle: the raw marker the test planted
    in the eval's environment, which Inspect's own log of the second eval holds."""
    run = exported[True]
    late = run.markers["secret.late"]
    assert late in read_eval_log(run.runs[1]["location"]).model_dump_json()
    for path in ("sync", "receiver"):
        assert [n for n, _ in run.blobs[path] if _in_later_log_copy(f"{path}:{n}")], f"{path}: no log copy"
        assert run.hits(late, path) == []


def test_a_later_process_without_the_eval_copy_says_it_redacts_itself(
    exported: dict[bool, Exported], tmp_path: Path
) -> None:
    """With the eval's copies gone (an old span file, a receiver on another machine), ``sync``
    redacts the log with its own environment and says so, naming each log once; its copy then
    holds the late secret — what the eval's copy prevents (so the test above can fail)."""
    run = exported[True]
    copies = run.root / "spans" / "redacted-logs"
    aside = tmp_path / "aside"
    copies.rename(aside)
    try:
        env = {k: v for k, v in subprocess_env().items() if k != "LATE_DEPLOY_API_KEY"}
        env.update(
            {
                "INSPECT_OTEL_CAPTURE_CONTENT": "true",
                "INSPECT_OTEL_WANDB_PROJECT": "secrets-fallback",
                "WANDB_MODE": "offline",
                "WANDB_DIR": str(tmp_path / "wandb"),
                "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
                "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
            }
        )
        result = subprocess.run(
            [OTEL_BRIDGE, "sync", "--to", "wandb", str(run.root / "spans")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        aside.rename(copies)
    assert result.returncode == 0, result.stderr[-3000:]
    said = [line for line in result.stderr.splitlines() if "not the eval's own redacted copy" in line]
    names = [Path(r["location"]).name for r in run.runs]
    assert said and all(sum(n in line for line in said) == 1 for n in names), result.stderr[-3000:]
    fallback = Exported(run.markers, tmp_path)
    _collect_dir(fallback, "sync", tmp_path / "wandb-data")
    assert fallback.hits(run.markers["secret.late"]), "the fallback copy should hold the late secret"


def test_the_sandbox_really_ran(exported: dict[bool, Exported]) -> None:
    """Inspect's own log (the oracle) holds the sandbox exec: the command marker in its command,
    the output marker and the sandbox secret in its output, and not the output marker in the
    command (so the output reached the exports only as output)."""
    for run in exported.values():
        log = read_eval_log(run.runs[0]["location"])
        events = [e for s in log.samples or [] for e in s.events if e.event == "sandbox"]
        execs = [
            e for e in events if e.action == "exec" and run.markers["content.sandbox_cmd"] in (e.cmd or "")
        ]
        assert len(execs) == 1, [e.cmd for e in events]
        output = execs[0].output or ""
        assert run.markers["content.sandbox_output"] in output
        assert run.markers["secret.sandbox"] in output
        assert run.markers["content.sandbox_output"] not in (execs[0].cmd or "")


@pytest.mark.parametrize("name", CONTENT)
def test_content_off_exports_no_content(exported: dict[bool, Exported], name: str) -> None:
    run = exported[False]
    assert run.hits(run.markers[f"content.{name}"]) == []


@pytest.mark.parametrize("name", CONTENT)
def test_content_on_exports_content(exported: dict[bool, Exported], name: str) -> None:
    """The other side of the oracle: with content on, every content marker is exported (so the
    content-off test would catch a leak), in the span file, over OTLP, in the W&B log artifact and
    in the eval's redacted log copy."""
    run = exported[True]
    marker = run.markers[f"content.{name}"]
    for path in ("span file", "otlp", "wandb", "log copy"):
        assert run.hits(marker, path), f"{name} not in {path}"


def test_content_on_reaches_weave_sync_and_the_receiver(exported: dict[bool, Exported]) -> None:
    run = exported[True]
    for name in ("input", "completion", "target"):
        for path in ("weave", "sync", "receiver"):
            assert run.hits(run.markers[f"content.{name}"], path), (name, path)


def test_content_off_says_the_log_is_not_uploaded(exported: dict[bool, Exported]) -> None:
    assert "logs are not uploaded to W&B" in exported[False].stderr
    assert "logs are not uploaded to W&B" not in exported[True].stderr


def test_collector_stripped_pipeline_removes_what_content_off_removes(
    exported: dict[bool, Exported], binaries: Binaries, jaeger: Jaeger, tmp_path: Path
) -> None:
    """The spans of the content-ON run, replayed with ``otel-bridge sync --to otlp`` through the real
    collector: its content-stripped destination receives none of the content markers (nor a
    secret), and still the spans and what is not content."""
    run = exported[True]
    token = uuid.uuid4().hex
    with OtlpCapture(token=token) as bridge, OtlpCapture() as stripped:
        collector = Collector(
            binaries.collector,
            tmp_path,
            bridge_endpoint=bridge.http_endpoint,
            jaeger_endpoint=jaeger.otlp_grpc_endpoint,
            overlays=["otlp-stripped.yaml"],
            env={"INSPECT_OTEL_RECEIVER_TOKEN": token, "STRIPPED_OTLP_ENDPOINT": stripped.http_endpoint},
        )
        collector.start()
        try:
            env = subprocess_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint})
            result = subprocess.run(
                [OTEL_BRIDGE, "sync", "--to", "otlp", "--quiet", str(run.root / "spans")],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            sent = sum(len(p.read_text().splitlines()) for p in (run.root / "spans").glob("*.jsonl"))
            assert sent > 0
            received = bridge.wait_for(1, timeout=30)
            stripped_spans = stripped.wait_for(len(received), timeout=30)
            data = stripped.all_bytes()
            full = bridge.all_bytes()
        finally:
            collector.stop()
    leaked = [k for k, v in run.markers.items() if v.encode() in data]
    assert leaked == []
    assert all(run.markers[f"content.{name}"].encode() in full for name in CONTENT), "sent with content"
    names = {s.name for s in stripped_spans}
    assert any(n.startswith("execute_tool") for n in names) and any(n.startswith("chat") for n in names)
    assert b"modelfail" in data and b"planted/agent" in data  # ids and names stay


def _as_another_sender(span_files: list[Path], raw: dict[str, str], markers: list[str]) -> list[bytes]:
    """The content-on run's spans as a sender that is not the hook would send them: the raw secrets
    written beside the input, completion and target markers, and an ``api_key`` attribute (and an
    ``auth_token`` resource attribute) on every span — nothing redacted them."""
    beside = " ".join(
        [raw["openai"], raw["github"], raw["env"], raw["pattern"], f"password={raw['key_value']}"]
    )
    lines = []
    for path in span_files:
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            for rs in doc["resourceSpans"]:
                attrs = rs.setdefault("resource", {}).setdefault("attributes", [])
                attrs.append({"key": "auth_token", "value": {"stringValue": raw["resource"]}})
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        for kv in span.get("attributes", []):
                            value = kv["value"].get("stringValue")
                            if value is not None:
                                kv["value"]["stringValue"] = _plant_beside(value, beside, markers)
                        span.setdefault("attributes", []).append(
                            {"key": "api_key", "value": {"stringValue": raw["attribute"]}}
                        )
            lines.append(json.dumps(doc).encode())
    return lines


def _plant_beside(value: str, beside: str, markers: list[str]) -> str:
    for marker in markers:
        value = value.replace(marker, f"{marker} {beside}")
    return value


def test_the_receiver_redacts_spans_from_other_senders(
    exported: dict[bool, Exported], weave_server: WeaveServer, tmp_path: Path
) -> None:
    """Raw OTLP/JSON requests (not from the hook) carrying planted secrets, posted to
    ``otel-bridge serve --to file,weave,wandb``: no secret in any byte the receiver wrote (its
    spool and span files, the W&B run and staging directories, the Weave project), while the
    content markers beside them did arrive everywhere (so the strings were exported)."""
    import urllib.request

    run = exported[True]
    raw = {
        "openai": "sk-proj-" + uuid.uuid4().hex + uuid.uuid4().hex[:8],
        "github": "ghp_" + uuid.uuid4().hex + uuid.uuid4().hex[:4],
        "env": uuid.uuid4().hex[:26],  # the receiver's own PLANTED_RECEIVER_TOKEN
        "pattern": "CORP-" + str(uuid.uuid4().int)[:10],  # the receiver's INSPECT_OTEL_REDACT_PATTERNS
        "key_value": uuid.uuid4().hex[:29],
        "attribute": uuid.uuid4().hex[:31],
        "resource": uuid.uuid4().hex[:30],
    }
    shown = [run.markers[f"content.{name}"] for name in ("input", "completion", "target")]
    requests = _as_another_sender(sorted((run.root / "spans").glob("*.jsonl")), raw, shown)
    assert all(secret.encode() in b"".join(requests) for secret in raw.values())
    rx, project = tmp_path / "rx", f"test-entity/secrets-rx-{uuid.uuid4().hex[:10]}"
    rx_env = server_env(weave_server, project)
    rx_env.update(
        {
            "PLANTED_RECEIVER_TOKEN": raw["env"],
            "INSPECT_OTEL_REDACT_PATTERNS": PATTERN,
            "INSPECT_OTEL_CAPTURE_CONTENT": "true",
            "INSPECT_OTEL_WEAVE_PROJECT": project,
            "INSPECT_OTEL_WANDB_PROJECT": "secrets-rx",
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(rx / "wandb"),
            "WANDB_DATA_DIR": str(rx / "wandb-data"),
            "WANDB_CACHE_DIR": str(rx / "wandb-cache"),
        }
    )
    receiver = ReceiverProcess(rx / "spool", rx / "spans", "file,weave,wandb", rx_env).start()
    try:
        for body in requests:
            post = urllib.request.Request(
                receiver.traces_url, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(post, timeout=60) as response:
                assert response.status == 200
    finally:
        assert receiver.stop() == 0, "".join(receiver.lines)[-3000:]
    out = Exported(run.markers, rx)
    _collect_dir(out, "receiver", rx)
    _collect_weave(out, weave_server, project)
    for path in ("receiver", "weave"):
        for marker in shown:
            assert out.hits(marker, path), (marker, path)
    assert [n for n, data in out.blobs["receiver"] if b'"api_key"' in data], "the attribute was exported"
    leaked = {name: out.hits(secret) for name, secret in raw.items() if out.hits(secret)}
    assert leaked == {}


def server_env(server: WeaveServer, project: str) -> dict[str, str]:
    """The W&B/Weave client settings that point a child process at the local server."""
    env = server.env(*project.split("/"))
    return {k: v for k, v in env.items() if k.startswith(("WANDB_", "WF_", "WEAVE_"))}
