"""Pytest fixtures for tests that need a real Weave trace server.

Load with ``pytest_plugins = ["tests.weave_server.pytest_plugin"]`` in the root conftest, or import
the fixtures into a test module (``from tests.weave_server.pytest_plugin import weave_server,
weave_project``) — pytest forbids ``pytest_plugins`` in non-root conftests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.weave_server.harness import WeaveServer


@pytest.fixture(scope="session")
def weave_server() -> Iterator[WeaveServer]:
    """One server per test session: the venv build and server start are paid once."""
    with WeaveServer() as server:
        yield server


@pytest.fixture
def weave_project() -> str:
    """A fresh "entity/project" per test, so tests sharing the session server never see each other."""
    return f"test-entity/proj-{uuid.uuid4().hex[:12]}"
