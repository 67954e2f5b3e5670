"""Make a large span file from a real recorded one: its sample traces cloned, counts scaled.

    .venv/bin/python bench/scale_spans.py SOURCE.jsonl DEST.jsonl --samples 100000

Each clone of a sample trace gets fresh trace and span ids (parent links remapped), its own
sample id (``<id>-c<k>``) and uuid, and times shifted by k microseconds, so every consumer sees
distinct samples in the order a live eval would end them. The task spans keep Inspect's metrics
(so the summaries of the large file equal the small one's); their sample counts are scaled to
what the large file holds. Lines are written in batches of 512 spans, as the file exporter does.
Used by ``bench/scale.py`` and by ``tests/test_scale.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPAN_SAMPLE = "inspect.sample"
SPAN_TASK = "inspect.task"
SPAN_RUN = "inspect.run"
EVAL_ID = "inspect.eval_id"
SAMPLE_ID = "inspect.sample.id"
SAMPLE_UUID = "inspect.sample.uuid"
SAMPLE_WILL_RETRY = "inspect.sample.will_retry"
SAMPLE_STATUS = "inspect.sample.status"
SCALED_COUNTS = (
    "inspect.samples.total",
    "inspect.samples.completed",
    "inspect.samples.traced",
    "inspect.dataset.samples",
)
BATCH = 512


def _attr(span: dict[str, Any], key: str) -> Any:
    for kv in span.get("attributes", ()):
        if kv["key"] == key:
            value = kv.get("value", {})
            return next(iter(value.values()), None)
    return None


def _set_attr(span: dict[str, Any], key: str, value: Any) -> None:
    encoded = {"stringValue": value} if isinstance(value, str) else {"intValue": str(value)}
    for kv in span.get("attributes", ()):
        if kv["key"] == key:
            kv["value"] = encoded
            return


def _hex(seed: str, n: int) -> str:
    return hashlib.blake2b(seed.encode(), digest_size=n // 2).hexdigest()


class Source:
    """A recorded span file, split into sample traces and everything else."""

    def __init__(self, path: Path) -> None:
        self.traces: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # trace id → (resource, span)
        self.roots: dict[str, dict[str, Any]] = {}  # trace id → its final sample root
        self.others: list[tuple[int, dict[str, Any]]] = []
        self.resources: list[dict[str, Any]] = []
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            for rs in json.loads(line)["resourceSpans"]:
                self.resources.append(rs.get("resource", {}))
                index = len(self.resources) - 1
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        self.traces.setdefault(span["traceId"], []).append((index, span))
                        if span["name"] == SPAN_SAMPLE:
                            self.roots[span["traceId"]] = span
        sample_traces = {
            t
            for t, root in self.roots.items()
            if not _attr(root, SAMPLE_WILL_RETRY) and _attr(root, SAMPLE_STATUS) != "retried"
        }
        for trace_id in list(self.traces):
            if trace_id not in sample_traces:
                self.others.extend(self.traces.pop(trace_id))
        self.order = sorted(self.traces, key=lambda t: int(self.roots[t]["endTimeUnixNano"]))


def _clone(
    spans: list[tuple[int, dict[str, Any]]], k: int, trace_id: str
) -> list[tuple[int, dict[str, Any]]]:
    new_trace = _hex(f"{trace_id}/{k}", 32)
    ids = {s["spanId"]: _hex(f"{trace_id}/{s['spanId']}/{k}", 16) for _, s in spans}
    out = []
    for resource, span in spans:
        doc = json.loads(json.dumps(span))
        doc["traceId"] = new_trace
        doc["spanId"] = ids[span["spanId"]]
        if span.get("parentSpanId"):
            doc["parentSpanId"] = ids.get(span["parentSpanId"], span["parentSpanId"])
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            doc[key] = str(int(span[key]) + k * 1000)
        for event in doc.get("events", ()):
            event["timeUnixNano"] = str(int(event["timeUnixNano"]) + k * 1000)
        if span["name"] == SPAN_SAMPLE:
            _set_attr(doc, SAMPLE_ID, f"{_attr(span, SAMPLE_ID)}-c{k}")
            _set_attr(doc, SAMPLE_UUID, _hex(f"{_attr(span, SAMPLE_UUID)}/{k}", 22))
        out.append((resource, doc))
    return out


def _lines(resources: list[dict[str, Any]], spans: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[str]:
    batch: list[tuple[int, dict[str, Any]]] = []

    def encode() -> str:
        groups: dict[int, list[dict[str, Any]]] = {}
        for resource, span in batch:
            groups.setdefault(resource, []).append(span)
        doc = {
            "resourceSpans": [
                {
                    "resource": resources[r],
                    "scopeSpans": [{"scope": {"name": "inspect_otel_bridge"}, "spans": s}],
                }
                for r, s in groups.items()
            ]
        }
        return json.dumps(doc, separators=(",", ":")) + "\n"

    for item in spans:
        batch.append(item)
        if len(batch) >= BATCH:
            yield encode()
            batch = []
    if batch:
        yield encode()


def scale(source_path: Path, dest: Path, samples: int) -> dict[str, int]:
    """Write ``dest``: ``samples`` final sample traces cloned from ``source_path``; returns them per eval."""
    src = Source(source_path)
    if not src.order:
        raise ValueError(f"{source_path} holds no final sample traces")
    per_eval: dict[str, int] = {}
    plan = [(src.order[i % len(src.order)], i // len(src.order)) for i in range(samples)]
    for trace_id, _ in plan:
        eval_id = str(_attr(src.roots[trace_id], EVAL_ID))
        per_eval[eval_id] = per_eval.get(eval_id, 0) + 1
    shift = (samples // len(src.order) + 1) * 1000
    ends = [(r, s) for r, s in src.others if s["name"] in (SPAN_TASK, SPAN_RUN)]
    starts = [(r, s) for r, s in src.others if s["name"] not in (SPAN_TASK, SPAN_RUN)]
    source_counts: dict[str, int] = {}
    for root in (src.roots[t] for t in src.order):
        eval_id = str(_attr(root, EVAL_ID))
        source_counts[eval_id] = source_counts.get(eval_id, 0) + 1
    for _, span in ends:
        span["endTimeUnixNano"] = str(int(span["endTimeUnixNano"]) + shift)
        eval_id = _attr(span, EVAL_ID)
        if span["name"] == SPAN_TASK and eval_id in per_eval:
            for key in SCALED_COUNTS:
                value = _attr(span, key)
                if isinstance(value, str) and value.isdigit():
                    # the source's count of this eval, scaled (errors are kept: none are cloned)
                    ratio = per_eval[eval_id] / source_counts[eval_id]
                    _set_attr(span, key, round(int(value) * ratio))

    def spans() -> Iterator[tuple[int, dict[str, Any]]]:
        yield from starts
        for trace_id, k in plan:
            yield from _clone(src.traces[trace_id], k, trace_id)
        yield from ends

    with open(dest, "w") as fh:
        for line in _lines(src.resources, spans()):
            fh.write(line)
    return per_eval


_ID_ATTRIBUTES = ("inspect.run_id", "inspect.eval_id", "inspect.task_id", "inspect.sample.uuid")


def fresh_copy(source_path: Path, copy: int) -> list[bytes]:
    """The lines of ``source_path`` as another run of the same eval: every trace and span id,
    run, eval, task and sample uuid replaced (deterministically by ``copy``), nothing else."""
    text = source_path.read_text()
    ids: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    ids.update(span[k] for k in ("traceId", "spanId", "parentSpanId") if span.get(k))
                    ids.update(ln["traceId"] for ln in span.get("links", ()))
                    ids.update(ln["spanId"] for ln in span.get("links", ()))
                    ids.update(str(v) for k in _ID_ATTRIBUTES if (v := _attr(span, k)))
    new = {old: _hex(f"{old}/{copy}", len(old) + len(old) % 2)[: len(old)] for old in ids}
    pattern = re.compile("|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)))
    return [
        pattern.sub(lambda m: new[m.group(0)], line).encode() for line in text.splitlines() if line.strip()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--samples", type=int, required=True)
    args = parser.parse_args()
    counts = scale(args.source, args.dest, args.samples)
    print(f"{args.dest}: {sum(counts.values())} samples ({args.dest.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
