"""Attach the bridge to an OpenTelemetry setup of your own (docs/api.md).

Your TracerProvider, your processors: the bridge's spans go through them, translated into W&B
Weave Evaluations and a W&B Models run by the public exporters, while the bridge also keeps its
span file. Run from the repository root::

    python examples/own_provider.py --weave-project my-team/evals --wandb-project evals
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspect_ai import eval
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_bridge
from otel_bridge import WandbSpanExporter, WeaveSpanExporter

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--weave-project", required=True, help="entity/project")
    parser.add_argument("--wandb-project", required=True, help="W&B Models project")
    parser.add_argument("--span-dir", default="otel-spans")
    parser.add_argument("--log-dir", default="logs")
    args = parser.parse_args()

    provider = TracerProvider()  # yours: Logfire's, opentelemetry-instrument's, a service's ...
    weave = WeaveSpanExporter(args.weave_project, wandb_project=args.wandb_project)
    models = WandbSpanExporter(args.wandb_project, weave_project=args.weave_project)
    provider.add_span_processor(BatchSpanProcessor(weave))
    provider.add_span_processor(BatchSpanProcessor(models))

    # the hook on, its spans into your provider, and the bridge's own span file beside it
    otel_bridge.configure(exporters=["file"], span_dir=args.span_dir, tracer_provider=provider)
    sys.path.insert(0, str(HERE))  # the offline demo models
    logs = eval(
        str(HERE / "bridge_demo.py@arithmetic"),
        model=["offline/careful", "offline/hasty"],
        task_args={"samples": 3},
        epochs=2,
        log_dir=args.log_dir,
        display="none",
    )
    provider.shutdown()  # delivers what is queued and finishes the evaluations and the run
    return 0 if all(log.status == "success" for log in logs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
