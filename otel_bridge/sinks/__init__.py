"""Destinations for the bridge's spans. Each sink is a SpanExporter or SpanProcessor."""
