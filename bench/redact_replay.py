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

``--baseline REV`` also replays the same recording through ``otel_bridge/redact.py`` as it was at
git revision REV (loaded beside the current package, whose other modules it imports), alternating
with the current one rep by rep, and first checks that both return identical output for every call.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
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


def _baseline(rev: str, tmp: str) -> Any:
    """``otel_bridge/redact.py`` at git revision ``rev``, as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:otel_bridge/redact.py"], capture_output=True, check=True
    ).stdout
    path = Path(tmp) / "redact_baseline.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("redact_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replay(
    calls: list[tuple[str, Any]], redact: Any = None, outputs: list[Any] | None = None
) -> tuple[Counter[str], Counter[str]]:
    from otel_bridge.config import environment, environment_probe

    if redact is None:
        from otel_bridge import redact

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
            out: Any = scrubber.span(attrs, evs, status)
            spent[name] += clock() - t
            out = (attrs, [e.attributes for e in evs], out.status_code, out.description)
        elif name == "refresh":
            t = clock()
            out = scrubber.refresh()
            spent[name] += clock() - t
        else:
            fn = getattr(redactor, name)
            t = clock()
            out = fn(*args)
            spent[name] += clock() - t
        count[name] += 1
        if outputs is not None:
            outputs.append(out)
    return spent, count


def _table(label: str, runs: list[tuple[Counter[str], Counter[str]]], calls: int) -> None:
    spans = runs[0][1]["span"]
    totals = [sum(spent.values()) / spans / 1000 for spent, _ in runs]
    print(f"\n{label}\n| entry point | calls | best µs/span | median µs/span |")
    print("|---|---|---|---|")
    for name in ("span", "text", "structure", "vouch", "refresh"):
        per = [spent[name] / spans / 1000 for spent, _ in runs]
        print(f"| {name} | {runs[0][1][name]} | {min(per):.2f} | {statistics.median(per):.2f} |")
    print(f"| all | {calls} | {min(totals):.2f} | {statistics.median(totals):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--baseline", metavar="REV", help="also replay redact.py as at this git revision")
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
        baseline = _baseline(args.baseline, tmp) if args.baseline else None
    if baseline is not None:
        mine: list[Any] = []
        theirs: list[Any] = []
        _replay(calls, outputs=mine)
        _replay(calls, baseline, outputs=theirs)
        same = sum(a == b for a, b in zip(mine, theirs, strict=True))
        print(f"identical output on {same} of {len(mine)} calls (current vs {args.baseline})")
    gc.disable()
    runs, base_runs = [], []
    for _ in range(args.reps):
        if baseline is not None:
            base_runs.append(_replay(calls, baseline))
        runs.append(_replay(calls))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    spans = runs[0][1]["span"]
    print(f"\n{args.samples} samples, {spans} spans, {len(calls)} calls, {args.reps} replays; load {load}")
    if base_runs:
        _table(f"redact.py at {args.baseline}", base_runs, len(calls))
    _table("redact.py now", runs, len(calls))


if __name__ == "__main__":
    main()
