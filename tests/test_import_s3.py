"""``otel-bridge import s3://…``: logs read through Inspect's own fsspec reading give the same spans.

STAND-IN: no real S3 is reachable from this machine, so the bucket is moto's S3-compatible server
(``moto.server.ThreadedMotoServer``, on loopback) and the client is the real s3fs / aiobotocore
stack Inspect uses for ``s3://`` paths, pointed at it with the standard ``AWS_ENDPOINT_URL_S3``.
The oracle is the import of the local copy of the same logs: every span equal (ids, names, times,
attributes, events), but ``inspect.log.location``, which names where the log was read from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord, read_span_file
from tests.support.bridge import OTEL_BRIDGE, ROOT, BridgeEnv, inspect_eval, run_cli, subprocess_env

DEMO = str(ROOT / "examples" / "bridge_demo.py")
BUCKET, PREFIX = "team-evals", "nightly/logs"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """An S3-compatible endpoint on loopback (moto), with an empty bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, **_boto_keys())
    client.create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": KEYS["AWS_SECRET_ACCESS_KEY"],
        "region_name": KEYS["AWS_DEFAULT_REGION"],
    }


def _spans(directory: Path) -> dict[tuple[str, str], SpanRecord]:
    spans = [s for p in sorted(directory.glob("*.jsonl")) for s in read_span_file(p)]
    out = {(s.trace_id, s.span_id): s for s in spans}
    assert len(out) == len(spans)  # no span twice
    return out


def _view(span: SpanRecord) -> dict[str, Any]:
    return {
        "name": span.name,
        "parent": span.parent_id,
        "kind": span.kind,
        "times": (span.start_ns, span.end_ns),
        "status": (span.status, span.status_message),
        "attributes": {k: v for k, v in span.attributes.items() if k != c.LOG_LOCATION},
        "events": span.events,
        "resource": {k: v for k, v in span.resource.items() if k != "service.instance.id"},
    }


def test_import_from_s3_gives_the_spans_of_the_local_copy(s3: str, tmp_path: Path) -> None:
    env = BridgeEnv(tmp_path)
    args = [f"{DEMO}@arithmetic", f"{DEMO}@arithmetic_quick", "--model", "offline/careful", "-T", "samples=2"]
    ran = inspect_eval([*args, "--log-dir", str(env.log_dir)], subprocess_env({}))
    assert ran.returncode == 0, ran.stderr[-3000:]
    logs = sorted(env.log_dir.glob("*.eval"))
    assert len(logs) == 2
    client = boto3.client("s3", endpoint_url=s3, **_boto_keys())
    for log in logs:
        client.upload_file(str(log), BUCKET, f"{PREFIX}/{log.name}")

    import_env = subprocess_env({**KEYS, "AWS_ENDPOINT_URL_S3": s3, "INSPECT_OTEL_DIR": str(tmp_path / "x")})
    local = run_cli(
        [OTEL_BRIDGE, "import", str(env.log_dir), "--dir", str(tmp_path / "local"), "--quiet"], import_env
    )
    assert local.returncode == 0, local.stderr[-3000:]
    # a prefix (listed recursively by Inspect) and a single object URL
    from_dir = run_cli(
        [OTEL_BRIDGE, "import", f"s3://{BUCKET}/{PREFIX}", "--dir", str(tmp_path / "s3dir"), "--quiet"],
        import_env,
    )
    assert from_dir.returncode == 0, from_dir.stderr[-3000:]
    one = f"s3://{BUCKET}/{PREFIX}/{logs[0].name}"
    from_file = run_cli(
        [OTEL_BRIDGE, "import", one, "--dir", str(tmp_path / "s3file"), "--quiet"], import_env
    )
    assert from_file.returncode == 0, from_file.stderr[-3000:]

    expected = _spans(tmp_path / "local")
    got = _spans(tmp_path / "s3dir")
    assert sorted(got) == sorted(expected)
    assert {k: _view(s) for k, s in got.items()} == {k: _view(s) for k, s in expected.items()}
    # where each task's log was read from: the object's URL, as Inspect names it
    locations = {s.attributes[c.LOG_LOCATION] for s in got.values() if c.LOG_LOCATION in s.attributes}
    assert locations == {f"s3://{BUCKET}/{PREFIX}/{log.name}" for log in logs}

    # the single object: its task's sample traces are those of the local import (a run's and its
    # tasks' own spans take their times from the whole run's hook calls, so only the samples compare)
    single = _spans(tmp_path / "s3file")
    first = str(logs[0])
    eval_ids = {
        s.attributes.get(c.EVAL_ID) for s in expected.values() if s.attributes.get(c.LOG_LOCATION) == first
    }
    assert len(eval_ids) == 1
    samples = {k: s for k, s in single.items() if c.SAMPLE_UUID in s.attributes}
    assert samples and {s.attributes.get(c.EVAL_ID) for s in samples.values()} == eval_ids
    assert {k: _view(s) for k, s in samples.items()} == {
        k: _view(s)
        for k, s in expected.items()
        if s.attributes.get(c.EVAL_ID) in eval_ids and c.SAMPLE_UUID in s.attributes
    }
    assert {s.name for s in single.values() if c.SAMPLE_UUID not in s.attributes} >= {c.SPAN_RUN, c.SPAN_TASK}
