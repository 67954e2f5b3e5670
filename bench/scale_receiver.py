"""The receiver and the live-eval rows of ``bench/scale.py`` (issue 12).

``ingest``: `otel-bridge serve --to SINK` fed a span file's export requests over OTLP/HTTP by a
few concurrent senders. Two rates: *ingest* (spans acknowledged per second, from the first
request to the last 200: decoded, validated, de-duplicated, spooled and fsynced — what a
collector sees) and *translate* (spans the sink worker delivered per second, from the first
request until ``/healthz`` says every span is delivered and the spool is empty).

``live``: the bench eval (``bench/run.py``'s child: the full solver chain on the zero-latency
offline model) with N samples, bridge off and on with the default sinks (span file + offline
W&B run). Spans dropped = what the closing line says was dropped or not delivered, plus the
shortfall of the span file against the expected count (spans per sample and the fixed part
measured from two small runs of the same eval).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.run import _run

BIN = Path(sys.executable).parent
OTEL_BRIDGE = str(BIN / "otel-bridge")
SENDERS = 4


def request_bodies(path: Path, parts: list[Path]) -> int:
    """Each span-file line as the protobuf body an OTLP exporter would POST; the span count.

    The bodies go length-prefixed, round robin, into one file per sender, a line at a time: the
    senders stream them back from disk (memory stays flat at 100k samples, ~2.5 GB of bodies),
    and the conversion happens before the clock starts.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from otel_bridge.otlp_json import json_to_request

    spans, n = 0, 0
    outs = [open(p, "wb") for p in parts]  # noqa: SIM115
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if line.strip():
                    request: ExportTraceServiceRequest = json_to_request(line)
                    spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                    body = request.SerializeToString()
                    outs[n % len(outs)].write(len(body).to_bytes(4, "big") + body)
                    n += 1
    finally:
        for out in outs:
            out.close()
    return spans


def _stream(path: Path) -> Iterator[bytes]:
    """The bodies ``request_bodies`` wrote into one sender's file, one at a time."""
    with open(path, "rb") as fh:
        while head := fh.read(4):
            yield fh.read(int.from_bytes(head, "big"))


def _health(port: int) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        doc: dict[str, object] = json.loads(conn.getresponse().read())
        return doc
    finally:
        conn.close()


def ingest(
    path: Path, root: Path, sink: str, env: dict[str, str], cpus: set[int] | None = None
) -> tuple[tuple[float, float, float, int], tuple[float, float]]:
    """(wall, CPU, peak RSS MB, exit) of the receiver process, and (ingest, translate) spans/s.

    ``cpus``: the receiver process is pinned to these CPUs (the target is "on one core"; the
    senders run unpinned in this process).
    """
    parts = [root / f"bodies-{i}.bin" for i in range(SENDERS)]
    spans = request_bodies(path, parts)
    argv = [OTEL_BRIDGE, "serve", "--port", "0", "--no-grpc", "--to", sink]
    argv += ["--spool-dir", str(root / "spool"), "--span-dir", str(root / "spans")]
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,  # noqa: PLW1509
    )
    assert proc.stderr is not None
    port, said = 0, []
    for line in proc.stderr:
        said.append(line)
        if m := re.search(r"listening http=127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
            break
    if not port:
        raise SystemExit("otel-bridge serve did not start:\n" + "".join(said))
    threading.Thread(target=lambda: [said.append(ln) for ln in proc.stderr or ()], daemon=True).start()
    failures: list[int] = []

    def send(part: Path) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for body in _stream(part):
            for _ in range(6000):  # 503 while the spool's backlog is over its limit: back off, retry
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                response = conn.getresponse()
                response.read()
                if response.status != 503:
                    break
                time.sleep(0.05)
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = time.monotonic() - started
    deadline = time.monotonic() + max(600.0, spans / 50)
    while time.monotonic() < deadline:
        doc = _health(port)
        if int(str(doc["delivered_spans"])) >= spans and doc["pending_bytes"] == 0:
            break
        time.sleep(0.2)
    delivered = time.monotonic() - started
    proc.send_signal(2)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if failures or code:
        print(f"  receiver --to {sink}: refused {sorted(set(failures))}; exit {code}", file=sys.stderr)
        print("".join(said)[-2000:], file=sys.stderr)
        code = code or 1
    usage_cpu = usage.ru_utime + usage.ru_stime
    return (delivered, usage_cpu, usage.ru_maxrss / 1024, code), (spans / accepted, spans / delivered)


def live(samples: int, work: Path) -> dict[str, dict[str, float]]:
    """The eval with ``samples`` samples, bridge off and with the default sinks; see the module doc."""
    work.mkdir(parents=True, exist_ok=True)
    small = [_run("default", n, work, None) for n in (20, 40)]
    per_sample = (small[1]["spans"] - small[0]["spans"]) / 20
    fixed = small[0]["spans"] - 20 * per_sample
    expected = round(fixed + per_sample * samples)
    off = _run("off", samples, work, None)
    print(f"  live off: {off['wall']:.1f} s, {off['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    on = _run("default", samples, work, None)
    on["dropped"] = int(on.get("said_dropped", 0)) + max(0, expected - int(on["spans"]))
    on["expected"] = expected
    on["ratio"] = on["wall"] / off["wall"]
    print(
        f"  live default sinks: {on['wall']:.1f} s, {on['rss_mb']:.0f} MB, spans {on['spans']:.0f} of "
        f"{expected} expected, closing line said {on.get('said_dropped', 0):.0f} dropped",
        file=sys.stderr,
        flush=True,
    )
    off["samples"] = on["samples"] = samples
    return {"off": off, "on": on}
