"""Offline model provider and tasks for the inspect-otel-bridge demo, tests and benchmarks."""
