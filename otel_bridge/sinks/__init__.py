"""RecordSinks: what consumes SpanRecords (Weave, W&B Models, span files), and their contract."""
