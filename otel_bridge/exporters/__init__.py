"""OpenTelemetry SDK interfaces: span exporters and processors (span file, OTLP, workers, W&B)."""
