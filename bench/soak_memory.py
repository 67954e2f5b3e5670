"""Where a long-running receiver's memory goes: N evals through the Weave and W&B sinks in-process.

Drives the receiver's own sinks (``WeaveSink``, ``WandbSink``) with the demo eval's spans, every
id fresh per eval (as ``tests/test_receiver_soak.py`` sends them to ``otel-bridge serve``),
against the local Weave test server and W&B offline, and waits after each eval until the Weave
server holds it (``flush`` True). After the 5th and the last eval it prints RSS, the Python heap
(tracemalloc), object counts by type, and the top allocation sites that grew in between.

    .venv/bin/python -m bench.soak_memory --evals 50 [--sinks weave,wandb] [--top 25]

``--trim`` calls glibc's ``malloc_trim(0)`` before each reading: what it gives back is free
memory the allocator held (fragmentation), not objects kept.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import gc
import os
import sys
import tempfile
import time
import tracemalloc
import types
from pathlib import Path
from typing import Any

import psutil

from bench.scale_spans import fresh_copy
from otel_bridge.config import load_settings
from otel_bridge.records import records_from_line
from otel_bridge.sinks.registry import make_record_sink
from tests.support.demo_spans import demo_span_file
from tests.support.e2e import sink_env
from tests.weave_server.harness import WeaveServer


def _trim() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reading(trim: bool) -> dict[str, Any]:
    gc.collect()
    before = psutil.Process().memory_info().rss
    if trim:
        _trim()
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return {
        "rss_untrimmed": before,
        "rss": psutil.Process().memory_info().rss,
        "fds": psutil.Process().num_fds(),
        "threads": len(psutil.Process().threads()),
        "heap": tracemalloc.get_traced_memory()[0],
        "heap_peak": tracemalloc.get_traced_memory()[1],
        "snapshot": tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None,
        "counts": counts,
    }


def _describe(r: Any) -> str:
    desc = type(r).__name__
    if isinstance(r, dict):
        desc += f" keys={list(r)[:6]}"
    elif isinstance(r, types.MethodType):
        desc += f" {r.__func__.__qualname__}"
    elif isinstance(r, (types.FunctionType, type)):
        desc += f" {r.__qualname__}"
    elif isinstance(r, (list, tuple)):
        desc += f" len={len(r)} of {sorted({type(x).__name__ for x in r[:20]})}"
    return desc


def _why(name: str, depth: int = 9) -> None:
    """Print the referrers of the oldest object of type ``name``, breadth-first (what keeps it)."""
    gc.collect()
    objs = [o for o in gc.get_objects() if type(o).__name__ == name]
    print(f"\n{name}: {len(objs)} alive")
    if not objs:
        return
    skip = {id(objs), id(sys._getframe())}
    level = [objs[0]]
    del objs
    seen: set[int] = set()
    for depth_i in range(depth):
        nxt = []
        for target in level:
            seen.add(id(target))
            for r in gc.get_referrers(target):
                if id(r) in skip or id(r) in seen or type(r).__name__ == "frame" or r is level or r is nxt:
                    continue
                print(f"  {'  ' * depth_i}<- {_describe(r)}  (of {type(target).__name__})")
                nxt.append(r)
                seen.add(id(r))
        level = nxt[:6]
        if not level:
            break


def _direct(args: Any, settings: Any, sinks: list[Any], source: Path, readings: dict[int, Any]) -> None:
    """Feed the sinks as the receiver delivers its spool: one request's spans at a time, a flush
    after every 64; at the readings, wait until every sink says the backend holds everything."""
    lines = 0
    for n in range(1, args.evals + 1):
        for line in fresh_copy(source, n):
            records = records_from_line(line)
            for sink in sinks:
                sink.consume(records)
            lines += 1
            if lines % 64 == 0:
                for sink in sinks:
                    sink.flush(settings.core.flush_timeout_s)
        if n not in (args.first, args.evals) and not args.wait_each:
            continue
        deadline = time.monotonic() + 600
        while not all(s.flush(settings.core.flush_timeout_s) for s in sinks):
            if time.monotonic() > deadline:
                raise SystemExit(f"eval {n}: not confirmed in 600 s")
            time.sleep(0.5)
        _note(n, args, readings)


def _note(n: int, args: Any, readings: dict[int, Any]) -> None:
    if n in (args.first, args.evals):
        readings[n] = _reading(args.trim)
    rss = psutil.Process().memory_info().rss
    print(f"eval {n}: rss {rss / 2**20:.1f} MB, heap {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MB")


def _through_receiver(
    args: Any, server: WeaveServer, project: str, settings: Any, sinks: list[Any], source: Path,
    tmp: Path, readings: dict[int, Any],
) -> int:  # fmt: skip
    """POST each eval's requests to a receiver in this process (HTTP and gRPC listening, as
    ``serve``), as tests/test_receiver_soak.py does; read at the 5th and last eval once the Weave
    server holds every evaluation."""
    from otel_bridge.otlp_json import json_to_request
    from otel_bridge.receiver.core import ReceiverOptions
    from otel_bridge.receiver.server import ReceiverServer
    from tests.test_receiver_soak import _post, _wait_complete

    receiver = ReceiverServer(
        sinks, tmp / "spool", ReceiverOptions.from_settings(settings), "127.0.0.1", 0, 0
    ).start()
    try:
        for n in range(1, args.evals + 1):
            for line in fresh_copy(source, n):
                _post(receiver.http_port, json_to_request(line).SerializeToString())
            if n in (args.first, args.evals) or args.wait_each:
                if any(s.name == "weave" for s in sinks):
                    _wait_complete(server, project, n * 2, timeout=600)
                time.sleep(2)
                _note(n, args, readings)
    finally:
        receiver.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--first", type=int, default=5)
    parser.add_argument("--sinks", default="weave,wandb")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--trim", action="store_true")
    parser.add_argument(
        "--receiver", action="store_true", help="through an in-process receiver over OTLP/HTTP, as serve"
    )
    parser.add_argument("--wait-each", action="store_true", help="confirm every eval before the next")
    parser.add_argument("--no-trace", action="store_true", help="RSS only (tracemalloc inflates it)")
    parser.add_argument("--why", default="", help="comma-separated type names: print what holds one")
    args = parser.parse_args()
    if not args.no_trace:
        tracemalloc.start(args.frames)
    source = demo_span_file()
    tmp = Path(tempfile.mkdtemp(prefix="soak-memory-"))
    with WeaveServer() as server:
        project = f"soak/memory-{int(time.time())}"
        env = sink_env(server, project, tmp / "wandb")
        os.environ.update(env)
        settings = load_settings()
        sinks = [s for n in args.sinks.split(",") if (s := make_record_sink(n, settings)) is not None]
        readings: dict[int, dict[str, Any]] = {}
        started = time.monotonic()
        if args.receiver:
            code = _through_receiver(args, server, project, settings, sinks, source, tmp, readings)
            if code:
                return code
        else:
            _direct(args, settings, sinks, source, readings)
        elapsed = time.monotonic() - started
        if not args.receiver:
            for sink in sinks:
                sink.close()
    a, b = readings[args.first], readings[args.evals]
    print(f"\n{args.evals} evals in {elapsed:.0f} s; sinks {args.sinks}")
    per_eval = 2**10 * (args.evals - args.first)
    for key in ("rss_untrimmed", "rss", "heap"):
        growth = (b[key] - a[key]) / per_eval
        print(f"{key}: {a[key] / 2**20:.1f} → {b[key] / 2**20:.1f} MB ({growth:.1f} KB/eval)")
    print(f"heap peak: {b['heap_peak'] / 2**20:.1f} MB")
    for key in ("fds", "threads"):
        print(f"{key}: {a[key]} → {b[key]}")
    grown = sorted(((b["counts"][t] - a["counts"][t], t) for t in b["counts"]), reverse=True)[:20]
    print("\nobjects grown (type: count after first → after last):")
    for d, t in grown:
        if d > 0:
            print(f"  {t}: {a['counts'][t]} → {b['counts'][t]} (+{d})")
    for name in filter(None, args.why.split(",")):
        _why(name)
    if b["snapshot"] is None:
        return 0
    print(f"\ntop {args.top} allocation sites grown (tracemalloc, {args.frames} frames):")
    stats = b["snapshot"].compare_to(a["snapshot"], "traceback")
    for stat in stats[: args.top]:
        print(f"+{stat.size_diff / 1024:.1f} KB ({stat.count_diff:+d} blocks)")
        for line in stat.traceback.format()[-2 * args.frames :]:
            print("   ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
