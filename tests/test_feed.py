"""The queue between the eval's loop and an exporter thread: full means wait briefly, then count.

The exporter here is a stand-in whose write the test holds or slows on cue: a real disk or pipe
cannot be made to stall for an exact time. The feed itself (``exporters.feed.SpanFeed``) is the
real one every span file and worker uses.
"""

from __future__ import annotations

import threading
import time

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from otel_bridge.exporters.feed import FIRST_SPAN_BYTES, MIN_SPANS, STOP, FlushMark, SpanFeed


def _span(i: int) -> ReadableSpan:
    return ReadableSpan(name="s", context=SpanContext(1, i + 1, False, TraceFlags(TraceFlags.SAMPLED)))


def test_a_stuck_exporter_makes_one_put_wait_then_drops_are_counted_and_said_once() -> None:
    gate, writing = threading.Event(), threading.Event()
    delivered: list[ReadableSpan] = []
    said: list[int] = []

    def deliver(spans: list[ReadableSpan]) -> int:
        writing.set()
        gate.wait(30)
        delivered.extend(spans)
        return FIRST_SPAN_BYTES * len(spans)

    feed = SpanFeed(
        "test-feed",
        deliver,
        lambda item: None,
        max_bytes=MIN_SPANS * FIRST_SPAN_BYTES,
        interval_s=0.01,
        block_s=0.3,
        on_drop=lambda: said.append(1),
    )
    spans = [_span(i) for i in range(4 * MIN_SPANS)]
    feed.put(spans[0])
    assert writing.wait(10), "the thread took the first span and is stuck writing it"
    for span in spans[1 : MIN_SPANS + 1]:
        feed.put(span)  # fills the queue: no wait
    started = time.monotonic()
    feed.put(spans[MIN_SPANS + 1])  # full: waits block_s for room, then drops
    first_wait = time.monotonic() - started
    started = time.monotonic()
    for span in spans[MIN_SPANS + 2 :]:
        feed.put(span)  # still stuck: dropped without waiting again
    later_waits = time.monotonic() - started
    assert 0.25 <= first_wait < 2.0, first_wait
    assert later_waits < 0.25, later_waits
    assert feed.waited == 1 and said == [1]
    gate.set()
    mark = FlushMark()
    feed.send(mark)
    assert mark.done.wait(10)
    assert len(delivered) + feed.dropped == len(spans), "every span delivered or counted"
    assert feed.dropped == len(spans) - 1 - MIN_SPANS
    feed.send(STOP)
    assert feed.join(5)


def test_a_slow_exporter_only_slows_the_loop_and_loses_nothing() -> None:
    delivered: list[ReadableSpan] = []

    def deliver(spans: list[ReadableSpan]) -> int:
        time.sleep(0.02)
        delivered.extend(spans)
        return FIRST_SPAN_BYTES * len(spans)

    feed = SpanFeed(
        "test-feed", deliver, lambda item: None, MIN_SPANS * FIRST_SPAN_BYTES, 0.01, batch=64, block_s=1.0
    )
    spans = [_span(i) for i in range(5000)]
    for span in spans:
        feed.put(span)
    mark = FlushMark()
    feed.send(mark)
    assert mark.done.wait(30)
    assert feed.dropped == 0 and feed.waited > 0, "the loop waited for room instead of dropping"
    assert delivered == spans, "in order, each once"
    feed.send(STOP)
    assert feed.join(5)
