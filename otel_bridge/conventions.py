"""Every span name and attribute key the bridge emits, defined once.

``docs/conventions.md`` documents each of these; a test fails when the code emits a key that
the document does not list. Keys never sit in a ``foo`` / ``foo.bar`` relation (Weave's OTLP
endpoint rejects a whole span for that).
"""

from __future__ import annotations

from typing import Final

# --- instrumentation scope ------------------------------------------------------------------
SCOPE_NAME: Final = "otel_bridge"
DEFAULT_SERVICE_NAME: Final = "inspect-ai"

# --- span names (stable, low cardinality; variety lives in attributes) ----------------------
SPAN_EVAL_SET: Final = "inspect.eval_set"
SPAN_RUN: Final = "inspect.run"
SPAN_TASK: Final = "inspect.task"
SPAN_TASK_STARTED: Final = "inspect.task.started"
SPAN_SAMPLE: Final = "inspect.sample"
SPAN_SANDBOX: Final = "inspect.sandbox"
SPAN_INSPECT_PREFIX: Final = "inspect."  # + Inspect span type: inspect.solver, inspect.scorer, ...
SPAN_GENERIC: Final = "inspect.span"  # an Inspect span with no type
OP_CHAT: Final = "chat"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"

# --- span events -----------------------------------------------------------------------------
EVENT_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"

# --- GenAI semantic conventions ---------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_REASONING_LEVEL: Final = "gen_ai.request.reasoning.level"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
ERROR_TYPE: Final = "error.type"

# --- OpenInference mirrors (Phoenix, Langfuse, Weave, Datadog read these) ---------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"

# --- W&B Weave OTLP hints ---------------------------------------------------------------------
WANDB_DISPLAY_NAME: Final = "wandb.display_name"
WANDB_IS_TURN: Final = "wandb.is_turn"
WANDB_WB_RUN_ID: Final = "wandb.wb_run_id"  # the W&B Models run a call belongs to (bare run id)

# --- inspect.*: identifiers (on every span) ---------------------------------------------------
RUN_ID: Final = "inspect.run_id"
EVAL_SET_ID: Final = "inspect.eval_set_id"
EVAL_ID: Final = "inspect.eval_id"
TASK_ID: Final = "inspect.task_id"
TASK_NAME: Final = "inspect.task.name"
MODEL: Final = "inspect.model"
# sample-level spans
SAMPLE_ID: Final = "inspect.sample.id"
SAMPLE_EPOCH: Final = "inspect.sample.epoch"
SAMPLE_UUID: Final = "inspect.sample.uuid"
SAMPLE_ATTEMPT: Final = "inspect.sample.attempt"

# --- eval set / run -----------------------------------------------------------------------------
EVAL_SET_LOG_DIR: Final = "inspect.eval_set.log_dir"
RUN_TASK_NAMES: Final = "inspect.run.task_names"
RUN_STATUS: Final = "inspect.run.status"
RUN_EVAL_IDS: Final = "inspect.run.eval_ids"  # every task × model of the run (set when it ends)
COMMAND_LINE: Final = "inspect.command_line"
INSPECT_VERSION: Final = "inspect.version"
BRIDGE_VERSION: Final = "inspect.bridge.version"

# --- task -------------------------------------------------------------------------------------
TASK_VERSION: Final = "inspect.task.version"
TASK_FILE: Final = "inspect.task.file"
TASK_ARGS: Final = "inspect.task.args"
TASK_TAGS: Final = "inspect.task.tags"
TASK_METADATA: Final = "inspect.task.metadata"
TASK_SOLVER: Final = "inspect.task.solver"
TASK_SCORERS: Final = "inspect.task.scorers"
TASK_SCORER_METRICS: Final = "inspect.task.scorer_metrics"
TASK_EPOCHS: Final = "inspect.task.epochs"
TASK_STATUS: Final = "inspect.task.status"
TASK_ERROR: Final = "inspect.task.error"
TASK_METRICS: Final = "inspect.task.metrics"
TASK_USAGE: Final = "inspect.task.usage"
MODEL_ARGS: Final = "inspect.model_args"
MODEL_BASE_URL: Final = "inspect.model_base_url"
MODEL_ROLES: Final = "inspect.model_roles"
GENERATE_CONFIG: Final = "inspect.generate_config"
EVAL_CONFIG: Final = "inspect.eval_config"
DATASET_NAME: Final = "inspect.dataset.name"
DATASET_LOCATION: Final = "inspect.dataset.location"
DATASET_SAMPLES: Final = "inspect.dataset.samples"
GIT_ORIGIN: Final = "inspect.git.origin"
GIT_COMMIT: Final = "inspect.git.commit"
GIT_DIRTY: Final = "inspect.git.dirty"
PACKAGES: Final = "inspect.packages"
LOG_LOCATION: Final = "inspect.log.location"
# the eval side's redacted copy of that log (otel_bridge/logcopies.py), for a later W&B upload
LOG_REDACTED_COPY: Final = "inspect.log.redacted_copy"
SAMPLES_TOTAL: Final = "inspect.samples.total"
SAMPLES_COMPLETED: Final = "inspect.samples.completed"
SAMPLES_ERRORED: Final = "inspect.samples.errored"
SAMPLES_TRACED: Final = "inspect.samples.traced"  # final sample traces emitted for this task

# --- sample -----------------------------------------------------------------------------------
SAMPLE_INPUT: Final = "inspect.sample.input"
SAMPLE_TARGET: Final = "inspect.sample.target"
SAMPLE_OUTPUT: Final = "inspect.sample.output"
SAMPLE_METADATA: Final = "inspect.sample.metadata"
SAMPLE_SCORES: Final = "inspect.sample.scores"
SAMPLE_TOTAL_TIME: Final = "inspect.sample.total_time"
SAMPLE_WORKING_TIME: Final = "inspect.sample.working_time"
SAMPLE_ERROR: Final = "inspect.sample.error"
SAMPLE_LIMIT: Final = "inspect.sample.limit"
SAMPLE_LIMIT_REASON: Final = "inspect.sample.limit_reason"
SAMPLE_WILL_RETRY: Final = "inspect.sample.will_retry"
SAMPLE_STATUS: Final = "inspect.sample.status"
SAMPLE_MESSAGE_COUNT: Final = "inspect.sample.message_count"
SAMPLE_SPAN_COUNT: Final = (
    "inspect.sample.span_count"  # spans under the root: consumers know when a trace is whole
)
# token usage summed over every model a sample or task used (not gen_ai.usage.*: that would be
# double counted by backends that sum usage over a trace)
USAGE_INPUT_TOKENS: Final = "inspect.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "inspect.usage.output_tokens"
USAGE_TOTAL_TOKENS: Final = "inspect.usage.total_tokens"
USAGE_CACHE_READ_TOKENS: Final = "inspect.usage.cache_read_tokens"
USAGE_CACHE_WRITE_TOKENS: Final = "inspect.usage.cache_write_tokens"
USAGE_REASONING_TOKENS: Final = "inspect.usage.reasoning_tokens"
USAGE_BY_MODEL: Final = "inspect.usage.by_model"

# --- Inspect spans (solvers, solver, agent, tool, scorers, scorer, init, subtask, handoff) ----
SPAN_TYPE: Final = "inspect.span.type"
SPAN_NAME: Final = "inspect.span.name"
SPAN_ID: Final = "inspect.span.id"
SPAN_UNFINISHED: Final = "inspect.span.unfinished"

# --- model call -------------------------------------------------------------------------------
MODEL_ROLE: Final = "inspect.model_call.role"
MODEL_CACHE: Final = "inspect.model_call.cache"
MODEL_RETRIES: Final = "inspect.model_call.retries"
MODEL_WORKING_TIME: Final = "inspect.model_call.working_time"
MODEL_ERROR: Final = "inspect.model_call.error"

# --- tool call / sandbox ----------------------------------------------------------------------
TOOL_ERROR: Final = "inspect.tool.error"
TOOL_AGENT: Final = "inspect.tool.agent"
SANDBOX_ACTION: Final = "inspect.sandbox.action"
SANDBOX_CMD: Final = "inspect.sandbox.cmd"
SANDBOX_FILE: Final = "inspect.sandbox.file"
SANDBOX_RESULT: Final = "inspect.sandbox.result"

# --- score (on gen_ai.evaluation.result events) -------------------------------------------------
SCORE_VALUE: Final = "inspect.score.value"
SCORE_ANSWER: Final = "inspect.score.answer"
SCORE_INTERMEDIATE: Final = "inspect.score.intermediate"

# --- content bookkeeping --------------------------------------------------------------------
TRUNCATED: Final = "inspect.truncated"

# Attributes that carry prompts, completions, tool I/O or dataset text. Removed entirely when
# content capture is off; the collector's content-stripping pipeline deletes the same list.
CONTENT_ATTRIBUTES: Final = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_DEFINITIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        GEN_AI_EVALUATION_EXPLANATION,
        INPUT_VALUE,
        OUTPUT_VALUE,
        SAMPLE_INPUT,
        SAMPLE_TARGET,
        SAMPLE_OUTPUT,
        SAMPLE_METADATA,
        SCORE_ANSWER,
        SANDBOX_CMD,
    }
)

# Resource attributes
RESOURCE_DISTRO_NAME: Final = "telemetry.distro.name"
RESOURCE_DISTRO_VERSION: Final = "telemetry.distro.version"
