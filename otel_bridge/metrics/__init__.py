"""OpenTelemetry metrics of every eval: the bridge's own MeterProvider, its instruments and files.

``instruments`` names every instrument; ``recorder`` is what the hook calls (a queue append per
call); ``provider`` holds the MeterProvider, its readers and the metrics thread; ``files`` the
OTLP/JSON metric file beside each span file; ``summary`` what ``show`` and ``sync`` do with it.
"""
