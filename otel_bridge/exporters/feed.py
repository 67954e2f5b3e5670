"""The queue between the eval's loop and one exporter thread, bounded in bytes.

``put`` is what the eval's loop pays per span: a length check and a deque append, no lock, no
size computation. The bound is in bytes all the same: the thread measures the encoded size of
every batch it delivers and keeps the queue's span limit at ``max_bytes`` divided by the recent
bytes per span (``FIRST_SPAN_BYTES`` until the first batch). When the queue is full, ``put``
waits up to ``block_s`` for room (the exporter is behind: a short pause of the eval beats a
lost span); only then is the span dropped, counted, and said once, and until the thread has
caught up, later spans are dropped without a second wait (a stuck exporter never slows every
span). Control items (flushes, the
stop) are never refused and keep their place in the order.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan

#: The bytes a span is assumed to take until the first batch is measured.
FIRST_SPAN_BYTES = 2048
#: The fewest spans a queue holds, however large they are.
MIN_SPANS = 256

#: A control item that ends the thread (after everything queued before it).
STOP = object()


class SpanFeed:
    """A byte-bounded queue drained by one thread into ``deliver``.

    Args:
        name: the thread's name.
        deliver: writes a batch of spans, returns the bytes it wrote (for the size estimate).
        control: handles a control item in queue order (after the spans queued before it),
            ``STOP`` included (then the thread ends); a ``FlushMark`` is set by the feed itself.
        max_bytes: the most the queued spans may take, estimated as above.
        interval_s: how long the thread lets spans gather before it writes them.
        batch: the most spans per ``deliver`` call.
        block_s: how long a ``put`` on a full queue waits for room before dropping.
        on_drop: called once, at the first drop.
    """

    def __init__(
        self,
        name: str,
        deliver: Callable[[list[ReadableSpan]], int],
        control: Callable[[object], None],
        max_bytes: int,
        interval_s: float,
        batch: int = 512,
        block_s: float = 1.0,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self.batch = batch
        self.block_s = block_s
        self.dropped = 0  # spans refused after waiting block_s
        self.waited = 0  # puts that had to wait for room
        self.delivered = 0  # spans handed to deliver
        self.limit = max(MIN_SPANS, max_bytes // FIRST_SPAN_BYTES)
        self._deliver = deliver
        self._control = control
        self._on_drop = on_drop
        self._items: deque[object] = deque()
        self._wake = threading.Event()
        self._span_bytes = float(FIRST_SPAN_BYTES)
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the eval's side
    def put(self, span: ReadableSpan) -> None:
        items = self._items
        if len(items) < self.limit:
            items.append(span)
        else:
            self._put_when_room(span)

    def _put_when_room(self, span: ReadableSpan) -> None:
        if self._dropping:  # already waited in vain: no second pause until the thread catches up
            self.dropped += 1
            return
        self.waited += 1
        self._wake.set()
        deadline = time.monotonic() + self.block_s
        while time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.002)
            if len(self._items) < self.limit:
                self._items.append(span)
                return
        self.dropped += 1
        self._dropping = True
        if self.dropped == 1 and self._on_drop is not None:
            with contextlib.suppress(Exception):
                self._on_drop()

    def send(self, item: object) -> None:
        """Queue a control item (never refused) and wake the thread for it."""
        self._items.append(item)
        self._wake.set()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(max(0.0, timeout_s))
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        items = self._items
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._dropping = False
            spans: list[ReadableSpan] = []
            while items:
                item = items.popleft()
                if isinstance(item, ReadableSpan):
                    spans.append(item)
                    if len(spans) >= self.batch:
                        self._write(spans)
                        spans = []
                    continue
                if spans:
                    self._write(spans)
                    spans = []
                if isinstance(item, FlushMark):
                    item.done.set()
                    continue
                with contextlib.suppress(Exception):
                    self._control(item)
                if item is STOP:
                    return
            if spans:
                self._write(spans)

    def _write(self, spans: list[ReadableSpan]) -> None:
        try:
            written = self._deliver(spans)
        except Exception:  # the exporter counts and reports its own failures
            written = 0
        self.delivered += len(spans)
        if written > 0:
            self._span_bytes = 0.8 * self._span_bytes + 0.2 * (written / len(spans))
            self.limit = max(MIN_SPANS, int(self.max_bytes / self._span_bytes))


class FlushMark:
    """A control item: set once everything queued before it was delivered."""

    def __init__(self) -> None:
        self.done = threading.Event()
