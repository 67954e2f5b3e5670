"""Every instrument the bridge records: name, kind, unit, buckets (docs/conventions.md, "Metrics").

GenAI client metrics use the semantic conventions' names (``opentelemetry.semconv`` 0.66b2 and
the GenAI conventions): ``gen_ai.client.token.usage`` is what backends read today (its successor
histograms are not emitted yet); cache and reasoning tokens, which it has no token type for, go
to the successor's counters. Inspect's own quantities are ``inspect.*``. Attributes are
low-cardinality only: task, model, provider, scorer, tool, status, error type — never a sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# attribute names metrics add to those of the spans (otel_bridge.conventions)
TOKEN_TYPE: Final = "gen_ai.token.type"
LIMIT_TYPE: Final = "inspect.limit.type"

# GenAI conventions' advisory buckets
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# a sample may run for an hour (agents); a score is usually in [0, 1]
SAMPLE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
SCORE_BUCKETS = (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 5, 10, 100)

Kind = Literal["histogram", "counter", "gauge"]


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: Kind
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None


TOKEN_USAGE = Instrument(
    "gen_ai.client.token.usage", "histogram", "{token}",
    "Tokens per model call, by gen_ai.token.type (input includes cached input).", TOKEN_BUCKETS,
)  # fmt: skip
OPERATION_DURATION = Instrument(
    "gen_ai.client.operation.duration", "histogram", "s",
    "Duration of a model call, retries included.", DURATION_BUCKETS,
)  # fmt: skip
CACHE_READ_TOKENS = Instrument(
    "gen_ai.client.inference.usage.cache_read.input_tokens", "counter", "{token}",
    "Input tokens read from the provider's prompt cache.",
)  # fmt: skip
CACHE_WRITE_TOKENS = Instrument(
    "gen_ai.client.inference.usage.cache_write.input_tokens", "counter", "{token}",
    "Input tokens written to the provider's prompt cache.",
)  # fmt: skip
REASONING_TOKENS = Instrument(
    "gen_ai.client.inference.usage.reasoning.output_tokens", "counter", "{token}",
    "Output tokens spent on reasoning.",
)  # fmt: skip
MODEL_RETRIES = Instrument(
    "inspect.model.retries", "counter", "{retry}", "Model calls retried after a transient failure."
)
CACHE_HITS = Instrument(
    "inspect.model.cache_hits",
    "counter",
    "{call}",
    "Model calls answered from Inspect's local cache (they record no tokens).",
)
SAMPLES_COMPLETED = Instrument(
    "inspect.samples.completed", "counter", "{sample}",
    "Samples that ended, by inspect.sample.status (success, error, limit).",
)  # fmt: skip
SAMPLES_EXPECTED = Instrument(
    "inspect.samples.expected", "gauge", "{sample}", "Samples a task will run (samples × epochs)."
)
SAMPLE_DURATION = Instrument(
    "inspect.sample.duration", "histogram", "s", "A sample's total (clock) time.", SAMPLE_BUCKETS
)
SAMPLE_WORKING_TIME = Instrument(
    "inspect.sample.working_time", "histogram", "s",
    "A sample's working time (waits for rate limits and connections excluded).", SAMPLE_BUCKETS,
)  # fmt: skip
TOOL_CALLS = Instrument("inspect.tool.calls", "counter", "{call}", "Tool calls, by gen_ai.tool.name.")
TOOL_DURATION = Instrument(
    "inspect.tool.duration", "histogram", "s", "Duration of a tool call.", DURATION_BUCKETS
)
SCORE = Instrument(
    "inspect.score", "histogram", "1",
    "Numeric score values per scorer (gen_ai.evaluation.name); C/I/P/N as 1/0/0.5/0.", SCORE_BUCKETS,
)  # fmt: skip

ALL: tuple[Instrument, ...] = (
    TOKEN_USAGE,
    OPERATION_DURATION,
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    REASONING_TOKENS,
    MODEL_RETRIES,
    CACHE_HITS,
    SAMPLES_COMPLETED,
    SAMPLES_EXPECTED,
    SAMPLE_DURATION,
    SAMPLE_WORKING_TIME,
    TOOL_CALLS,
    TOOL_DURATION,
    SCORE,
)
