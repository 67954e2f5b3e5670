"""Inspect entry point: makes ``offline/<name>`` resolvable from the ``inspect`` CLI."""

from bridge_examples.offline_model import OfflineModel  # noqa: F401
