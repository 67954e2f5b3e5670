"""A side virtualenv with an inspect-ai release from a year before the one the project pins,
to write the kind of log users already have (built once per machine, cached like the Weave
server's venv, under ``${INSPECT_OTEL_CACHE:-~/.cache/inspect-otel-bridge}``).

    python -m tests.support.old_inspect      # builds if needed, prints the interpreter path
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

from tests.weave_server.venv import cache_root

#: Released 2025-11-09, a year before the pinned 0.3.285.
OLD_INSPECT = "0.3.150"
MARKER = ".old-inspect-ready"


def old_python() -> Path:
    """The side venv's interpreter (built on first use; a build that fails is redone next time)."""
    target = cache_root() / f"inspect-{OLD_INSPECT}-py{sys.version_info.major}.{sys.version_info.minor}"
    python = target / "bin" / "python"
    if (target / MARKER).exists():
        return python
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    venv.create(building, with_pip=True)
    pip = [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"inspect-ai=={OLD_INSPECT}"], check=True, timeout=900)
    check = "import importlib.metadata as m; import inspect_ai; print(m.version('inspect_ai'))"
    out = subprocess.run(
        [str(building / "bin" / "python"), "-c", check], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == OLD_INSPECT, out.stdout
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)  # the venv's scripts name the build path; only its python is used
    (target / MARKER).write_text(OLD_INSPECT + "\n")
    return python


if __name__ == "__main__":
    print(old_python())
