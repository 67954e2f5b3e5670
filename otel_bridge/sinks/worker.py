"""A translating sink (W&B, Weave) running in its own process, fed span batches on stdin.

The W&B and Weave SDKs cost seconds of CPU to import and start, and every write holds the GIL;
in the eval's process that time is taken from the eval's event loop. Here it runs beside it.
Started by ``otel_bridge.sinks.process``::

    python -m otel_bridge.sinks.worker NAME ACK_FD

stdin: one OTLP/JSON export request per line, or a control line ``{"control": "flush", "id": N,
"timeout": S}``, answered on the ACK_FD pipe with ``{"ack": N, "ok": bool}``. End of input
(the eval's process exited, however it exited) ends still-open tasks as failed, closes the sink
and exits. Settings come from the same environment as the eval's.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from otel_bridge import notify
from otel_bridge.config import load_settings
from otel_bridge.otlp_json import OtlpJsonError, json_to_request
from otel_bridge.records import from_request
from otel_bridge.sinks.registry import make_record_sink

CONTROL_PREFIX = b'{"control"'
REPORTED = 3  # exit status: failed, and the user was already told why


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C reaches the whole process group: the eval decides, this process ends with its input
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = sys.argv[1:] if argv is None else argv
    name, ack_fd = args[0], int(args[1])
    acks = os.fdopen(ack_fd, "w", buffering=1, encoding="utf-8")
    try:
        sink = make_record_sink(name, load_settings())
    except Exception as exc:
        notify.say(
            f"the {name} exporter could not start ({type(exc).__name__}: {exc}); spans still go to "
            f"the span file — deliver them later with `otel-bridge sync <file> --to {name}`."
        )
        return REPORTED
    if sink is None:
        notify.say(f"the {name} exporter is unknown.")
        return REPORTED
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(CONTROL_PREFIX):
            control = json.loads(line)
            ok = sink.flush(float(control.get("timeout", 10)))
            acks.write(json.dumps({"ack": control["id"], "ok": ok}) + "\n")
            continue
        try:
            records = from_request(json_to_request(line))
            sink.consume(records)
        except OtlpJsonError as exc:  # not expected from the parent; never fatal
            notify.say(f"the {name} exporter got a malformed batch ({exc}); skipped.", key="worker-bad-batch")
        except Exception as exc:
            notify.say(
                f"the {name} exporter failed ({type(exc).__name__}: {exc}); the span file keeps "
                f"everything — deliver later with `otel-bridge sync <file> --to {name}`.",
                key=f"sink-failed:{name}",
            )
    try:
        sink.finalize_incomplete("the process exited before the task finished")
        sink.close()
    except Exception as exc:
        notify.say(f"the {name} exporter could not finish ({type(exc).__name__}: {exc}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
