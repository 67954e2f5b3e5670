"""Pure translations of the bridge's spans into backend write operations (no I/O).

Pure, so one translation serves the in-process sinks, the receiver and ``sync`` alike: modules
here import only ``otel_bridge.conventions``, ``otel_bridge.records`` and the standard library,
and read no settings or environment (the sinks pass in what they need).
"""
