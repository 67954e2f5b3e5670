"""Overhead of the bridge on the eval loop: bridge off vs on (file; file + metrics; file + OTLP; the default).

    make bench            # or: .venv/bin/python bench/run.py --samples 300 --reps 5 [--configs metrics,otlp]

Configurations: off (bridge installed, disabled), noop (a hook that does nothing: Inspect's own
cost of delivering events to any hook), file, unredacted (file with the redactor stubbed out:
the difference is what redaction costs), paired (one file eval in which the redactor works for
half the samples and is stubbed for the other half: the hook's CPU per span of the two halves,
compared within the run, where the host's drift and the GC cancel; the stubs are swapped in as
each hook call starts, with no timer around the redactor, so the redacting half runs its own code
unwrapped; alternate runs swap the halves; BENCH_PAIRED_PARTS=span stubs only the edge pass,
=none nothing: the noise floor), metrics (file + OTel metrics to the metric file,
``OTEL_METRICS_EXPORTER=file``), metrics-otlp (the same with ``otlp``: also OTLP metrics, every
second, to a local stand-in answering 200), otlp (file + OTLP to a local receiver), default (file + an
offline W&B run, the embedded default). Each runs a ≥300-sample eval with the full
solver chain (system message, react agent with a tool call, a self-check call, two scorers) on
the zero-latency offline model — the worst case for relative overhead. Runs are interleaved
(off, noop, file, otlp, default, off, ...) in fresh processes. The table shows the median wall
time; its ratio to "off" as the median (and range) of each run against the "off" run of the same
rep — adjacent in time, so a shared VM's drift cancels — and the best run against the best; the CPU the
bridge's hook calls took on the eval's event-loop thread per span (timed around every hook call)
and the redactor's share of it (every outermost call into otel_bridge.redact, net of the timer;
not timed in paired runs), the extra process CPU outside that thread per span (exporter threads;
the W&B/Weave worker is a separate process and not counted), and peak RSS. Below the table,
what metrics add per model call (metrics vs file: the hook's loop CPU, and the process's CPU
outside the loop thread, where the metrics thread records). Results are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# what each configuration exports to ("default" is the embedded default: span file + offline W&B run)
EXPORTERS = {
    "file": "file",
    "unredacted": "file",
    "paired": "file",
    "metrics": "file",
    "metrics-otlp": "file",
    "otlp": "file,otlp",
    "default": "file,wandb",
}

CHILD = r"""
import functools, inspect, json, os, resource, sys, time, zlib
sys.path.insert(0, {examples!r})
from inspect_ai import eval
from bridge_demo import arithmetic
samples = int(sys.argv[1])
hook_ns = {{"sample": 0, "setup": 0}}
redact_net = lambda: 0
if sys.argv[2] == "noop":  # Inspect's own cost of delivering events to a hook that does nothing
    from inspect_ai.hooks import Hooks, hooks

    @hooks(name="bench_noop", description="no-op")
    class Noop(Hooks):
        async def on_sample_event(self, data): pass
        async def on_sample_end(self, data): pass
elif sys.argv[2] != "off":  # time every hook call on the loop thread (none of them awaits)
    from otel_bridge.hook.hooks import OtelBridgeHooks

    paired = {{"on": True}}  # paired: the redactor works for half the samples (by id), not the other
    # which half: alternate runs swap them, so what the two halves' samples differ in cancels
    flip = int(os.environ.get("BENCH_PAIRED_FLIP", "0"))

    def timed(fn):
        part = "sample" if fn.__name__.startswith("on_sample") else "setup"

        @functools.wraps(fn)
        async def call(self, data):
            if sys.argv[2] == "paired" and part == "sample":
                on = (zlib.crc32(data.sample_id.encode()) + flip) % 2 == 0
                if on != paired["on"]:
                    paired["on"] = on
                    swap(on)
            t = time.thread_time_ns()
            try:
                return await fn(self, data)
            finally:
                spent = time.thread_time_ns() - t
                hook_ns[part] += spent
                if sys.argv[2] == "paired" and part == "sample":
                    half = "on" if paired["on"] else "off"
                    hook_ns[half] = hook_ns.get(half, 0) + spent
        return call

    for name, fn in list(vars(OtelBridgeHooks).items()):
        if name.startswith("on_") and inspect.iscoroutinefunction(fn):
            setattr(OtelBridgeHooks, name, timed(fn))

    # the redactor's share of it: every outermost call into it (the edge pass on each span, and
    # the content capture's redaction), on the monotonic clock (a thread-CPU clock read is a
    # syscall, slower than much of what it would time), net of the timing wrapper's own cost
    from otel_bridge import redact
    depth = [0]
    outer = [0]

    def redacting(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            outer[0] += 1
            t = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                hook_ns["redact"] = hook_ns.get("redact", 0) + time.perf_counter_ns() - t
                depth[0] -= 1
        return call

    def calibrate():
        noop = redacting(lambda: None)
        t = time.perf_counter_ns()
        for _ in range(20000):
            noop()
        return (time.perf_counter_ns() - t) / 20000

    wrapper_ns = calibrate()
    hook_ns["redact"] = 0
    outer[0] = 0
    redact_net = lambda: max(0, hook_ns["redact"] - outer[0] * wrapper_ns)
    if sys.argv[2] == "unredacted":  # the file config with the redactor stubbed out: its cost
        redact.Redactor.text = lambda self, value: value
        redact.Redactor.structure = lambda self, value, secret=False: value
        redact.Scrubber.span = lambda self, attrs, events, status: status
    if sys.argv[2] == "paired":  # the same stubs, only while a sample of the "off" half runs
        from otel_bridge import spanfactory
        # BENCH_PAIRED_PARTS: which of the edge pass ("span"), the content capture's redaction
        # ("text", "structure", "vouch") and the environment re-reads ("refresh") the off half
        # skips (all five by default). The stubs are swapped
        # in and out of the classes as each hook call starts (no timers either), so the half that
        # redacts runs the redactor's own code, with no wrapper frame on its inner calls
        parts = os.environ.get("BENCH_PAIRED_PARTS", "text,structure,vouch,span,refresh").split(",")
        stubs = {{
            (redact.Redactor, "text"): lambda self, v: v,
            (redact.Redactor, "structure"): lambda self, v, s=False: v,
            (redact.Redactor, "vouch"): lambda self, v: v,
            (redact.Scrubber, "span"): lambda self, a, e, s: s,
            (redact.Scrubber, "refresh"): lambda self: None,
        }}
        real = {{key: getattr(*key) for key in stubs}}
        chosen = [key for key in stubs if key[1] in parts]

        def swap(on):
            for key in chosen:
                setattr(*key, real[key] if on else stubs[key])

        emit = spanfactory.SpanFactory.emit

        def counted(self, span):
            half = "spans_on" if paired["on"] else "spans_off"
            hook_ns[half] = hook_ns.get(half, 0) + 1
            return emit(self, span)
        spanfactory.SpanFactory.emit = counted
    redactor_calls = (redact.Redactor, ("text", "structure", "vouch"))
    for cls, names in (redactor_calls, (redact.Scrubber, ("span", "refresh"))):
        for name in names if sys.argv[2] != "paired" else ():
            setattr(cls, name, redacting(getattr(cls, name)))
t0 = time.perf_counter(); r0 = resource.getrusage(resource.RUSAGE_SELF); m0 = time.thread_time()
logs = eval(arithmetic(samples=samples), model="offline/careful", display="none", max_samples=50)
m1 = time.thread_time(); r1 = resource.getrusage(resource.RUSAGE_SELF); t1 = time.perf_counter()
assert logs[0].status == "success", logs[0].error
print("RESULT", json.dumps({{
    "wall": t1 - t0,
    "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    "loop_cpu": m1 - m0,
    "hook_cpu": hook_ns["sample"] / 1e9,  # per-sample hooks: what grows with the eval
    "setup_cpu": hook_ns["setup"] / 1e9,  # run/task hooks: session start, final flush
    "redact_cpu": redact_net() / 1e9,  # inside the hook calls: the redactor's share
    "rss_mb": r1.ru_maxrss / 1024,
    **{{k: hook_ns[k] for k in ("on", "off", "spans_on", "spans_off") if k in hook_ns}},
}}))
"""


def _run(
    config: str,
    samples: int,
    workdir: Path,
    otlp_endpoint: str | None,
    metrics_url: str | None = None,
    flip: int = 0,
) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL_", "OTEL_"))}
    env["INSPECT_LOG_DIR"] = str(workdir / "logs")
    span_dir = workdir / f"spans-{config}-{len(list(workdir.glob('spans-*')))}"
    if config not in ("off", "noop"):
        env["INSPECT_OTEL_ENABLED"] = "1"
        env["INSPECT_OTEL_DIR"] = str(span_dir)
        env["INSPECT_OTEL_EXPORTERS"] = EXPORTERS[config]
        env["WANDB_MODE"] = "offline"
        env["WANDB_SILENT"] = "true"
        env["WANDB_DIR"] = str(workdir)
    if config == "paired":  # which half of the samples is redacted (alternate runs swap them)
        env["BENCH_PAIRED_FLIP"] = str(flip)
    if config == "metrics":
        env["OTEL_METRICS_EXPORTER"] = "file"
    if config == "metrics-otlp":  # the metric file + OTLP metrics to a local sink answering 200
        assert metrics_url
        env["OTEL_METRICS_EXPORTER"] = "otlp"
        env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = metrics_url
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    if config == "otlp":
        assert otlp_endpoint
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    script = CHILD.format(examples=str(ROOT / "examples"))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(samples), config],
        env=env,
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    match = re.search(r"RESULT (.*)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"{config} run failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, float] = json.loads(match.group(1))
    if config not in ("off", "noop"):
        from otel_bridge.records import read_span_file

        files = [p for p in span_dir.glob("*.jsonl") if not p.name.endswith(".metrics.jsonl")]
        names = [span.name for p in files for span in read_span_file(p)]
        result["spans"] = len(names)
        result["model_calls"] = sum(1 for name in names if name.startswith("chat "))
        # what the closing line says was lost on the way (queue full, not delivered)
        lost = re.findall(r"(\d+) span\(s\) (?:dropped|not delivered)", proc.stderr)
        result["said_dropped"] = sum(int(n) for n in lost)
    return result


def import_ms(reps: int = 7) -> float:
    """Cumulative import time of the hook's entry point with the bridge disabled."""
    times = []
    for _ in range(reps):
        proc = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "import inspect_ai.hooks; import otel_bridge._registry",
            ],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "INSPECT_OTEL_ENABLED"},
        )
        for line in proc.stderr.splitlines():
            if line.rstrip().endswith("| otel_bridge._registry"):
                times.append(int(line.split("|")[1]) / 1000)
    return statistics.median(times)


class MetricsSink:
    """A stand-in OTLP/HTTP metrics endpoint: answers 200 to every POST and counts the requests
    (the bench measures the eval's side, not a backend; the tests use the real collector)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"


def metrics_calls_us(n: int = 100_000) -> float:
    """The hook's metric calls alone, per model call of the bench eval (3 model calls, 1 tool call,
    1 sample end and 2 scores per sample), queue drained every 500 calls as the metrics thread does."""
    import time

    from inspect_ai.event import ToolEvent
    from opentelemetry.sdk.metrics import MeterProvider

    from otel_bridge.metrics.recorder import MetricsRecorder

    recorder = MetricsRecorder(MeterProvider().get_meter("bench"))
    attrs = {"gen_ai.request.model": "careful", "gen_ai.usage.input_tokens": 100, "inspect.task.name": "t"}
    event = ToolEvent(id="1", function="add", arguments={})
    start = time.thread_time_ns()
    for i in range(n):
        for _ in range(3):
            recorder.model_call(attrs, 0, 1, None)
        recorder.tool_call(attrs, event)
        recorder.sample_end(attrs, None)  # type: ignore[arg-type]  # never drained here
        recorder.score(attrs, attrs)
        recorder.score(attrs, attrs)
        if i % 70 == 0:
            recorder.pending.clear()
    return (time.thread_time_ns() - start) / (3 * n) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--configs", help="comma list of the configurations to run (default: all); off and file always run"
    )
    args = parser.parse_args()

    from tests.support.otlp_capture import OtlpCapture

    configs = ["off", "noop", "file", "unredacted", "paired", "metrics", "metrics-otlp", "otlp", "default"]
    if args.configs:
        wanted = {"off", "file", *args.configs.split(",")}
        configs = [c for c in configs if c in wanted]
    sink = MetricsSink()
    results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp, OtlpCapture() as receiver:
        workdir = Path(tmp)
        _run("off", 20, workdir, None)  # warm caches (imports, bytecode)
        for rep in range(args.reps):
            for config in configs:
                run = _run(config, args.samples, workdir, receiver.http_endpoint, sink.url, flip=rep % 2)
                results[config].append(run)
                print(f"rep {rep + 1}/{args.reps} {config}: {results[config][-1]}", file=sys.stderr)
        received = len(receiver.unique_spans())

    def med(config: str, key: str) -> float:
        return statistics.median(r[key] for r in results[config])

    def background(run: dict[str, float]) -> float:
        return run["cpu"] - run["loop_cpu"]  # process CPU outside the eval's event-loop thread

    off_bg = statistics.median(background(r) for r in results["off"])
    rows = []
    for config in configs:
        runs = results[config]
        # each run against the "off" run of its own rep (adjacent in time): the VM's drift cancels
        paired = sorted(r["wall"] / off["wall"] for r, off in zip(runs, results["off"], strict=True))
        best = min(r["wall"] for r in runs) / min(r["wall"] for r in results["off"])
        spans = statistics.median(r.get("spans", 0) for r in runs)
        hook = med(config, "hook_cpu") / spans * 1e6 if spans else float("nan")
        # paired runs time no redactor call (its own figure is printed below the table)
        timed = bool(spans) and config != "paired"
        redact = med(config, "redact_cpu") / spans * 1e6 if timed else float("nan")
        bg = (
            (statistics.median(background(r) for r in runs) - off_bg) / spans * 1e6 if spans else float("nan")
        )
        spread = f"{paired[0]:.2f}–{paired[-1]:.2f}"
        rows.append(
            (
                config,
                med(config, "wall"),
                statistics.median(paired),
                spread,
                best,
                hook,
                redact,
                bg,
                spans,
                med(config, "rss_mb"),
            )
        )

    cpu_name = platform.processor() or platform.machine()
    machine = f"{cpu_name}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n{args.samples} samples × {args.reps} interleaved reps; {machine}")
    header = (
        "config",
        "wall s",
        "ratio",
        "ratio range",
        "best/best",
        "hook µs/span",
        "of which redaction",
        "background µs/span",
        "spans",
        "peak RSS MB",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for config, wall, ratio, spread, best, hook, redact, bg, spans, rss in rows:
        shown = "-" if math.isnan(redact) else f"{redact:.1f}"
        extra = ("-", "-", "-") if not spans else (f"{hook:.0f}", shown, f"{bg:.0f}")
        cells = (
            config,
            f"{wall:.2f}",
            f"{ratio:.3f}",
            spread,
            f"{best:.3f}",
            *extra,
            f"{spans:.0f}",
            f"{rss:.0f}",
        )
        print("| " + " | ".join(cells) + " |")
    for metered in ("metrics", "metrics-otlp"):
        if metered not in results:
            continue
        calls = med(metered, "model_calls")
        loop = (med(metered, "hook_cpu") - med("file", "hook_cpu")) / calls * 1e6
        outside = (
            (
                statistics.median(background(r) for r in results[metered])
                - statistics.median(background(r) for r in results["file"])
            )
            / calls
            * 1e6
        )
        print(
            f"\n{metered} vs file, per model call ({calls:.0f} calls): hook CPU on the eval loop "
            f"{loop:+.1f} µs, CPU outside the loop thread {outside:+.1f} µs (medians)"
        )
    if "metrics-otlp" in results:
        print(f"metrics sink got {sink.requests} OTLP metric requests")
    print(f"the hook's metric calls alone: {metrics_calls_us():.2f} µs per model call (thread CPU)")
    print(f"import of otel_bridge._registry with the bridge disabled: {import_ms():.1f} ms (median of 7)")
    print(f"OTLP receiver got {received} spans")
    hooks = {row[0]: row[5] for row in rows}
    if "unredacted" in hooks:
        cost = hooks["file"] - hooks["unredacted"]
        print(
            f"redaction: {cost:.1f} µs/span = {cost / hooks['file']:.0%} of the hook's time "
            f"(file - unredacted, hook µs/span medians)"
        )
    if "paired" in results:
        # per run: the hook's CPU per span in the samples the redactor worked for, and in those it
        # did not (the same process, interleaved: the host's drift cancels)
        on = [r["on"] / r["spans_on"] / 1000 for r in results["paired"]]
        off = [r["off"] / r["spans_off"] / 1000 for r in results["paired"]]
        cost = [a - b for a, b in zip(on, off, strict=True)]
        share = sorted(d / a for d, a in zip(cost, on, strict=True))
        print(
            f"redaction, paired in one process: {statistics.median(cost):.1f} µs/span "
            f"({min(cost):.1f} to {max(cost):.1f}) = {statistics.median(share):.0%} of the hook's time "
            f"({share[0]:.0%} to {share[-1]:.0%}); hook {statistics.median(on):.1f} µs/span redacting, "
            f"{statistics.median(off):.1f} not (medians of {len(on)} runs)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
