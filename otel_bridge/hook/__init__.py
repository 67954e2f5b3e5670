"""Inspect hooks → OpenTelemetry spans."""
