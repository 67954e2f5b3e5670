"""Build (once) the separate virtualenv that runs the test Weave trace server.

The project's own venv has weave 0.54, which ships no server code; the server lives in the old
weave 0.53.12 wheel, whose dependencies clash with 0.54's.  So the server gets its own venv at
``${INSPECT_OTEL_CACHE:-~/.cache/inspect-otel-bridge}/weave-server-<tag>``.

Every package is pinned exactly and installed with ``--no-deps``: the set is the minimum the
server's import chain needs (the heavy cloud SDKs it imports but never calls are stubbed in
``server.py``), so the build is small (~85 MB) and reproducible.  A marker file is written only
after a smoke test imports and starts the server, so an interrupted build is redone on next use.

    python -m tests.weave_server.venv      # builds if needed, prints the interpreter path
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

WEAVE_SERVER_VERSION = "0.53.12"

# Exact pins, installed with --no-deps.  Changing this list changes the venv tag (new venv).
PINNED_PACKAGES: tuple[str, ...] = (
    f"weave=={WEAVE_SERVER_VERSION}",
    "annotated-types==0.8.0",
    "anyio==4.16.0",
    "cachetools==8.0.2",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "click==8.5.1",
    "diskcache-weave==5.6.3.post1",
    "emoji==2.16.0",
    "gql==4.4.0",
    "graphql-core==3.3.2",
    "h11==0.16.0",
    "httpcore==1.0.9",
    "httpx==0.28.1",
    "idna==3.20",
    "multidict==7.2.1",
    "opentelemetry-api==1.45.2",
    "opentelemetry-proto==1.45.2",
    "packaging==26.4",
    "propcache==0.5.4",
    "protobuf==7.36.2",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "requests==2.34.2",
    "sniffio==1.3.1",
    "sqlparse==0.5.5",
    "tenacity==9.2.1",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "urllib3==2.8.0",
    "yarl==1.25.1",
)

SERVER_SCRIPT = Path(__file__).with_name("server.py")
MARKER_NAME = ".weave-server-ready"


def cache_root() -> Path:
    """Where built venvs live; override with INSPECT_OTEL_CACHE (e.g. on CI)."""
    root = os.environ.get("INSPECT_OTEL_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "inspect-otel-bridge"


def version_tag() -> str:
    """Server version plus a hash of the pins and interpreter, so any change builds a new venv."""
    key = "\n".join(PINNED_PACKAGES) + f"\npy{sys.version_info.major}.{sys.version_info.minor}"
    return f"{WEAVE_SERVER_VERSION}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def venv_dir() -> Path:
    return cache_root() / f"weave-server-{version_tag()}"


def _python_in(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _log(msg: str) -> None:
    print(f"[weave-server venv] {msg}", file=sys.stderr, flush=True)


def _smoke_test(python: Path) -> None:
    """Import the server and build its trace server: proves the pinned set is complete."""
    code = (
        "import runpy, sys; sys.argv = ['server.py']; "
        f"m = runpy.run_path({str(SERVER_SCRIPT)!r}, run_name='weave_server_check'); "
        "m['WeaveTestServer']()"
    )
    subprocess.run([str(python), "-c", code], check=True, timeout=300)


def _build(env_dir: Path) -> None:
    if env_dir.exists():
        shutil.rmtree(env_dir)
    started = time.monotonic()
    _log(f"building {env_dir} (weave {WEAVE_SERVER_VERSION}, {len(PINNED_PACKAGES)} pinned packages)")
    venv.EnvBuilder(with_pip=False, clear=True, symlinks=True).create(env_dir)
    python = _python_in(env_dir)
    # The running interpreter's pip installs into the new venv (pip >= 22.3 has --python);
    # this skips ensurepip, which costs more than the install itself.
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "ensurepip", "--upgrade", "--default-pip"], check=True)
        pip = [str(python), "-m", "pip"]
    subprocess.run(
        [
            *pip,
            "install",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            *PINNED_PACKAGES,
        ],
        check=True,
        timeout=900,
    )
    _smoke_test(python)
    (env_dir / MARKER_NAME).write_text(version_tag() + "\n")
    _log(f"ready in {time.monotonic() - started:.1f}s")


def ensure_venv() -> Path:
    """Return the server venv's python, building the venv first if it is missing or half-built."""
    env_dir = venv_dir()
    python = _python_in(env_dir)
    marker = env_dir / MARKER_NAME
    if marker.is_file() and python.exists():
        return python
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = env_dir.parent / f".{env_dir.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers wait for one builder
        if not (marker.is_file() and python.exists()):
            _build(env_dir)
    return python


if __name__ == "__main__":
    print(ensure_venv())
