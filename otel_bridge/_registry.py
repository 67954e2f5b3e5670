"""Inspect entry point: importing this registers the hook."""
