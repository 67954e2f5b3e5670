"""A real span file from the demo eval, made once per test session."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from tests.support.bridge import inspect_eval, subprocess_env


@functools.cache
def demo_span_file() -> Path:
    """2 models × 3 samples × 2 epochs of examples/bridge_demo.py, recorded by the file exporter."""
    root = Path(tempfile.mkdtemp(prefix="demo-spans-"))
    atexit.register(shutil.rmtree, root, True)
    env = subprocess_env(
        {
            "INSPECT_OTEL_ENABLED": "1",
            "INSPECT_OTEL_EXPORTERS": "file",
            "INSPECT_OTEL_DIR": str(root / "spans"),
        }
    )
    result = inspect_eval(
        [
            "examples/bridge_demo.py@arithmetic",
            "--model",
            "offline/careful,offline/hasty",
            "-T",
            "samples=3",
            "--epochs",
            "2",
            "--log-dir",
            str(root / "logs"),
        ],
        env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the demo eval failed:\n{result.stderr[-3000:]}")
    (path,) = (root / "spans").glob("*.jsonl")
    return path
