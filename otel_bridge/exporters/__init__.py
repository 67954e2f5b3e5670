"""OpenTelemetry SDK interfaces: span exporters and processors (the span file, OTLP, worker processes, W&B)."""
