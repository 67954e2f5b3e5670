"""The RecordSink contract (otel_bridge/sinks/base.py), held against every REAL sink.

Weave against the local trace server, W&B Models offline (read back from its ``.wandb`` log),
the receiver's span-file sink. The same recorded eval is fed once, in order, into one destination
and twice, shuffled into random batches, into another: both must end up identical, and ``flush``
must say True only at the end. Faults: an unreachable Weave server and an unwritable span-file
directory must raise ``DeliveryError`` from ``consume`` and keep ``flush`` False — never a
silent success.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from otel_bridge.config import load_settings
from otel_bridge.records import SpanRecord, read_span_file
from otel_bridge.sinks.base import DeliveryError, RecordSink
from otel_bridge.sinks.file import FileRecordSink
from tests.support.collector import free_port
from tests.support.wandb_log import wait_for_run
from tests.test_delivery import recorded  # noqa: F401  (the module fixture: a real eval's span file)
from tests.test_wandb_sink import _comparable
from tests.test_weave_sink import Run, canonical, unique
from tests.weave_server.harness import WeaveServer

SINKS = ("weave", "wandb", "file")


def _records(run: Run) -> list[SpanRecord]:
    return [r for path in run.span_files for r in read_span_file(path)]


def _shuffled_batches(records: list[SpanRecord], seed: int) -> list[list[SpanRecord]]:
    rng = random.Random(seed)
    shuffled = records[:]
    rng.shuffle(shuffled)
    out, i = [], 0
    while i < len(shuffled):
        n = rng.randint(1, 40)
        out.append(shuffled[i : i + n])
        i += n
    return out


class Destination:
    """One real destination of a sink kind, and how to read back what it holds."""

    def __init__(
        self, kind: str, root: Path, weave_server: WeaveServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.kind, self.root, self.server = kind, root, weave_server
        self.offline_dirs: list[str] = []
        self.project = unique(f"contract-{kind}")
        entity, name = self.project.split("/")
        env = weave_server.env(entity, name)
        env.update({"WANDB_MODE": "offline", "WANDB_DIR": str(root / "wandb"), "WANDB_SILENT": "true"})
        (root / "wandb").mkdir(parents=True, exist_ok=True)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings().with_exporters((kind,))
        self.settings = replace(settings, weave=replace(settings.weave, project=self.project))

    def sink(self) -> RecordSink:
        if self.kind == "weave":
            from otel_bridge.sinks.weave import WeaveSink

            return WeaveSink(self.settings)
        if self.kind == "wandb":
            from otel_bridge.sinks.wandb import WandbSink

            return WandbSink(self.settings)
        return FileRecordSink(self.root / "files", prefix="contract-")

    def holds(self) -> Any:
        if self.kind == "weave":
            return canonical(self.server, self.project)
        if self.kind == "wandb":
            # the directory this sink wrote (wandb's service keeps its first WANDB_DIR per process)
            [run_dir] = self.offline_dirs
            view = _comparable(wait_for_run(run_dir))  # finish() returns before wandb-core is done
            # history charts running values at steps taken in arrival order (by design, W&B steps
            # only grow): the final state must not depend on the order, the number of rows neither
            view["history"] = len(view["history"])
            view["metrics"] = sorted(view["metrics"])
            run_id, _project, *rest = view["identity"]  # each destination has its own project
            view["identity"] = (run_id, *rest)
            return view
        keys = Counter(
            (r.trace_id, r.span_id)
            for path in (self.root / "files").glob("*.jsonl")
            for r in read_span_file(path)
        )
        assert max(keys.values()) == 1, "a span written twice"
        return sorted(keys)


@pytest.mark.parametrize("kind", SINKS)
def test_any_order_any_batches_twice_gives_what_in_order_once_gives(
    kind: str,
    recorded: Run,  # noqa: F811
    weave_server: WeaveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = _records(recorded)
    results = []
    for label, feeds in (
        ("once", [records]),
        ("twice", _shuffled_batches(records, 1) + _shuffled_batches(records, 2)),
    ):
        with monkeypatch.context() as m:
            dest = Destination(kind, tmp_path / label, weave_server, m)
            sink = dest.sink()
            for batch in feeds:
                sink.consume(batch)
            sink.finalize_incomplete("end of the recording")
            assert sink.flush(60), f"{kind}: flush did not confirm ({sink.problem()})"
            assert sink.problem() is None, sink.problem()
            sink.close()
            dest.offline_dirs = list(getattr(sink, "offline_dirs", []))
            results.append(dest.holds())
    assert results[0] == results[1]


def test_weave_unreachable_is_an_error_not_a_silent_success(
    recorded: Run,  # noqa: F811
    weave_server: WeaveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = Destination("weave", tmp_path, weave_server, monkeypatch)
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("WF_TRACE_SERVER_URL", dead)
    monkeypatch.setenv("WANDB_BASE_URL", dead)
    settings = load_settings().with_exporters(("weave",))
    from otel_bridge.sinks.weave import WeaveSink

    sink = WeaveSink(
        replace(settings, weave=replace(settings.weave, project=dest.project)), connect_timeout_s=10
    )
    with pytest.raises(DeliveryError):
        sink.consume(_records(recorded))
    with pytest.raises(DeliveryError):  # a retry is refused as honestly (within the backoff)
        sink.consume([])
    assert sink.flush(2) is False
    assert "not yet confirmed" in (sink.problem() or "")


def test_unwritable_span_file_directory_is_an_error(recorded: Run, tmp_path: Path) -> None:  # noqa: F811
    blocked = tmp_path / "files"
    blocked.write_text("a file where the directory should be")
    sink = FileRecordSink(blocked, prefix="contract-")
    with pytest.raises(DeliveryError):
        sink.consume(_records(recorded))
    assert "cannot write span files" in (sink.problem() or "")
