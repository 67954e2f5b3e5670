"""What OTel metrics cost the eval's process per model call: the metrics pipeline alone, no eval.

    .venv/bin/python bench/metrics_side.py            # or: --samples 1500 --reps 5

The eval-loop benchmark (``bench/run.py``) sees the metrics as a few tens of µs per model call in
a 6-second process whose CPU varies by more than that from run to run on a shared VM. This one
drives the bridge's real pipeline (``otel_bridge.pipeline.Pipeline``: the MeterProvider, the
metrics thread, the metric file and, with ``otlp``, the OTLP export, wherever the code under test
runs it) with the hook's own recording calls for a paced synthetic eval — per sample 3 model
calls, 1 tool call, the sample's end and 2 scores, collected every second — and reads this
process's CPU (``getrusage``: a worker process's CPU is not counted). Metrics off is the baseline;
the OTLP endpoint is a local stand-in answering 200 (``run.MetricsSink``). Run it against another
tree with ``PYTHONPATH=<tree>`` (the recorder's calls are the same there).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(exporters: str, samples: int, pace_s: float, endpoint: str, workdir: Path) -> tuple[float, float]:
    """(process CPU seconds while recording, wall seconds of the shutdown) for one configuration."""
    from inspect_ai.event import ToolEvent
    from inspect_ai.log import EvalSample

    from otel_bridge.config import load_settings
    from otel_bridge.pipeline import Pipeline

    env = {
        "INSPECT_OTEL_ENABLED": "1",
        "INSPECT_OTEL_EXPORTERS": "file",
        "INSPECT_OTEL_DIR": str(workdir),
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint,
    }
    env["OTEL_METRICS_EXPORTER"] = exporters or "none"
    os.environ.update(env)  # a worker process reads its settings from the environment
    pipeline = Pipeline(load_settings(), "bench")
    recorder = pipeline.metrics.recorder if pipeline.metrics is not None else None
    base = {"inspect.task.name": "arithmetic", "inspect.model": "offline/careful"}
    call = {
        **base,
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "offline",
        "gen_ai.request.model": "careful",
        "gen_ai.response.model": "offline/careful",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 12,
    }
    now = datetime.now(UTC)
    done = now + timedelta(seconds=0.01)
    tool = ToolEvent(id="1", function="add", arguments={}, timestamp=now, completed=done)
    sample = EvalSample(id=1, epoch=1, input="q", target="1", total_time=0.5, working_time=0.4)
    scores = [
        {"gen_ai.evaluation.name": "pattern", "gen_ai.evaluation.score.value": 1.0},
        {"gen_ai.evaluation.name": "used_tool", "gen_ai.evaluation.score.value": 1.0},
    ]
    time.sleep(1.0)  # the worker (if any) starts; not counted
    start = _cpu()
    for i in range(samples):
        if recorder is not None:
            t = time.time_ns()
            for _ in range(3):
                recorder.model_call(call, t, t + 1_000_000, None if i % 7 else "RateLimitError")
            recorder.tool_call(base, tool)
            recorder.sample_end(base, sample)
            for score in scores:
                recorder.score(base, score)
        time.sleep(pace_s)
    if pipeline.metrics is not None:
        pipeline.metrics.collect()  # the last collection, as a run's end does
    used = _cpu() - start
    stop = time.monotonic()
    pipeline.shutdown()
    return used, time.monotonic() - stop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument("--pace", type=float, default=0.004, help="seconds between samples")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    from run import MetricsSink

    import otel_bridge

    sink = MetricsSink()
    configs = {"off": "", "file": "file", "otlp": "otlp"}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    stops: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name, exporters in configs.items():
                used, stop = run(exporters, args.samples, args.pace, sink.url, Path(tmp) / f"{name}-{rep}")
                cpu[name].append(used)
                stops[name].append(stop)
                print(f"rep {rep + 1} {name}: cpu {used:.3f} s, shutdown {stop:.2f} s", file=sys.stderr)
    calls = args.samples * 3
    off = statistics.median(cpu["off"])
    load = os.getloadavg()[0]
    print(f"\n{otel_bridge.__file__}: {args.samples} samples ({calls} model calls) × {args.reps} reps")
    print(f"load average at the end: {load:.1f}")
    print("| metrics | process CPU s (median) | µs per model call over off (median; range) | shutdown s |")
    print("|---|---|---|---|")
    for name in configs:
        extra = sorted((c - o) / calls * 1e6 for c, o in zip(cpu[name], cpu["off"], strict=True))
        median = statistics.median(cpu[name])
        print(
            f"| {name} | {median:.3f} | {(median - off) / calls * 1e6:+.1f}"
            f" ({extra[0]:+.1f}…{extra[-1]:+.1f}) | {statistics.median(stops[name]):.2f} |"
        )
    print(f"metrics sink got {sink.requests} requests")


if __name__ == "__main__":
    main()
