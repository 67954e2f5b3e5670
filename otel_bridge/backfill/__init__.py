"""``otel-bridge import``: Inspect logs replayed through the hook's own span building."""
