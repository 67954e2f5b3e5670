"""Running real evals with the bridge and reading back what it recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from inspect_ai.log import EvalLog, read_eval_log

from otel_bridge.records import SpanRecord, read_span_file

ROOT = Path(__file__).resolve().parents[2]
INSPECT = str(Path(sys.executable).parent / "inspect")
OTEL_BRIDGE = str(Path(sys.executable).parent / "otel-bridge")


def clean_env(key: str) -> bool:
    """Variables a test must not inherit from the developer's shell."""
    return (
        key.startswith(("INSPECT_OTEL_", "OTEL_", "WANDB_", "WEAVE_", "WF_")) or key == "INSPECT_EVAL_MODEL"
    )


@dataclass
class BridgeEnv:
    root: Path

    @property
    def span_dir(self) -> Path:
        return self.root / "spans"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def env(self) -> dict[str, str]:
        return {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_DIR": str(self.span_dir),
            "INSPECT_OTEL_EXPORTERS": "file",
            "INSPECT_REQUIRED_HOOKS": "otel_bridge",
            "INSPECT_LOG_DIR": str(self.log_dir),
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(self.root / "wandb"),
        }

    def spans(self) -> list[SpanRecord]:
        out: list[SpanRecord] = []
        for path in self.files():
            out.extend(read_span_file(path))
        return out

    def files(self) -> list[Path]:
        """The span files (not the metric files beside them)."""
        return sorted(p for p in self.span_dir.glob("*.jsonl") if not p.name.endswith(".metrics.jsonl"))

    def metric_files(self) -> list[Path]:
        return sorted(self.span_dir.glob("*.metrics.jsonl"))

    def raw_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.files())


def full_log(log: EvalLog) -> EvalLog:
    """The log as written to disk (samples included), Inspect's ground truth."""
    return read_eval_log(log.location)


def subprocess_env(extra: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in (base or os.environ).items() if not clean_env(k)}
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "examples")])
    return env


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300, cwd: Path | None = None) -> CliResult:
    started = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def inspect_eval(args: list[str], env: dict[str, str], timeout: float = 300) -> CliResult:
    return run_cli([INSPECT, "eval", *args, "--display", "none"], env, timeout)


def seed_span_ids(monkeypatch: pytest.MonkeyPatch, seed: int = 20261201) -> None:
    """Trace and span ids of later sessions from a seeded generator, so the ratio sampler (which
    decides on the trace id) keeps the same sample traces every run. With the default seed,
    ``OTEL_TRACES_SAMPLER_ARG=0.5`` keeps some and drops others of a dozen samples."""
    import random
    import types

    from otel_bridge import spanfactory

    monkeypatch.setattr(spanfactory, "random", types.SimpleNamespace(Random=lambda: random.Random(seed)))
