"""Runs the recorder off Inspect's event loop.

Hook calls only enqueue; one thread turns them into spans in the order they were made. The
queue is bounded: when it is full the hook waits for room (back-pressure on the eval, bounded);
a recorder stuck for longer than that loses the call and says so once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from otel_bridge import notify

Job = Callable[[], None]


class RecorderWorker:
    def __init__(
        self, guard: Callable[[str, Job], None], max_queue: int = 50_000, put_timeout_s: float = 5.0
    ) -> None:
        self._put_timeout_s = put_timeout_s
        self._guard = guard
        self._queue: queue.Queue[tuple[str, Job] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="otel-bridge-recorder", daemon=True)
        self._thread.start()

    def submit(self, where: str, job: Job) -> None:
        try:
            self._queue.put((where, job), timeout=self._put_timeout_s)
        except queue.Full:
            notify.say(f"the span recorder fell behind; {where} was not recorded.", key="recorder-full")

    def _execute(self, where: str, job: Job) -> None:
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
        """Wait until every submitted call has run (at most ``timeout_s``)."""
        done = threading.Event()
        self.submit("drain", done.set)
        return done.wait(timeout_s)

    def stop(self, timeout_s: float) -> None:
        self.drain(timeout_s)
        self._queue.put(None)
        self._thread.join(timeout_s)
