"""An exporter (W&B, Weave, OTLP) running in its own process, fed span batches on stdin.

The W&B and Weave SDKs cost seconds of CPU to import and start, the OTLP exporter's protobuf
encoding costs more CPU per span than building the span, and all of it holds the GIL: in the
eval's process that time is taken from the eval's event loop. Here it runs beside it.
Started by ``otel_bridge.exporters.process``::

    python -m otel_bridge.exporters.worker NAME

The frames are ``otel_bridge.exporters.worker_protocol``'s: span batches and flush requests in,
acknowledgements out (other stdout lines are the SDKs' own output, which the eval's process
passes on). End of input (the eval's process exited, however it exited) ends still-open tasks as
failed, closes the sink, sends a final report (OTLP: spans not delivered, where they are kept)
and exits. Settings come from the same environment as the eval's.
"""

from __future__ import annotations

import signal
import sys
from typing import Any, Protocol

from otel_bridge import notify
from otel_bridge.config import Settings, load_settings
from otel_bridge.exporters.worker_protocol import REPORTED, Ack, ack_frame, parse_control
from otel_bridge.otlp_json import OtlpJsonError, json_to_request, readable_spans
from otel_bridge.records import from_request
from otel_bridge.sinks.base import DeliveryError, RecordSink
from otel_bridge.sinks.registry import make_record_sink


class _Target(Protocol):
    def take(self, line: bytes) -> None: ...
    def flush(self, timeout_s: float) -> bool: ...
    def report(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class _RecordTarget:
    """Weave / W&B: the same RecordSink as ``sync`` and the receiver."""

    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink

    def take(self, line: bytes) -> None:
        self.sink.consume(from_request(json_to_request(line)))

    def flush(self, timeout_s: float) -> bool:
        return self.sink.flush(timeout_s)

    def report(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.sink.finalize_incomplete("the process exited before the task finished")
        self.sink.close()


class _OtlpTarget:
    """The standard OTLP exporter (via ResilientExporter), fed the eval's spans."""

    def __init__(self, settings: Settings) -> None:
        from otel_bridge.exporters.otlp import ResilientExporter, make_otlp_exporter
        from otel_bridge.exporters.span_file import SpanFileExporter

        core = settings.core
        inner, endpoint = make_otlp_exporter(core)
        # without a span file, what could not be delivered is kept in its own file
        spill = None if "file" in core.exporters else SpanFileExporter(core.span_dir, "undelivered-")
        self.spill = spill
        self.exporter = ResilientExporter(inner, endpoint, core.export_max_bytes, spill)

    def take(self, line: bytes) -> None:
        self.exporter.export(readable_spans(line))

    def flush(self, timeout_s: float) -> bool:
        return True  # every line is exported as it arrives

    def report(self) -> dict[str, Any]:
        e = self.exporter
        kept = [str(p) for p in self.spill.paths.values()] if self.spill is not None else []
        return {"failed": e.failed, "error": e.last_error, "endpoint": e.endpoint, "kept": kept}

    def close(self) -> None:
        self.exporter.shutdown()


def _target(name: str, settings: Settings) -> _Target | None:
    if name == "otlp":
        return _OtlpTarget(settings)
    sink = make_record_sink(name, settings)
    return None if sink is None else _RecordTarget(sink)


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C reaches the whole process group: the eval decides, this process ends with its input
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = sys.argv[1:] if argv is None else argv
    name = args[0]
    # acknowledgements share stdout with whatever the SDKs print: marked lines, written whole
    real_stdout = sys.stdout

    def ack(message: Ack) -> None:
        real_stdout.write(ack_frame(message) + "\n")
        real_stdout.flush()

    try:
        target = _target(name, load_settings())
    except Exception as exc:
        notify.say(
            f"the {name} exporter could not start ({type(exc).__name__}: {exc}); spans still go to "
            f"the span file — deliver them later with `otel-bridge sync <file> --to {name}`."
        )
        return REPORTED
    if target is None:
        notify.say(f"the {name} exporter is unknown.")
        return REPORTED
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if not line:
            continue
        control = parse_control(line)
        if control is not None:
            ok = target.flush(control.timeout_s)
            ack(Ack(control.ident, ok, report=target.report()))
            continue
        try:
            target.take(line)
        except DeliveryError:
            pass  # the sink said why once and keeps the writes; it tells again at close if they stay
        except OtlpJsonError as exc:  # not expected from the parent; never fatal
            notify.say(f"the {name} exporter got a malformed batch ({exc}); skipped.", key="worker-bad-batch")
        except Exception as exc:
            notify.say(
                f"the {name} exporter failed ({type(exc).__name__}: {exc}); the span file keeps "
                f"everything — deliver later with `otel-bridge sync <file> --to {name}`.",
                key=f"sink-failed:{name}",
            )
    try:
        target.close()
    except Exception as exc:
        notify.say(f"the {name} exporter could not finish ({type(exc).__name__}: {exc}).")
    ack(Ack(None, True, final=True, report=target.report()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
