"""Pure translations of the bridge's spans into backend write operations (no I/O)."""
