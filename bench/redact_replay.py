"""The redactor's own cost per span, without the eval around it: record, then replay.

    .venv/bin/python bench/redact_replay.py --samples 300 --reps 7

A child process runs ``make bench``'s eval (the arithmetic task on the zero-latency offline
model, file exporter) with every outermost call into ``otel_bridge.redact`` recorded in order
(the edge pass on each span with its attributes and events, the content capture's ``text`` /
``structure`` / ``vouch``, the environment ``refresh``). This process then replays the calls on
a fresh ``Redactor`` and ``Scrubber`` ``--reps`` times with the garbage collector off and prints
the time per span by entry point (best and median rep). In ``make bench`` the same work reads
higher (cold caches, garbage-collector passes landing in it, a shared VM): this is the figure to
compare code changes with; ``make bench`` says what it costs inside a running eval.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import copy, pickle, sys
sys.path.insert(0, {examples!r})
from otel_bridge import redact
calls, depth = [], [0]

def record(cls, name):
    fn = getattr(cls, name)

    def call(self, *args, **kwargs):
        if depth[0] == 0:
            if name == "span":
                attrs, events, status = args
                evs = [dict(e.attributes) if isinstance(e.attributes, dict) else None for e in events]
                calls.append((name, (dict(attrs), evs, status)))
            else:
                calls.append((name, copy.deepcopy(args)))
        depth[0] += 1
        try:
            return fn(self, *args, **kwargs)
        finally:
            depth[0] -= 1
    setattr(cls, name, call)

for n in ("text", "structure", "vouch", "refresh"):
    record(redact.Redactor, n)
record(redact.Scrubber, "span")
from inspect_ai import eval
from bridge_demo import arithmetic
(log,) = eval(arithmetic(samples=int(sys.argv[1])), model="offline/careful", display="none", max_samples=50)
assert log.status == "success", log.error
with open(sys.argv[2], "wb") as fh:
    pickle.dump(calls, fh)
"""


class _Event:
    def __init__(self, attributes: dict[str, Any] | None) -> None:
        self.attributes = attributes


def _replay(calls: list[tuple[str, Any]]) -> tuple[Counter[str], Counter[str]]:
    from otel_bridge import redact
    from otel_bridge.config import environment, environment_probe

    redactor = redact.Redactor(environment, probe=environment_probe)
    scrubber = redact.Scrubber(redactor, True)
    spent: Counter[str] = Counter()
    count: Counter[str] = Counter()
    clock = time.perf_counter_ns
    for name, args in calls:
        if name == "span":
            attrs, events, status = args
            attrs = dict(attrs)
            evs = [_Event(dict(e) if e is not None else None) for e in events]
            t = clock()
            scrubber.span(attrs, evs, status)
        elif name == "refresh":
            t = clock()
            scrubber.refresh()
        else:
            fn = getattr(redactor, name)
            t = clock()
            fn(*args)
        spent[name] += clock() - t
        count[name] += 1
    return spent, count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL_", "OTEL_"))}
        env.update(
            {
                "INSPECT_OTEL_ENABLED": "1",
                "INSPECT_OTEL_EXPORTERS": "file",
                "INSPECT_OTEL_DIR": str(Path(tmp) / "spans"),
                "INSPECT_LOG_DIR": str(Path(tmp) / "logs"),
            }
        )
        out = Path(tmp) / "calls.pkl"
        script = CHILD.format(examples=str(ROOT / "examples"))
        proc = subprocess.run(
            [sys.executable, "-c", script, str(args.samples), str(out)], env=env, cwd=tmp, capture_output=True
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr.decode()[-3000:])
        with open(out, "rb") as fh:
            calls = pickle.load(fh)
    gc.disable()
    runs = [_replay(calls) for _ in range(args.reps)]
    spans = runs[0][1]["span"]
    totals = [sum(spent.values()) / spans / 1000 for spent, _ in runs]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{args.samples} samples, {spans} spans, {len(calls)} calls, {args.reps} replays; load {load}")
    print("| entry point | calls | best µs/span | median µs/span |")
    print("|---|---|---|---|")
    for name in ("span", "text", "structure", "vouch", "refresh"):
        per = [spent[name] / spans / 1000 for spent, _ in runs]
        print(f"| {name} | {runs[0][1][name]} | {min(per):.2f} | {statistics.median(per):.2f} |")
    print(f"| all | {len(calls)} | {min(totals):.2f} | {statistics.median(totals):.2f} |")


if __name__ == "__main__":
    main()
