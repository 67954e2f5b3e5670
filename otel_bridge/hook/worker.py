"""Runs the recorder off Inspect's event loop.

Hook calls only enqueue; one thread turns them into spans in the order they were made. The
queue is bounded: when it is full the call runs inline (slower, never lost, never unbounded).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Job = Callable[[], None]


class RecorderWorker:
    def __init__(self, guard: Callable[[str, Job], None], max_queue: int = 50_000) -> None:
        self._guard = guard
        self._queue: queue.Queue[tuple[str, Job] | None] = queue.Queue(max_queue)
        self._lock = threading.Lock()  # one job at a time, whichever thread runs it
        self._thread = threading.Thread(target=self._run, name="otel-bridge-recorder", daemon=True)
        self._thread.start()

    def submit(self, where: str, job: Job) -> None:
        try:
            self._queue.put_nowait((where, job))
        except queue.Full:
            self.drain(timeout_s=0.0)  # keep order: run what is queued first, then this
            self._execute(where, job)

    def _execute(self, where: str, job: Job) -> None:
        with self._lock:
            self._guard(where, job)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._execute(*item)
            finally:
                self._queue.task_done()

    def drain(self, timeout_s: float) -> bool:
        """Wait until every submitted call has run (at most ``timeout_s``; 0 runs them inline)."""
        if timeout_s <= 0:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return True
                try:
                    if item is not None:
                        self._execute(*item)
                finally:
                    self._queue.task_done()
        done = threading.Event()
        self.submit("drain", done.set)
        return done.wait(timeout_s)

    def stop(self, timeout_s: float) -> None:
        self.drain(timeout_s)
        self._queue.put(None)
        self._thread.join(timeout_s)
