"""Shared fixtures: a bridge configured into a temporary directory, and eval helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from tests.support.bridge import BridgeEnv, clean_env  # noqa: E402
from tests.support.collector import Binaries, Jaeger, build_binaries  # noqa: E402

pytest_plugins = (
    ["tests.weave_server.pytest_plugin"] if (ROOT / "tests/weave_server/pytest_plugin.py").exists() else []
)


@pytest.fixture
def bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BridgeEnv]:
    """The bridge enabled with the file exporter into tmp_path; every other setting default."""
    env = BridgeEnv(tmp_path)
    for key in list(os.environ):
        if clean_env(key):
            monkeypatch.delenv(key, raising=False)
    for key, value in env.env().items():
        monkeypatch.setenv(key, value)
    yield env


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The collector and Jaeger, built from their Go modules once per machine (cached)."""
    return build_binaries()


@pytest.fixture(scope="module")
def jaeger(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """One Jaeger per test module; tests keep apart by service name."""
    proc = Jaeger(binaries.jaeger, tmp_path_factory.mktemp("jaeger"))
    proc.start()
    yield proc
    proc.stop()
