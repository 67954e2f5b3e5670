"""Where the receiver's accept path spends its time: cProfile of ``Receiver._accept`` in-process.

    .venv/bin/python bench/profile_accept.py [--samples 300] [--top 25]

Records a real eval's span file (as bench/scale.py does), clones it to ``--samples`` samples,
turns each line into the protobuf body an OTLP exporter would POST, and feeds the bodies one at
a time to a Receiver over a real spool (fsync included; no HTTP, no worker running, one thread,
so there is no group commit either). Prints spans/s under the profiler and the top functions,
then the worker side's decode rate: a spool entry (protobuf) → records, against an OTLP/JSON
span-file line → records (what the worker read before), and the file sink's consume rate.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import record  # noqa: E402
from bench.scale_receiver import request_bodies  # noqa: E402
from bench.scale_spans import scale  # noqa: E402
from otel_bridge.receiver.core import Receiver  # noqa: E402
from otel_bridge.receiver.requests import ReceiverOptions, decode_protobuf  # noqa: E402
from otel_bridge.receiver.spool import Spool, encode_entry  # noqa: E402
from otel_bridge.records import records_from_line  # noqa: E402
from otel_bridge.sinks.file import FileRecordSink  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-accept-"))
    scale(record(root / "source"), root / "spans.jsonl", args.samples)
    bodies, spans = request_bodies(root / "spans.jsonl")
    spool = Spool(root / "spool", 10**10, 200_000)
    receiver = Receiver([FileRecordSink(root / "out", "bench-")], spool, ReceiverOptions())
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for body in bodies:
        receiver._accept(decode_protobuf(body), body)
    profile.disable()
    elapsed = time.perf_counter() - started
    spool.close()
    print(f"{spans} spans in {len(bodies)} requests: {spans / elapsed:,.0f} spans/s accepted (profiled)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    lines = [ln for ln in (root / "spans.jsonl").read_bytes().splitlines() if ln.strip()]
    entries = [encode_entry(body) for body in bodies]
    started = time.perf_counter()
    decoded = [Receiver._decode(entry) for entry in entries]
    from_entries = time.perf_counter() - started
    started = time.perf_counter()
    for line in lines:
        records_from_line(line)
    from_lines = time.perf_counter() - started
    sink = FileRecordSink(root / "translated", "bench-")
    started = time.perf_counter()
    for records in decoded:
        sink.consume(records)
    sink.flush(60)
    consumed = time.perf_counter() - started
    sink.close()
    print(
        f"worker side: spool entry → records {spans / from_entries:,.0f} spans/s; OTLP/JSON line → "
        f"records {spans / from_lines:,.0f} spans/s; file sink consume {spans / consumed:,.0f} spans/s"
    )


if __name__ == "__main__":
    main()
