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
