"""The receiver's file sink's encoding: records → a span-file line, via protobuf vs direct.

    .venv/bin/python bench/encode_records.py [--samples 1000] [--reps 3]

Records a real eval's span file (as bench/scale.py does), scales it to ``--samples`` samples,
decodes each line into records, then times, alternating, per rep: the old path
``request_to_json(to_request(group))`` (protobuf + ``json_format``) and
``records_to_json(group)`` (what ``sinks/file.py`` writes now). Process time, spans per second.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import record  # noqa: E402
from bench.scale_spans import scale  # noqa: E402
from otel_bridge.otlp_json import json_to_request, request_to_json  # noqa: E402
from otel_bridge.records import from_request, records_to_json, to_request  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    try:
        scale(record(work / "source"), work / "spans.jsonl", args.samples)
        with open(work / "spans.jsonl", "rb") as fh:
            groups = [from_request(json_to_request(line)) for line in fh if line.strip()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = sum(map(len, groups))
    print(f"{n:,} spans in {len(groups)} lines")
    for _ in range(args.reps):
        t = time.process_time()
        for g in groups:
            request_to_json(to_request(g))
        old = time.process_time() - t
        t = time.process_time()
        for g in groups:
            records_to_json(g)
        new = time.process_time() - t
        print(
            f"protobuf + json_format {n / old:,.0f} spans/s ({old * 1e6 / n:.1f} µs a span); "
            f"records_to_json {n / new:,.0f} spans/s ({new * 1e6 / n:.1f} µs); {old / new:.1f}×"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
