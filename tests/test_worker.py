"""The recorder thread: call order kept, bounded queue, failures contained."""

from __future__ import annotations

import threading

from otel_bridge.hook.guard import guard
from otel_bridge.hook.worker import RecorderWorker


def test_calls_run_in_order_off_the_caller_thread() -> None:
    worker = RecorderWorker(guard)
    seen: list[tuple[int, str]] = []
    for i in range(2000):
        worker.submit("job", lambda i=i: seen.append((i, threading.current_thread().name)))
    assert worker.drain(10)
    assert [i for i, _ in seen] == list(range(2000))
    assert {name for _, name in seen} == {"otel-bridge-recorder"}
    worker.stop(5)


def test_a_full_queue_waits_for_room_without_reordering() -> None:
    worker = RecorderWorker(guard, max_queue=3)
    release = threading.Event()
    seen: list[int] = []
    worker.submit("slow", lambda: (release.wait(5), seen.append(0)))
    threading.Timer(0.3, release.set).start()
    for i in range(1, 20):
        worker.submit("job", lambda i=i: seen.append(i))
    assert worker.drain(10)
    assert seen == list(range(20))
    worker.stop(5)


def test_a_failing_call_is_contained_and_the_next_ones_run(capsys: object) -> None:
    worker = RecorderWorker(guard)
    seen: list[int] = []
    worker.submit("boom", lambda: 1 / 0)  # type: ignore[func-returns-value]
    worker.submit("next", lambda: seen.append(1))
    assert worker.drain(5)
    assert seen == [1]
    worker.stop(5)


def test_drain_is_bounded() -> None:
    worker = RecorderWorker(guard)
    release = threading.Event()
    worker.submit("stuck", lambda: release.wait(5))
    assert worker.drain(0.2) is False
    release.set()
    assert worker.drain(5)
    worker.stop(5)
