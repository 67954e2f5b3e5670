"""The hook's spans sent straight to Weave's OTLP endpoint read well in Weave's Traces view.

The spans come from a real eval's span file; the endpoint is Weave's own OTLP mapping code
running in the test server, so rejections (partial_success) and the mapping are Weave's.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otel_bridge import conventions as c
from otel_bridge.otlp_json import json_to_request
from otel_bridge.records import SpanRecord, read_span_file
from tests.weave_server.harness import WeaveServer
from tests.weave_server.pytest_plugin import weave_server

__all__ = ["weave_server"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def span_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("otlp")
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("INSPECT_OTEL")},
        "INSPECT_OTEL_ENABLED": "1",
        "INSPECT_OTEL_DIR": str(tmp / "spans"),
        "PYTHONPATH": str(ROOT / "examples"),
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "inspect"),
            "eval",
            str(ROOT / "examples" / "bridge_demo.py@arithmetic"),
            "--model",
            "offline/careful",
            "-T",
            "samples=2",
            "--log-dir",
            str(tmp / "logs"),
            "--display",
            "none",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [path] = sorted((tmp / "spans").glob("*.jsonl"))
    return path


def test_no_span_has_both_foo_and_foo_dot_bar(span_file: Path) -> None:
    """Weave rejects a whole span that has both ``foo`` and ``foo.bar``."""
    spans = list(read_span_file(span_file))
    assert spans
    for span in spans:
        keys = set(span.attributes)
        clashes = [k for k in keys if any(other.startswith(k + ".") for other in keys)]
        assert clashes == [], f"{span.name}: {clashes}"


def test_every_span_is_accepted_and_maps_to_a_readable_call(
    weave_server: WeaveServer, span_file: Path
) -> None:
    project = f"ent/otlp-{uuid.uuid4().hex[:10]}"
    spans: list[SpanRecord] = list(read_span_file(span_file))
    for line in span_file.read_bytes().splitlines():
        if not line.strip():
            continue
        request = json_to_request(line)
        response = weave_server.post_otlp(project, request.SerializeToString())
        assert response.partial_success.rejected_spans == 0, response.partial_success.error_message
    calls = weave_server.wait_for(
        lambda: weave_server.calls(project), lambda cs: len(cs) >= len(spans), timeout=30
    )
    assert len(calls) == len(spans)
    by_id = {call["id"]: call for call in calls}
    by_name: dict[str, list[dict]] = {}
    for call in calls:
        by_name.setdefault(str(call.get("display_name")), []).append(call)
    # a display name per span
    for span in spans:
        assert str(span.attributes[c.WANDB_DISPLAY_NAME]) in by_name, span.name
    # chats: model, usage, readable messages
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert chats
    chat_calls = [call for call in calls if str(call.get("display_name", "")).startswith("chat ")]
    assert len(chat_calls) == len(chats)
    for call in chat_calls:
        usage = (call.get("summary") or {}).get("usage") or {}
        assert usage, call
        [(model, counts)] = usage.items()
        assert "careful" in model
        assert counts.get("input_tokens", counts.get("prompt_tokens", 0)) > 0
        assert call.get("inputs") and call.get("output") is not None
    # samples: inputs and outputs, and grouped as threads (one per sample)
    samples = [call for call in calls if str(call.get("display_name", "")).startswith("arithmetic sample")]
    assert len(samples) == 2
    for call in samples:
        assert call.get("inputs") and call.get("output") is not None
        assert call.get("thread_id")
    assert len({call["thread_id"] for call in samples}) == 2
    # tools carry their arguments and result
    tools = [call for call in calls if str(call.get("display_name", "")).startswith("tool: ")]
    assert tools and all(t.get("inputs") and t.get("output") is not None for t in tools)
    # nesting is Inspect's: a chat's parent chain reaches its sample
    chat = chat_calls[0]
    parent = chat
    for _ in range(10):
        parent = by_id.get(parent.get("parent_id") or "", {})
        if str(parent.get("display_name", "")).startswith("arithmetic sample"):
            break
    assert str(parent.get("display_name", "")).startswith("arithmetic sample")


def test_errors_map_to_exceptions(weave_server: WeaveServer, span_file: Path) -> None:
    """A span with ERROR status becomes a call with an exception."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    project = f"ent/otlp-err-{uuid.uuid4().hex[:10]}"
    line = next(x for x in span_file.read_bytes().splitlines() if b"inspect.sample" in x)
    request = json_to_request(line)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.status.code = Status.STATUS_CODE_ERROR
    span.status.message = "sample failed: boom"
    response = weave_server.post_otlp(project, request.SerializeToString())
    assert response.partial_success.rejected_spans == 0
    calls = weave_server.wait_for(lambda: weave_server.calls(project), bool, timeout=30)
    failed = [call for call in calls if call.get("exception")]
    assert failed and "boom" in failed[0]["exception"]
