"""OpenTelemetry observability for Inspect AI evaluations."""

__version__ = "0.1.0"
